"""``duban review | review approve | review return | evidence get | unit link | unit revoke | show``,
driven in this process (``orchestrator.cli.main``) against a SQLite deployment; the units' side
goes through ``admin.submissions`` as the web page does. Time is a parameter (``DUBAN_FAKE_NOW``)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import structlog
from sqlmodel import Session, select
from support import OFFICE_AND_TWO_TOWNS

from notifications.report import render_scorecard_html
from orchestrator.admin.evidence import UploadLimits, store_file
from orchestrator.admin.links import read_unit_token
from orchestrator.admin.submissions import Actor, request_extension, submit_completion
from orchestrator.cli import main
from orchestrator.evaluation.scoring import build_scorecard
from orchestrator.service.config import load_settings
from orchestrator.service.runtime import load_bundle_for
from orchestrator.store.db import make_engine, transaction
from orchestrator.store.models import Event, Obligation, Program, Submission

TZ = ZoneInfo("Asia/Shanghai")
SECRET = "k" * 48

DEFINITION = """\
[workflow]
id = "cli-review"
title = "审核命令测试方案"
timezone = "Asia/Shanghai"
calendar = "cn-workdays"
contact = "role:office"
reminders = ["-3d"]
escalation = [{ after = "1wd", to = "lead" }]

[[phases]]
id = "p1"
name = "实施阶段"
start = "06-01"
end = "06-30"

[[tasks]]
id = "T1"
title = "报送实施方案"
phase = "p1"
lead = ["role:office"]
responsible = ["role:town"]
due = "06-10"
"""

UNITS = OFFICE_AND_TWO_TOWNS

CONFIG = """\
[database]
url = "sqlite:///duban.db"

[definitions]
paths = ["definitions"]
units = "units.toml"

[mail]
transport = "maildir"
maildir = "mail"
domain = "duban.test"

[web]
base_url = "https://duban.example.gov.cn"
secret_env = "DUBAN_TEST_WEB_SECRET"
secret_file = "missing-secret"
evidence_dir = "evidence"

[[programs]]
workflow = "cli-review"
year = 2026
"""


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=TZ).astimezone(UTC)


@pytest.fixture(autouse=True)
def _restore_logging():
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


class Cli:
    def __init__(self, root: Path, capsys, monkeypatch):
        self.root, self.capsys, self.monkeypatch = root, capsys, monkeypatch
        monkeypatch.setenv("DUBAN_TEST_WEB_SECRET", SECRET)
        monkeypatch.setenv("COLUMNS", "200")
        for name in ("DUBAN_CONFIG", "DUBAN_ACTOR"):
            monkeypatch.delenv(name, raising=False)

    def __call__(self, *args: str, now: str = "2026-06-12T10:00:00+08:00") -> tuple[int, str, str]:
        self.monkeypatch.setenv("DUBAN_FAKE_NOW", now)
        self.monkeypatch.setenv("SUDO_USER", "alice")
        self.capsys.readouterr()
        code = main(["--config", str(self.root / "config.toml"), *args])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def site(tmp_path, capsys, monkeypatch):
    root = tmp_path / "deploy"
    (root / "definitions").mkdir(parents=True)
    (root / "definitions" / "cli_review.toml").write_text(DEFINITION, encoding="utf-8")
    (root / "units.toml").write_text(UNITS, encoding="utf-8")
    (root / "config.toml").write_text(CONFIG, encoding="utf-8")
    cli = Cli(root, capsys, monkeypatch)
    assert cli("db", "upgrade")[0] == 0
    assert cli("start", "cli-review", "--year", "2026", now="2026-05-20T09:00:00+08:00")[0] == 0
    assert cli("run", "--once", now="2026-06-01T10:00:00+08:00")[0] == 0
    return cli


def engine_of(cli: Cli):
    return make_engine(f"sqlite:///{cli.root / 'duban.db'}")


def obligation(engine, unit: str) -> Obligation:
    with Session(engine) as session:
        return session.exec(select(Obligation).where(Obligation.unit == unit)).one()


def test_review_lists_approve_makes_done_at_submission_time_and_show_and_evidence_answer(site, tmp_path):
    engine = engine_of(site)
    pdf = tmp_path / "in.pdf"
    pdf.write_bytes(b"%PDF-1.7\n\xe5\xae\x9e\xe6\x96\xbd\n%%EOF\n")
    stored = store_file(site.root / "evidence", pdf, "实施方案\u202e.pdf", UploadLimits())
    target = obligation(engine, "town-a")
    with transaction(engine) as session:
        submission = submit_completion(
            session, target.id, Actor.for_unit("town-a", "198.51.100.4", "Mobile"), at("2026-06-09T16:20"),
            "县政发〔2026〕12号\x1b[2J", [stored],
        )  # fmt: skip
        submission_id = submission.id
    code, out, err = site("review", "--json")
    assert code == 0, err
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert (row["id"], row["kind"], row["obligation"], row["unit"]) == (
        submission_id,
        "completion",
        f"#{target.id}",
        "town-a",
    )
    assert row["submitted_at"] == "2026-06-09T16:20:00+08:00" and row["note"].startswith("县政发")
    assert [(f["size"], f["sha256"]) for f in row["files"]] == [(stored.size, stored.sha256)]
    code, out, _ = site("review")
    assert code == 0 and "待审核 1 项" in out and "\x1b" not in out and "\\x1b" in out
    code, out, err = site("review", "approve", str(submission_id), "--note", "同意")
    assert code == 0, err
    assert "按时完成" in out
    done = obligation(engine, "town-a")
    assert (done.state, done.done_at, done.done_late) == ("done", at("2026-06-09T16:20"), False)
    code, out, err = site("show", str(target.id), "--json")
    shown = json.loads(out)
    assert shown["obligation"]["state"] == "done"
    (sub,) = shown["submissions"]
    assert (sub["decision"], sub["decided_by"], sub["reason"]) == ("approved", "alice", "同意")
    assert sub["files"][0]["sha256"] == stored.sha256 and sub["files"][0]["name"] == "实施方案.pdf"
    code, out, _ = site("show", str(target.id))
    assert code == 0 and "单位提交与审核" in out and "通过" in out and stored.sha256 in out
    copy = tmp_path / "copy.pdf"
    code, out, err = site("evidence", "get", str(sub["files"][0]["id"]), "--out", str(copy))
    assert code == 0, err
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == stored.sha256
    settings = load_settings(site.root / "config.toml")
    bundle = load_bundle_for(settings, "cli-review")
    with Session(engine) as session:
        card = build_scorecard(session, session.exec(select(Program)).one(), bundle, date(2026, 6, 30))
    assert {u.unit: u.score.tally.on_time for u in card.units} == {"town-a": 1, "town-b": 0}


def test_approve_an_extension_with_until_and_return_with_a_reason(site):
    engine = engine_of(site)
    a, b = obligation(engine, "town-a"), obligation(engine, "town-b")
    with transaction(engine) as session:
        ext = request_extension(
            session, a.id, Actor.for_unit("town-a"), at("2026-06-03T10:00"), date(2026, 6, 30), "需会签"
        ).id
        done = submit_completion(session, b.id, Actor.for_unit("town-b"), at("2026-06-03T10:00"), "完成").id
    code, out, err = site(
        "review", "approve", str(ext), "--until", "2026-06-24", now="2026-06-04T10:00:00+08:00"
    )
    assert code == 0, err and "2026-06-24" in out
    assert obligation(engine, "town-a").due == date(2026, 6, 24)
    code, out, err = site(
        "review", "return", str(done), "--reason", "缺少盖章页", now="2026-06-11T10:00:00+08:00"
    )
    assert code == 0, err
    assert obligation(engine, "town-b").state == "overdue"
    with Session(engine) as session:
        returned = session.get(Submission, done)
    assert (returned.decision, returned.reason, returned.decided_by) == ("returned", "缺少盖章页", "alice")
    # the scorecard scores town-a against the new date and lists the extension (延期) in its appendix
    bundle = load_bundle_for(load_settings(site.root / "config.toml"), "cli-review")
    with Session(engine) as session:
        card = build_scorecard(session, session.exec(select(Program)).one(), bundle, date(2026, 6, 30))
    (extension,) = card.as_json()["extensions"]
    assert (extension["unit"], extension["after"], extension["reason"]) == ("town-a", "2026-06-24", "需会签")
    assert extension["before"] < extension["after"]
    html = render_scorecard_html(card.as_json())
    assert "经批准延期的事项（1项）" in html and "2026年6月24日" in html and "需会签" in html


def test_bad_input_is_one_line_exit_2_and_nothing_stored(site, tmp_path):
    engine = engine_of(site)
    a = obligation(engine, "town-a")
    with transaction(engine) as session:
        sid = submit_completion(session, a.id, Actor.for_unit("town-a"), at("2026-06-03T10:00"), "完成").id
    before = (site.root / "duban.db").read_bytes()
    for args in (
        ("review", "approve", "999"),
        ("review", "approve", "abc"),
        ("review", "approve", str(sid), "--until", "2026-13-01"),
        ("review", "approve", str(sid), "--until", "2026-07-01"),  # a completion takes no --until
        ("review", "return", str(sid)),
        ("review", "return", str(sid), "--reason", "  "),
        ("evidence", "get", "5"),
        ("evidence", "get", "5", "--out", str(tmp_path / "no" / "dir.pdf")),
        ("evidence", "get", "77", "--out", str(tmp_path / "x.pdf")),
        ("unit", "link", "nobody"),
        ("unit", "revoke", "nobody"),
    ):
        code, out, err = site(*args)
        assert code == 2, (args, code, out, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("duban"), (args, err)
        assert "Traceback" not in err
    assert (site.root / "duban.db").read_bytes() == before


def test_unit_link_prints_a_working_link_and_revoke_stops_the_old_one(site):
    engine = engine_of(site)
    code, out, err = site("unit", "link", "甲镇人民政府")
    assert code == 0, err
    link = out.strip()
    assert link.startswith("https://duban.example.gov.cn/u/") and SECRET not in out
    token = link.rpartition("/")[2]
    with Session(engine) as session:
        assert read_unit_token(SECRET, token, session, 86400 * 400, now=at("2026-06-12T10:00")) == "town-a"
    code, out, err = site("unit", "revoke", "town-a")
    assert code == 0, err and "作废" in out
    fresh = out.strip().splitlines()[-1].rpartition("/")[2]
    with Session(engine) as session:
        assert read_unit_token(SECRET, token, session, 86400 * 400, now=at("2026-06-12T10:00")) is None
        assert read_unit_token(SECRET, fresh, session, 86400 * 400, now=at("2026-06-12T10:00")) == "town-a"
        event = session.exec(select(Event).where(Event.kind == "unit.link_revoked")).one()
    assert event.actor == "alice"


def test_a_missing_secret_is_one_line_without_the_secret(site, monkeypatch):
    monkeypatch.setenv("DUBAN_TEST_WEB_SECRET", "")
    code, _, err = site("unit", "link", "town-a")
    assert code == 2 and "secret_file" in err and len(err.strip().splitlines()) == 1
