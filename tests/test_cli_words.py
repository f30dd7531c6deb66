"""Issue 27, points 7, 8 and three of 12: what a county office reads is in its own time and words.

Every time a person reads is the plan's local time (``review``, ``review approve``, ``show``,
``log``, ``tasks`` agree; an imported done date is that day; the portal's log lines carry the same
offset as the daemon's); every line a county user reads is Chinese (``status``'s warnings, the
audit log's kinds and details, ``scorecard --out``, ``start``, ``db upgrade`` …) while ``--json``
keeps its machine words; ``show`` names phases and lists no planned notice once done; ``plan`` for a
year without official holidays says what to do; ``status`` warns in December what a ``year =
"current"`` program repeats on 1 January.

A SQLite deployment built by the real CLI in this process (``orchestrator.cli.main``); the units'
side through ``admin.submissions`` as the web page does; ``duban web`` and ``duban run`` as real
processes for their log lines. Time is a parameter (``DUBAN_FAKE_NOW``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import structlog
from smtp_server import free_port
from sqlmodel import Session, select
from support import DUBAN

from orchestrator.admin.submissions import Actor, submit_completion
from orchestrator.cli import main
from orchestrator.store.db import make_engine, transaction
from orchestrator.store.models import Event, Obligation

TZ = ZoneInfo("Asia/Shanghai")
SECRET = "w" * 48

DEFINITION = """\
[workflow]
id = "words-test"
title = "用语测试方案"
timezone = "Asia/Shanghai"
calendar = "cn-workdays"
contact = "role:office"
reminders = ["-3d"]
escalation = [{ after = "1wd", to = "lead" }]

[[phases]]
id = "p1"
name = "宣传动员阶段"
start = "05-10"
end = "05-30"

[[phases]]
id = "p2"
name = "组织实施阶段"
start = "06-01"
end = "11-30"

[[tasks]]
id = "T1"
title = "召开动员会议"
phase = "p1"
lead = ["role:office"]
responsible = ["role:town"]

[[duties]]
id = "D1"
title = "报送工作方案和人员名单"
due = "06-10"
lead = ["role:office"]
responsible = ["role:town"]

[[duties]]
id = "D2"
title = "年度工作报告"
rrule = "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=28"
window = "-1mo"
lead = ["role:office"]
responsible = ["role:town"]

[evaluation]
subjects = ["role:town"]
"""

UNITS = """\
[[units]]
id = "office"
name = "县督查办"
emails = ["office@example.gov.cn"]
roles = ["office"]

[[units]]
id = "town-a"
name = "甲镇人民政府"
emails = ["town-a@example.gov.cn"]
roles = ["town"]

[[units]]
id = "town-b"
name = "乙镇人民政府"
emails = ["town-b@example.gov.cn"]
roles = ["town"]
"""

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

[[programs]]
workflow = "words-test"
year = "current"

[web]
listen = "127.0.0.1:{port}"
base_url = "https://duban.example.gov.cn"
secret_env = "DUBAN_TEST_WEB_SECRET"
secret_file = "missing-secret"
evidence_dir = "evidence"
office_emails = ["office@example.gov.cn"]
"""

EVENT_FIELDS = [
    "id", "at", "actor", "kind", "program_id", "obligation_id", "unit", "subject", "before", "after", "detail",
]  # fmt: skip
TASK_FIELDS = [
    "id", "key", "workflow", "year", "task", "title", "phase", "unit", "unit_name", "lead", "lead_names",
    "occurrence", "opens", "due", "state", "days_left", "days_late", "overdue_since", "done_at",
    "done_late", "evidence", "reason", "updated_at",
]  # fmt: skip
REVIEW_FIELDS = [
    "id", "kind", "obligation", "task", "title", "unit", "unit_name", "due", "submitted_at", "note",
    "requested", "files",
]  # fmt: skip
MACHINE_KIND = re.compile(r"[a-z_]+\.[a-z_]+")


def local(text: str) -> datetime:
    """A wall time of the plan's zone as the aware UTC datetime the engine takes."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ).astimezone(UTC)


@pytest.fixture(autouse=True)
def _restore_logging():
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


class Cli:
    def __init__(self, root: Path, capsys, monkeypatch):
        self.root, self.capsys, self.monkeypatch = root, capsys, monkeypatch
        monkeypatch.setenv("DUBAN_TEST_WEB_SECRET", SECRET)
        monkeypatch.setenv("COLUMNS", "300")
        for name in ("DUBAN_CONFIG", "DUBAN_ACTOR"):
            monkeypatch.delenv(name, raising=False)

    def __call__(self, *args: str, now: str = "2026-06-12T10:00:00+08:00") -> tuple[int, str, str]:
        self.monkeypatch.setenv("DUBAN_FAKE_NOW", now)
        self.monkeypatch.setenv("SUDO_USER", "alice")
        self.capsys.readouterr()
        code = main(["--config", str(self.root / "config.toml"), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str, **options) -> str:
        code, out, err = self(*args, **options)
        assert code == 0, err
        return out

    def json(self, *args: str, **options) -> list[dict]:
        return [json.loads(line) for line in self.ok(*args, "--json", **options).splitlines()]

    def engine(self):
        return make_engine(f"sqlite:///{self.root / 'duban.db'}")

    def obligation(self, task: str, unit: str) -> Obligation:
        with Session(self.engine()) as session:
            query = select(Obligation).where(Obligation.task == task, Obligation.unit == unit)
            return session.exec(query).one()


@pytest.fixture
def site(tmp_path, capsys, monkeypatch) -> Cli:
    root = tmp_path / "deploy"
    (root / "definitions").mkdir(parents=True)
    (root / "definitions" / "words.toml").write_text(DEFINITION, encoding="utf-8")
    (root / "units.toml").write_text(UNITS, encoding="utf-8")
    (root / "config.toml").write_text(CONFIG.replace("{port}", str(free_port())), encoding="utf-8")
    cli = Cli(root, capsys, monkeypatch)
    cli.said = [
        cli.ok("db", "upgrade"),
        cli.ok("db", "upgrade"),
        cli.ok("start", "words-test", "--year", "2026", now="2026-05-20T09:00:00+08:00"),
    ]
    cli.ok("run", "--once", now="2026-06-01T10:00:00+08:00")
    return cli


# -- 7. every time a person reads is local --------------------------------------------------------


def test_a_submission_time_reads_the_same_local_time_in_review_approve_show_log_and_tasks(site):
    """07:41 in the county is 23:41 UTC the day before: every command says 2026-06-09 07:41."""
    target = site.obligation("D1", "town-a")
    with transaction(site.engine()) as session:
        submitted = submit_completion(
            session, target.id, Actor.for_unit("town-a", "198.51.100.4", "Mozilla/5.0 (X11; Linux)"),
            local("2026-06-09T07:41"), "甲政发〔2026〕9号", [],
        ).id  # fmt: skip
    listed = site.ok("review", now="2026-06-09T10:00:00+08:00")
    assert "2026-06-09 07:41" in listed and "2026-06-08 23:41" not in listed
    (row,) = site.json("review", now="2026-06-09T10:00:00+08:00")
    assert list(row) == REVIEW_FIELDS and row["kind"] == "completion"
    assert row["submitted_at"] == "2026-06-09T07:41:00+08:00"

    approved = site.ok("review", "approve", str(submitted), now="2026-06-09T10:00:00+08:00")
    assert (
        approved.strip()
        == f"#{submitted} 通过：事项 #{target.id} 已办结，完成时间 2026-06-09 07:41（按时完成）"
    )

    shown = site.ok("show", str(target.id), now="2026-06-09T10:05:00+08:00")
    assert re.search(rf"│ {submitted}\s*│\s*办结申请\s*│\s*2026-06-09 07:41", shown)
    assert re.search(r"完成\s*│\s*待审核 → 已完成，完成时间 2026-06-09 07:41，按时完成", shown)
    assert "来源地址 198.51.100.4；浏览器 Mozilla/5.0 (X11; Linux)" in shown  # the unit's page: its client
    logged = site.ok("log", "--kind", "obligation.done", now="2026-06-09T10:05:00+08:00")
    assert "待审核 → 已完成，完成时间 2026-06-09 07:41，按时完成" in logged
    assert "+00:00" not in logged and "23:41" not in logged
    tasks = site.ok("tasks", "--state", "done", now="2026-06-09T10:05:00+08:00")
    assert "2026-06-09 完成" in tasks
    (done,) = site.json("tasks", "--state", "done", now="2026-06-09T10:05:00+08:00")
    assert list(done) == TASK_FIELDS and done["done_at"] == "2026-06-09T07:41:00+08:00"


def test_an_imported_done_date_is_logged_as_that_local_day(site):
    target = site.obligation("D1", "town-b")
    status_file = site.root / "filled_good.csv"
    status_file.write_text(f"ref,state,done_on\n#{target.id},done,2026-06-05\n", encoding="utf-8")
    assert site("import-status", str(status_file))[0] == 0
    logged = site.ok("log", "--kind", "obligation.done")
    assert (
        "已逾期 → 已完成，完成时间 2026-06-05" in logged or "办理中 → 已完成，完成时间 2026-06-05" in logged
    )
    assert "2026-06-04" not in logged and "T16:00" not in logged
    assert "由 filled_good.csv 导入" in logged and "imported" not in logged
    (event,) = site.json("log", "--kind", "obligation.done")
    assert list(event) == EVENT_FIELDS
    assert (event["kind"], event["after"]["state"]) == ("obligation.done", "done")  # machine words kept
    assert datetime.fromisoformat(event["after"]["done_at"]) == local("2026-06-05T00:00")


def _timestamps(lines: list[str]) -> list[str]:
    stamps = []
    for line in lines:
        found = re.fullmatch(r"<\d>(\{.*\})", line.strip())
        if found:
            stamps.append(json.loads(found.group(1))["timestamp"])
    return stamps


def test_the_portals_log_lines_carry_the_plans_offset_as_the_daemons_do(site):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUBAN_", "SUDO_"))}
    env |= {"DUBAN_TEST_WEB_SECRET": SECRET, "DUBAN_FAKE_NOW": "2026-06-12T10:00:00+08:00", "TZ": "UTC"}
    config = str(site.root / "config.toml")
    ran = subprocess.run(
        [DUBAN, "--config", config, "run", "--once"], cwd=site.root, env=env,
        capture_output=True, text=True, encoding="utf-8", timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    daemon = _timestamps(ran.stdout.splitlines())
    port = re.search(r'listen = "127.0.0.1:(\d+)"', Path(config).read_text(encoding="utf-8")).group(1)
    output = (site.root / "web.log").open("w+", encoding="utf-8")
    process = subprocess.Popen(
        [DUBAN, "--config", config, "web"], cwd=site.root, env=env, stdout=output, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/static/duban.css", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None, "duban web did not start"
                time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=20)
        output.seek(0)
        web = _timestamps(output.read().splitlines())
        output.close()
    assert daemon and web
    for stamp in daemon + web:
        assert stamp.endswith("+08:00"), stamp
        assert datetime.fromisoformat(stamp).utcoffset().total_seconds() == 8 * 3600


# -- 8. Chinese wherever a county user reads ------------------------------------------------------


def test_the_audit_log_reads_in_chinese_and_its_json_keeps_the_machine_words(site):
    site.ok("run", "--once", now="2026-06-03T10:00:00+08:00")  # T1 (due 06-01) becomes overdue
    site.ok("waive", "T1", "--unit", "town-a", "--reason", "本镇另行报送", now="2026-06-03T10:05:00+08:00")
    site.ok(
        "done", "D1", "--unit", "town-b", "--evidence", "乙政发〔2026〕3号", now="2026-06-03T10:05:00+08:00"
    )
    logged = site.ok("log", "--all")
    for word in ("启动方案", "阶段开始", "转为逾期", "邮件待发", "邮件已发送", "免除", "完成"):
        assert word in logged, word
    assert re.search(r"免除\s*│\s*甲镇人民政府\s*│\s*#\d+\s*│\s*已逾期 → 已免除，理由 本镇另行报送", logged)
    assert re.search(
        r"完成\s*│\s*乙镇人民政府\s*│\s*#\d+\s*│\s*办理中 → 已完成，完成时间 2026-06-03 10:05，按时完成，"
        r"完成依据 乙政发〔2026〕3号",
        logged,
    )
    assert not MACHINE_KIND.search(logged.replace("example.gov.cn", "").replace("duban.test", ""))
    assert "done_late" not in logged and "True" not in logged and "=" not in logged

    events = site.json("log", "--all")
    assert all(list(e) == EVENT_FIELDS and MACHINE_KIND.fullmatch(e["kind"]) for e in events)
    kinds = {e["kind"] for e in events}
    assert {"program.started", "phase.active", "obligation.overdue", "obligation.waived", "obligation.done",
            "mail.queued", "mail.sent"} <= kinds  # fmt: skip
    done = next(e for e in events if e["kind"] == "obligation.done")
    assert set(done["after"]) == {"state", "done_at", "done_late", "evidence"}
    assert (done["before"], done["after"]["state"], done["after"]["done_late"]) == (
        {"state": "open"},
        "done",
        False,
    )
    assert site.json("log", "--kind", "完成") == [done]  # a kind may be named by its word


def test_old_english_details_are_read_in_chinese_without_rewriting_them(site):
    """Rows written before the words changed: an import's detail, withdrawn notices, a skipped
    notice, a reclaimed email; shown in Chinese, stored (and in --json) as they were."""
    target = site.obligation("D1", "town-a")
    old = [
        ("obligation.done", target.id, {"state": "overdue"},
         {"state": "done", "done_at": "2026-06-04T16:00:00+00:00", "done_late": True, "evidence": None},
         "imported from filled_good.xlsx; 1 waiting notice(s) withdrawn"),
        ("notice.skipped", target.id, None, None,
         "caught up on 2026-06-15: the obligation is already due (2026-06-10)"),
        ("mail.reclaimed", None, {"state": "sending"}, {"state": "pending", "outbox_id": 3},
         "the sender stopped while sending (its claim expired): the server may have the message; "
         "sent again with the same Message-ID"),
    ]  # fmt: skip
    with transaction(site.engine()) as session:
        for kind, oid, before, after, detail in old:
            session.add(Event(at=local("2026-06-12T09:00"), actor="duban", kind=kind, obligation_id=oid,
                              unit="town-a", subject="x", before=before, after=after, detail=detail))  # fmt: skip
    logged = site.ok("log", "--all", "--since", "2026-06-12")
    assert "已逾期 → 已完成，完成时间 2026-06-05，逾期完成" in logged
    assert "由 filled_good.xlsx 导入；撤回 1 条待发通知" in logged
    assert "2026-06-15 补处理时已到截止日（2026-06-10），不再提醒" in logged
    assert (
        "发送进程在发送中途停止（认领已过期）：邮件服务器可能已收到该邮件；将以相同的 Message-ID 重新发送"
        in logged
    )
    assert "imported" not in logged and "caught up" not in logged and "sender stopped" not in logged
    stored = [
        e["detail"] for e in site.json("log", "--all", "--since", "2026-06-12") if e["actor"] == "duban"
    ]
    assert stored[-3:] == [detail for *_, detail in old]  # nothing rewritten


def test_new_events_store_their_prose_in_chinese(site):
    """A tick after hours, days late: stale reminders skipped, the overdue notice waits for 09:00 —
    and is withdrawn when the obligation is done."""
    site.ok("run", "--once", now="2026-06-12T20:00:00+08:00")
    site.ok("done", "D1", "--unit", "town-a", now="2026-06-12T20:05:00+08:00")
    with Session(site.engine()) as session:
        details = [e.detail for e in session.exec(select(Event).where(Event.kind == "obligation.done"))]
        skipped = [e.detail for e in session.exec(select(Event).where(Event.kind == "notice.skipped"))]
    (detail,) = details
    assert re.fullmatch(r"撤回 [12] 条待发通知", detail)
    assert "2026-06-12 补处理时已到截止日（2026-06-10），不再提醒" in skipped
    assert skipped and all(not (d or "").isascii() for d in skipped)


def test_status_warnings_are_chinese_and_december_says_what_the_new_year_repeats(site):
    before = site.ok("status", now="2026-11-15T10:00:00+08:00")
    assert 'year = "current"' not in before  # not yet: only in the last month of the year
    out = site.ok("status", now="2026-12-31T10:00:00+08:00")
    warnings = [line for line in out.splitlines() if line.startswith("警告：")]
    assert warnings, out
    calendar = next(w for w in warnings if "放假安排" in w)
    assert calendar.startswith("警告：用语测试方案 2026 年度（words-test）：2027 年尚无国务院公布的放假安排")
    assert "calendar_overrides" in calendar and "no official" not in out
    (rollover,) = [w for w in warnings if 'year = "current"' in w]
    assert "2027 年 1 月 1 日起，守护进程将启动 2027 年度" in rollover
    assert "工作 D1（1 项），任务 T1（1 项）" in rollover and "D2" not in rollover  # D2 recurs: not repeated
    assert "把该项的 year 改为 2026" in rollover
    (report,) = site.json("status", now="2026-12-31T10:00:00+08:00")
    assert [w for w in report["warnings"] if 'year = "current"' in w] == [rollover.removeprefix("警告：")]


def test_scorecard_out_and_the_other_lines_a_clerk_reads_are_chinese(site, tmp_path):
    upgraded, up_to_date, started = site.said
    assert upgraded.startswith("数据库结构已升级：空 → ") and up_to_date.startswith(
        "数据库结构已是最新（版本 "
    )
    assert (
        started.strip()
        == "已启动方案「用语测试方案」2026 年度（words-test，#1）：新增 6 项，改期 0 项，取消 0 项，未变 0 项"
    )
    again = site.ok("start", "words-test", "--year", "2026")
    assert (
        again.strip()
        == "已按现有文件核对方案「用语测试方案」2026 年度（words-test，#1）：新增 0 项，改期 0 项，取消 0 项，未变 6 项"
    )
    out_file = tmp_path / "综合考评.html"
    written = site.ok("scorecard", "--format", "html", "--out", str(out_file), "--as-of", "2026-06-12")
    assert (
        written.strip() == f"综合考评（用语测试方案 2026 年度，截至 2026-06-12）已写入 {out_file}：2 个单位"
    )
    assert site.ok("outbox", "retry", "--all-failed").strip() == "没有发送失败的邮件，无需重发"
    code, _, err = site("web", "login-link", "someone@example.com")
    assert code == 2 and "不在 config.toml 的 [web] office_emails 中" in err
    code, _, err = site("waive", "T1", "--unit", "town-b")
    assert code == 2 and err.strip() == 'duban: --reason：免除须说明理由，如 --reason "本镇无此项执法职能"'
    code, _, err = site("calendar", "export", "--unit", "office", "--out", str(tmp_path / "a.ics"))
    assert (code, err.strip()) == (
        1,
        f"duban: 单位 县督查办（office）没有未完成的督办事项：未写入 {tmp_path / 'a.ics'}",
    )
    code, _, err = site("start", "words-test", "--year", "2027")
    assert code == 0 and err.startswith("duban: 警告：2027 年尚无国务院公布的放假安排")


# -- 12. show, the 2027 footer ---------------------------------------------------------------------


def test_show_names_the_phase_and_lists_no_planned_notice_once_done(site):
    t1 = site.obligation("T1", "town-a")
    shown = site.ok("show", str(t1.id))
    assert re.search(r"阶段\s+宣传动员阶段", shown) and not re.search(r"阶段\s+p1\b", shown)
    d1 = site.obligation("D1", "town-b")
    assert "计划中的通知：" in site.ok("show", str(d1.id), now="2026-06-02T10:00:00+08:00")
    site.ok("done", str(d1.id), now="2026-06-02T10:00:00+08:00")
    assert "计划中的通知" not in site.ok("show", str(d1.id), now="2026-06-02T10:05:00+08:00")
    (story,) = site.json("show", str(d1.id), now="2026-06-02T10:05:00+08:00")
    assert any(t["fired_at"] is None for t in story["timers"])  # --json still lists every timer


def test_plan_for_a_year_without_official_holidays_says_where_its_schedule_goes(site):
    code, out, err = site("plan", "words-test", "--year", "2027")
    assert code == 0, err
    footer = out[out.index("注意：2027年") :]
    assert "调休上班日未知" in footer
    assert "日历覆盖文件" in footer and "examples/calendar-overrides.example.toml" in footer
    assert "[definitions]" in re.sub(r"\s+", "", footer) and "calendar_overrides" in re.sub(
        r"\s+", "", footer
    )
