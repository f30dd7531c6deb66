"""The admin CLI, driven for real: ``duban status | tasks | show | done | waive | reopen | log |
calendar export`` against a SQLite database built by ``duban db upgrade`` + ``duban start``.

The deployment is built once per module by the real CLI and the real daemon (``duban run --once``,
maildir transport): started 2026-05-20, T1 of 丙镇 waived on 06-01 by "bob", ticked and mailed on
2026-06-15 10:00. Each test works on its own copy. Time is a parameter (``DUBAN_FAKE_NOW``), never
waited for. Most commands run in this process (``orchestrator.cli.main``); the executable runs for
the error and exit-code cases (several at once), the unusable databases and config files, and the
daemon.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import structlog
from icalendar import Calendar
from rich.console import Console
from support import DUBAN, towns_plan, unit, units_toml

from orchestrator.cli import main, tasks
from orchestrator.store.models import SCHEMA_REVISION

TZ = ZoneInfo("Asia/Shanghai")
NOW = "2026-06-15T10:30:00+08:00"

DEFINITION = towns_plan("admin-test", "督办管理测试方案")

UNITS = units_toml(
    unit("office", "县督查办", "office"),
    unit("town-a", "甲镇人民政府", "town", emails=["town-a@example.gov.cn", "jia@example.gov.cn"]),
    unit("town-b", "乙镇人民政府", "town"),
    unit("town-c", "丙镇人民政府", "town"),
)

CONFIG = """\
[database]
url = "sqlite:///duban.db"

[definitions]
paths = ["definitions"]
units = "units.toml"

[daemon]
tick_interval = 60
dispatch_interval = 0.5

[mail]
transport = "maildir"
maildir = "mail"
sender = "督办系统 <duban@example.gov.cn>"
domain = "duban.test"

[[programs]]
workflow = "admin-test"
year = 2026
"""

TASK_FIELDS = [
    "id", "key", "workflow", "year", "task", "title", "phase", "unit", "unit_name", "lead", "lead_names",
    "occurrence", "opens", "due", "state", "days_left", "days_late", "overdue_since", "done_at",
    "done_late", "evidence", "reason", "updated_at",
]  # fmt: skip
EVENT_FIELDS = [
    "id", "at", "actor", "kind", "program_id", "obligation_id", "unit", "subject", "before", "after", "detail",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _restore_logging():
    """``main()`` points structlog at this test's captured stderr; give later tests the config back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def environment(now: str = NOW, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DUBAN_", "SUDO_", "NOTIFY_", "WATCHDOG_"))
    }
    env.update({"DUBAN_FAKE_NOW": now, "COLUMNS": "200", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def run(root: Path, *args: str, now: str = NOW, **extra: str) -> subprocess.CompletedProcess:
    """The real ``duban`` executable, with ``--config`` of the deployment at ``root``."""
    return subprocess.run(
        [DUBAN, "--config", str(root / "config.toml"), *args],
        cwd=root,
        env=environment(now, **extra),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args}: {result.stderr}"
    return result


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> Path:
    """The deployment, built once by the real CLI and daemon (see the module docstring)."""
    root = tmp_path_factory.mktemp("admin") / "deploy"
    (root / "definitions").mkdir(parents=True)
    (root / "definitions" / "admin_test.toml").write_text(DEFINITION, encoding="utf-8")
    (root / "units.toml").write_text(UNITS, encoding="utf-8")
    (root / "config.toml").write_text(CONFIG, encoding="utf-8")
    ok(run(root, "db", "upgrade", now="2026-05-20T09:00:00+08:00"))
    ok(run(root, "start", "admin-test", "--year", "2026", now="2026-05-20T09:00:00+08:00"))
    ok(run(root, "waive", "T1", "--unit", "town-c", "--reason", "本镇另行报送", now="2026-06-01T09:00:00+08:00", SUDO_USER="bob"))  # fmt: skip
    ok(run(root, "run", "--once", now="2026-06-15T10:00:00+08:00"))
    return root


@pytest.fixture
def site(golden: Path, tmp_path: Path) -> Path:
    """This test's own copy of the deployment."""
    root = tmp_path / "deploy"
    shutil.copytree(golden, root)
    return root


@dataclass
class Cli:
    """``orchestrator.cli.main(argv)`` in this process, with the deployment's config and a pinned clock."""

    root: Path
    capsys: pytest.CaptureFixture
    monkeypatch: pytest.MonkeyPatch

    def __call__(self, *args: str, now: str = NOW, user: str = "alice") -> tuple[int, str, str]:
        self.monkeypatch.setenv("DUBAN_FAKE_NOW", now)
        self.monkeypatch.setenv("SUDO_USER", user)
        self.monkeypatch.setenv("COLUMNS", "200")
        self.capsys.readouterr()
        code = main(["--config", str(self.root / "config.toml"), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str, **options) -> list[dict]:
        code, out, err = self(*args, "--json", **options)
        assert code == 0, err
        return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def cli(site: Path, capsys, monkeypatch) -> Cli:
    return Cli(site, capsys, monkeypatch)


def rows_by(rows: list[dict], *fields: str) -> set[tuple]:
    return {tuple(r[f] for f in fields) for r in rows}


# -- status ---------------------------------------------------------------------------------------


def test_status_shows_phases_counts_outbox_and_the_last_tick(cli):
    code, out, err = cli("status")
    assert code == 0, err
    assert "督办管理测试方案 · 2026" in out
    assert re.search(r"实施阶段\s*│\s*2026-06-01 — 2026-06-30\s*│\s*进行中", out)
    assert "共 12 项：未开始 3 · 办理中 6 · 已逾期 2 · 已免除 1" in out
    assert "2 个单位有逾期事项" in out
    assert "待发送 0 · 发送中 0 · 已发送 4 · 发送失败 0" in out
    assert "守护进程：未运行" in out and "最近一次定时处理 2026-06-15 10:00:00" in out
    assert "警告" not in out
    (report,) = cli.json("status")
    (program,) = report["programs"]
    assert program["phases"] == [
        {"phase": "p1", "name": "实施阶段", "start": "2026-06-01", "end": "2026-06-30", "state": "active"}
    ]
    assert program["obligations"] == {
        "pending": 3, "open": 6, "overdue": 2, "submitted": 0, "done": 0, "waived": 1, "cancelled": 0, "done_late": 0, "total": 12,
    }  # fmt: skip
    assert report["outbox"] == {
        "pending": 0, "sending": 0, "sent": 4, "failed": 0, "refused_recipients": 0, "total": 4,
        "channels": {"email": {"pending": 0, "sending": 0, "sent": 4, "failed": 0}},
    }  # fmt: skip
    assert report["daemon_alive"] is False
    assert report["last_tick_at"] == "2026-06-15T10:00:00+08:00"
    assert [d["role"] for d in report["daemons"]] == ["stopped"]
    assert report["warnings"] == []


def test_status_warns_when_a_program_runs_in_a_year_without_official_working_days(cli):
    code, _, err = cli("start", "admin-test", "--year", "2027")
    assert code == 0, err
    (report,) = cli.json("status")
    assert [p["year"] for p in report["programs"]] == [2026, 2027]
    (warning,) = report["warnings"]
    assert warning.startswith("督办管理测试方案 2027 年度（admin-test）：2027 年尚无国务院公布的放假安排")
    assert "把 [2027] 写入日历覆盖文件" in warning and "calendar_overrides" in warning
    _, out, _ = cli("status")
    assert "警告：督办管理测试方案 2027 年度（admin-test）：2027 年尚无国务院公布的放假安排" in out
    assert "no official" not in out


# -- tasks ----------------------------------------------------------------------------------------


def test_tasks_reads_well_unit_names_days_left_or_late_and_totals(cli):
    code, out, err = cli("tasks")
    assert code == 0, err
    lines = out.splitlines()
    row = next(line for line in lines if "甲镇人民政府" in line and "T1" in line)
    assert re.search(r"报送实施方案\s*│\s*甲镇人民政府\s*│\s*2026-06-10\s*│\s*已逾期\s*│\s*逾期 5 天", row)
    assert any(re.search(r"丙镇人民政府.*已免除.*免除：本镇另行报送", line) for line in lines)
    assert any(re.search(r"报送月度进展（2026-06-15）.*今日到期", line) for line in lines)
    assert any(re.search(r"报送工作总结.*还剩 11 天", line) for line in lines)
    assert any(re.search(r"报送月度进展（2026-07-15）.*2026-07-06 开始", line) for line in lines)
    assert "共 12 项：未开始 3 · 办理中 6 · 已逾期 2 · 已免除 1" in out
    columns = [line.index("│", 3) for line in lines if line.startswith("│")]
    assert len(set(columns)) == 1  # Chinese text is measured by display width: the columns line up


def test_overdue_rows_are_red_and_rows_due_within_three_days_yellow(cli, monkeypatch):
    terminal = Console(force_terminal=True, color_system="standard", width=200, record=True, highlight=False)
    monkeypatch.setattr(tasks, "console", terminal)
    code, _, err = cli("tasks", now="2026-06-23T10:00:00+08:00")
    assert code == 0, err
    styled = {}
    for line in terminal.export_text(styles=True).splitlines():
        found = re.search(r"│\s*(\d+)\s*│", re.sub(r"\x1b\[[0-9;]*m", "", line))
        if found:
            styled[int(found.group(1))] = line
    red, yellow = "\x1b[31m", "\x1b[33m"
    by_id = {r["id"]: r for r in cli.json("tasks", now="2026-06-23T10:00:00+08:00")}
    for obligation_id, row in by_id.items():
        line = styled[obligation_id]
        if row["days_late"] is not None:
            assert red in line and yellow not in line, line
        elif row["days_left"] is not None and row["days_left"] <= 3:
            assert yellow in line and red not in line, line
        else:
            assert red not in line and yellow not in line, line
    assert {r["task"] for r in by_id.values() if r["days_late"]} == {"T1", "M1"}
    assert {(r["task"], r["days_left"]) for r in by_id.values() if r["days_left"] is not None} == {
        ("T2", 3),
        ("M1", 22),
    }


def test_tasks_json_has_stable_fields_one_object_per_line(cli):
    rows = cli.json("tasks")
    assert len(rows) == 12
    assert all(list(r) == TASK_FIELDS for r in rows)
    late = next(r for r in rows if r["task"] == "T1" and r["unit"] == "town-a")
    assert late | {"id": 0} == {
        "id": 0,
        "key": "admin-test/2026/T1/town-a/-",
        "workflow": "admin-test",
        "year": 2026,
        "task": "T1",
        "title": "报送实施方案",
        "phase": "p1",
        "unit": "town-a",
        "unit_name": "甲镇人民政府",
        "lead": ["office"],
        "lead_names": ["县督查办"],
        "occurrence": None,
        "opens": "2026-06-01",
        "due": "2026-06-10",
        "state": "overdue",
        "days_left": None,
        "days_late": 5,
        "overdue_since": "2026-06-11",
        "done_at": None,
        "done_late": None,
        "evidence": None,
        "reason": None,
        "updated_at": "2026-06-15T10:00:00+08:00",
    }
    assert [r["due"] for r in rows] == sorted(r["due"] for r in rows)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--state", "overdue"], {("T1", "town-a"), ("T1", "town-b")}),
        (["--state", "overdue,waived"], {("T1", "town-a"), ("T1", "town-b"), ("T1", "town-c")}),
        (["--unit", "甲镇人民政府", "--state", "open"], {("M1", "town-a"), ("T2", "town-a")}),
        (["--unit", "town-b", "--due-before", "2026-06-15"], {("T1", "town-b"), ("M1", "town-b")}),
        (["--due-before", "2026-06-10"], {("T1", "town-a"), ("T1", "town-b"), ("T1", "town-c")}),
        (["--phase", "p1", "--unit", "town-c"], {("T1", "town-c"), ("T2", "town-c")}),
        (["--program", "admin-test:2026", "--state", "pending", "--unit", "town-a"], {("M1", "town-a")}),
        (["--state", "done"], set()),
    ],
)
def test_tasks_filters(cli, args, expected):
    assert rows_by(cli.json("tasks", *args), "task", "unit") == expected


# -- show, done, waive, reopen, log ------------------------------------------------------------------


def test_show_tells_who_was_told_when_and_the_whole_history(cli):
    (story,) = cli.json("show", "T1", "--unit", "town-a")
    assert list(story) == ["obligation", "timers", "notices", "history", "submissions"]
    assert (
        story["obligation"]["state"] == "overdue"
        and story["obligation"]["program_title"] == "督办管理测试方案"
    )
    notices = {(n["kind"], n["recipient"]): n for n in story["notices"]}
    assert set(notices) == {("overdue", "town-a"), ("escalation", "office")}
    told = notices[("overdue", "town-a")]
    # sent by `run --once` at 10:00 on a shifted clock that keeps running: within that minute
    assert told["message_state"] == "sent" and re.fullmatch(r"2026-06-15T10:00:\d\d\+08:00", told["sent_at"])
    assert told["to"] == ["town-a@example.gov.cn", "jia@example.gov.cn"]
    assert notices[("escalation", "office")]["to"] == ["office@example.gov.cn"]
    kinds = [e["kind"] for e in story["history"]]
    assert kinds.index("obligation.open") < kinds.index("obligation.overdue") < kinds.index("mail.sent")
    assert all(list(e) == EVENT_FIELDS for e in story["history"])
    upcoming = [(t["kind"], t["on"]) for t in story["timers"] if t["fired_at"] is None]
    assert upcoming == [("escalation", "2026-06-17")]

    code, out, err = cli("show", f"#{story['obligation']['id']}")
    assert code == 0, err
    assert "#1 T1 报送实施方案" in out and "甲镇人民政府（town-a）" in out and "逾期 5 天" in out
    assert re.search(r"逾期\s*│\s*甲镇人民政府\s*│\s*2026-06-15 10:00\s*│\s*已编入邮件\s*│\s*#\d+ 已发送 2026-06-15 10:00 → town-a@example.gov.cn, jia@example.gov.cn", out)  # fmt: skip
    assert "计划中的通知：2026-06-17 催办" in out
    assert re.search(r"转为逾期\s*│\s*办理中 → 已逾期", out)


def test_done_records_who_when_and_the_evidence_and_log_and_show_answer_it(cli):
    code, out, err = cli(
        "done", "T1", "--unit", "甲镇人民政府", "--evidence", "甲政发〔2026〕8号", user="alice"
    )
    assert (code, err) == (0, "")
    assert out.strip() == "#1 T1 甲镇人民政府：已逾期 → 已完成（逾期完成）"
    (story,) = cli.json("show", "1")
    row = story["obligation"]
    assert (row["state"], row["done_late"], row["evidence"]) == ("done", True, "甲政发〔2026〕8号")
    assert row["done_at"] == "2026-06-15T10:30:00+08:00"
    last = story["history"][-1]
    assert (last["kind"], last["actor"], last["at"]) == (
        "obligation.done",
        "alice",
        "2026-06-15T10:30:00+08:00",
    )
    assert last["after"]["evidence"] == "甲政发〔2026〕8号"
    logged = cli.json("log", "--kind", "obligation.done")
    assert [(e["actor"], e["obligation_id"], e["unit"]) for e in logged] == [("alice", 1, "town-a")]
    code, out, _ = cli("log", "--kind", "obligation.")
    assert re.search(
        r"alice\s*│\s*完成\s*│\s*甲镇人民政府\s*│\s*#1\s*│\s*已逾期 → 已完成，完成时间 2026-06-15 10:30，逾期完成，"
        r"完成依据 甲政发〔2026〕8号",
        out,
    )
    assert re.search(
        r"bob\s*│\s*免除\s*│\s*丙镇人民政府\s*│\s*#\d+\s*│\s*\S+ → 已免除，理由 本镇另行报送", out
    )
    assert "obligation." not in out and "done_late" not in out
    (on_time,) = [line for line in cli("done", "T2", "--unit", "town-b")[1].splitlines() if line]
    assert on_time == "#8 T2 乙镇人民政府：办理中 → 已完成（按时完成）"


def test_waive_then_reopen_through_the_cli(cli):
    code, out, err = cli("waive", "T2", "--unit", "town-b", "--reason", "并入年度总结", user="carol")
    assert code == 0, err
    assert out.strip() == "#8 T2 乙镇人民政府：办理中 → 已免除"
    assert rows_by(cli.json("tasks", "--state", "waived"), "unit", "reason") == {
        ("town-b", "并入年度总结"),
        ("town-c", "本镇另行报送"),
    }
    code, out, err = cli("reopen", "8", "--reason", "不宜合并", now="2026-06-29T10:00:00+08:00")
    assert code == 0, err
    assert out.strip() == "#8 T2 乙镇人民政府：已免除 → 已逾期"
    (story,) = cli.json("show", "8")
    assert story["obligation"]["reason"] is None
    last = story["history"][-1]
    assert (last["kind"], last["before"]["reason"], last["detail"]) == (
        "obligation.reopened",
        "并入年度总结",
        "不宜合并",
    )


def test_log_filters_by_day_unit_kind_and_limit(cli):
    everything = cli.json("log")
    assert all(list(e) == EVENT_FIELDS for e in everything)
    assert [e["at"] for e in everything] == sorted(e["at"] for e in everything)
    assert everything[0]["kind"] == "program.started" and everything[0]["at"] == "2026-05-20T09:00:00+08:00"
    since = cli.json("log", "--since", "2026-06-01")
    assert since and all(e["at"] >= "2026-06-01" for e in since)
    assert since[0]["kind"] == "obligation.waived" and since[0]["actor"] == "bob"
    town_c = cli.json("log", "--unit", "丙镇人民政府")
    assert town_c and {e["unit"] for e in town_c} == {"town-c"}
    assert "mail.sent" in {e["kind"] for e in town_c}  # the digests sent to 丙镇 are in its log
    assert cli.json("log", "--limit", "2") == everything[-2:]


# -- the change reaches the daemon ----------------------------------------------------------------


def test_done_through_the_cli_stops_every_later_notice_at_the_next_tick(cli, site):
    """The in-process variant: the same engine the daemon runs (``tick``), at later dates."""
    from orchestrator.engine.tick import tick
    from orchestrator.service.config import load_settings
    from orchestrator.service.runtime import load_configured_bundles, send_policy
    from orchestrator.store.db import open_database

    assert cli("done", "T2", "--unit", "town-a", "--evidence", "已报送")[0] == 0
    settings = load_settings(site / "config.toml")
    engine = open_database(settings.database.url)
    policy = send_policy(settings, load_configured_bundles(settings))
    for day in ("2026-06-23", "2026-06-26", "2026-06-29", "2026-07-03"):
        tick(engine, datetime.fromisoformat(f"{day}T10:00:00+08:00").astimezone(UTC), policy)
    engine.dispose()
    after = [n for n in cli.json("show", "T2", "--unit", "town-a")[0]["notices"] if n["send_at"] > NOW]
    other = [n for n in cli.json("show", "T2", "--unit", "town-b")[0]["notices"] if n["send_at"] > NOW]
    assert after == []
    assert {n["kind"] for n in other} == {"reminder", "due_today", "overdue", "escalation"}


# -- calendar export --------------------------------------------------------------------------------


def email_uids(maildir: Path, address: str, component: str = "VEVENT") -> dict[str, str]:
    """UID → SUMMARY of every deadline entry in the .ics parts of the emails sent to ``address``."""
    found = {}
    for path in (maildir / "new").iterdir():
        message = message_from_bytes(path.read_bytes(), policy=default_policy)
        if address not in message["To"]:
            continue
        for part in message.walk():
            if part.get_content_type() == "text/calendar":
                for entry in Calendar.from_ical(part.get_payload(decode=True)).walk(component):
                    if str(entry["UID"]).startswith(("deadline-", "todo-")):
                        found[str(entry["UID"])] = str(entry["SUMMARY"])
    return found


def test_calendar_export_has_one_event_per_open_obligation_with_the_emails_uids(cli, site):
    code, out, err = cli("calendar", "export", "--unit", "甲镇人民政府", "--out", str(site / "town-a.ics"))
    assert code == 0, err
    assert out.strip() == f"已写入 {site / 'town-a.ics'}：4 项日程（VEVENT）"
    calendar = Calendar.from_ical((site / "town-a.ics").read_bytes())
    events = {str(e["UID"]): e for e in calendar.walk("VEVENT")}
    open_rows = [
        r for r in cli.json("tasks", "--unit", "town-a") if r["state"] in ("pending", "open", "overdue")
    ]
    assert len(events) == len(open_rows) == 4
    starts = [e["DTSTART"].dt.isoformat() for e in calendar.walk("VEVENT")]
    assert starts == sorted(r["due"] for r in open_rows)  # all-day, on the due date, in date order
    emailed = email_uids(site / "mail", "town-a@example.gov.cn")
    assert emailed and set(emailed) <= set(events)  # the same entries, not duplicates
    assert {str(events[uid]["SUMMARY"]) for uid in emailed} == set(emailed.values())


def test_calendar_export_kind_todos_has_one_todo_per_open_obligation(cli, site):
    code, out, err = cli(
        "calendar", "export", "--unit", "town-a", "--kind", "todos", "--out", str(site / "town-a.ics")
    )
    assert code == 0, err
    assert out.strip() == f"已写入 {site / 'town-a.ics'}：4 项待办（VTODO）"
    calendar = Calendar.from_ical((site / "town-a.ics").read_bytes())
    todos = {str(t["UID"]): t for t in calendar.walk("VTODO")}
    open_rows = [
        r for r in cli.json("tasks", "--unit", "town-a") if r["state"] in ("pending", "open", "overdue")
    ]
    assert len(todos) == len(open_rows) == 4
    assert {t["DUE"].dt.isoformat() for t in todos.values()} == {r["due"] for r in open_rows}
    assert cli("calendar", "export", "--kind", "todos", "--out", str(site / "all.ics"))[0] == 0
    assert len(Calendar.from_ical((site / "all.ics").read_bytes()).walk("VTODO")) == 11
    code, _, err = cli("calendar", "export", "--kind", "tasks", "--out", str(site / "x.ics"))
    assert (code, err.strip()) == (2, 'duban: --kind：没有 "tasks" 这一种（可选 events、todos、both）')


# -- help -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["tasks"],
        ["show"],
        ["done"],
        ["waive"],
        ["reopen"],
        ["log"],
        ["calendar", "export"],
        ["outbox"],
        ["outbox", "retry"],
    ],
)
def test_every_command_has_help_with_an_example_and_the_exit_codes(cli, command):
    code, out, _ = cli(*command, "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "Example:" in text and "duban " + command[0] in text.split("Example:")[1]
    assert "Exit codes: 0 ok · 1 the action or check failed · 2 bad usage or bad input" in text


# -- bad input: one line, exit 2, nothing changed ------------------------------------------------------


def snapshot(database: Path) -> tuple[bytes, list[str]]:
    """The file's bytes and every row (a refused command must change neither)."""
    data = database.read_bytes()
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return data, list(connection.iterdump())
    finally:
        connection.close()


BAD_INPUT = {
    "unknown task": (["done", "T99", "--unit", "town-a"], 'unknown task "T99": no obligation has it'),
    "unknown unit": (["done", "T1", "--unit", "nowhere"], '--unit: unknown unit "nowhere"'),
    "unknown unit filter": (["tasks", "--unit", "nowhere"], '--unit: unknown unit "nowhere"'),
    "unknown ref": (["show", "9999"], "no obligation #9999"),
    "unknown key": (
        ["show", "admin-test/2026/T9/town-a/-"],
        'no obligation with the key "admin-test/2026/T9/town-a/-"',
    ),
    "ambiguous": (["done", "T1"], '"T1" matches 3 obligations; add --unit or use an id: #1 town-a'),
    "ambiguous occurrence": (["done", "M1", "--unit", "town-a"], "add --occurrence or use an id"),
    "unknown occurrence": (
        ["done", "M1", "--unit", "town-a", "--occurrence", "2026-08-15"],
        'no occurrence "2026-08-15"',
    ),
    "id with --unit": (["show", "3", "--unit", "town-a"], "3 names one obligation already"),
    "done on waived": (["done", "T1", "--unit", "town-c"], "#3 is waived: reopen it first"),
    "waive done twice": (["waive", "T1", "--unit", "town-c", "--reason", "x"], "#3 is already waived"),
    "reopen open": (
        ["reopen", "T2", "--unit", "town-a"],
        "is open: only a done or waived obligation can be reopened",
    ),
    "waive without reason": (["waive", "T2", "--unit", "town-a"], "--reason：免除须说明理由"),
    "waive blank reason": (
        ["waive", "T2", "--unit", "town-a", "--reason", "   "],
        "--reason：免除须说明理由",
    ),
    "bad due-before": (
        ["tasks", "--due-before", "2026-13-01"],
        '--due-before：日期 "2026-13-01" 有误，应为 YYYY-MM-DD，如 2026-06-10',
    ),
    "bad since": (["log", "--since", "15/06/2026"], '--since：日期 "15/06/2026" 有误，应为 YYYY-MM-DD'),
    "unknown state": (["tasks", "--state", "late"], '--state：没有 "late" 这种状态'),
    "unknown phase": (["tasks", "--phase", "p9"], '--phase: unknown phase "p9" (phases: p1)'),
    "unknown program": (
        ["tasks", "--program", "other:2026"],
        '--program: no program "other:2026" (programs: admin-test:2026)',
    ),
    "bad program": (["tasks", "--program", "admin-test:26"], "--program: bad value"),
    "export without --out": (["calendar", "export"], "--out：请指定要写入的 .ics 文件"),
    "export to nowhere": (
        ["calendar", "export", "--out", "/nonexistent/dir/x.ics"],
        "--out：/nonexistent/dir 不是文件夹",
    ),
    "retry without id": (
        ["outbox", "retry"],
        "outbox retry：请给出一个邮件编号，或用 --all-failed 重发全部发送失败的邮件",
    ),
    "retry bad id": (["outbox", "retry", "seven"], 'outbox retry：邮件编号 "seven" 有误，应为数字'),
    "retry a sent message": (
        ["outbox", "retry", "2"],
        "outbox message #2 is sent: only a failed message can be retried",
    ),
    "outbox bad state": (["outbox", "--state", "lost"], '--state：没有 "lost" 这种状态'),
    "missing argument": (["done"], "duban done: Missing argument 'REF'. (see `duban done --help`)"),
    "no such command": (["frobnicate"], "duban: No such command 'frobnicate'."),
    "bad clock": (["tasks"], 'DUBAN_FAKE_NOW: bad time "yesterday"'),
}


# These run as the real executable (exit code and stderr of the process); the other cases run the
# same entry point, ``orchestrator.cli.main``, in this process — the one thing that differs is the
# interpreter start-up, which would cost about a second per case.
THROUGH_THE_EXECUTABLE = {
    "unknown task",
    "unknown unit",
    "unknown ref",
    "ambiguous",
    "done on waived",
    "waive without reason",
    "bad due-before",
    "missing argument",
    "no such command",
}


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def _in_process(root: Path, args: list[str], now: str) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    saved, environ = structlog.get_config(), dict(os.environ)
    os.environ.update({"DUBAN_FAKE_NOW": now, "COLUMNS": "200"})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--config", str(root / "config.toml"), *args])
    finally:
        os.environ.clear()
        os.environ.update(environ)
        structlog.configure(**saved)
    return Outcome(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def refused(golden: Path, tmp_path_factory) -> tuple[dict[str, Outcome], tuple, tuple]:
    """Every bad input against one copy (the executable ones at once); its snapshot before and after."""
    root = tmp_path_factory.mktemp("refused") / "deploy"
    shutil.copytree(golden, root)
    before = snapshot(root / "duban.db")

    def executable(name: str) -> Outcome:
        result = run(root, *BAD_INPUT[name][0])
        return Outcome(result.returncode, result.stdout, result.stderr)

    names = [n for n in BAD_INPUT if n in THROUGH_THE_EXECUTABLE]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(names, pool.map(executable, names), strict=True))
    for name, (args, _) in BAD_INPUT.items():
        if name not in results:
            results[name] = _in_process(root, args, "yesterday" if name == "bad clock" else NOW)
    return results, before, snapshot(root / "duban.db")


@pytest.mark.parametrize("name", list(BAD_INPUT))
def test_bad_input_gets_one_clear_line_and_exit_2(refused, name):
    results, _, _ = refused
    result = results[name]
    _, message = BAD_INPUT[name]
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_refused_commands_leave_the_database_byte_for_byte_unchanged(refused):
    _, (data_before, rows_before), (data_after, rows_after) = refused
    assert rows_after == rows_before
    assert data_after == data_before


def test_an_export_with_nothing_open_fails_with_exit_1(site):
    result = run(site, "calendar", "export", "--unit", "office", "--out", str(site / "office.ics"))
    assert (result.returncode, result.stdout) == (1, "")
    assert (
        result.stderr.strip()
        == f"duban: 单位 县督查办（office）没有未完成的督办事项：未写入 {site / 'office.ics'}"
    )
    assert not (site / "office.ics").exists()


def test_debug_shows_the_traceback(site):
    result = run(site, "--debug", "show", "9999")
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "NotFound: no obligation #9999" in result.stderr


# -- databases and config files that cannot be used ------------------------------------------------


def _config(root: Path, url: str) -> Path:
    path = root / f"config-{Path(url).stem}.toml"
    path.write_text(CONFIG.replace('url = "sqlite:///duban.db"', f'url = "{url}"'), encoding="utf-8")
    return path


def _run_config(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DUBAN, "--config", str(config), *args],
        env=environment(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def _sqlite(path: Path, *statements: str) -> None:
    connection = sqlite3.connect(path)
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    connection.close()


def test_unusable_databases_are_refused_in_one_line_and_left_as_they_were(site):
    foreign, old = site / "other-app.db", site / "old.db"
    _sqlite(
        foreign,
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
        "INSERT INTO notes (body) VALUES ('x')",
    )
    (site / "empty.db").write_bytes(b"")
    (site / "text.db").write_text("this is not a database\n", encoding="utf-8")
    shutil.copy(site / "duban.db", old)
    _sqlite(old, "UPDATE alembic_version SET version_num = '0000'")
    cases = {  # the database, a command (reading or changing), what is said
        site / "missing.db": (["tasks"], "no such database; run `duban db upgrade` to create it"),
        site / "empty.db": (["done", "1"], "the database has no duban schema; run `duban db upgrade`"),
        foreign: (["waive", "1", "--reason", "x"], "not a duban database (it has other tables: notes)"),
        site / "text.db": (["status"], "not a duban database (file is not a database)"),
        old: (
            ["outbox", "retry", "--all-failed"],
            f"the database schema is at revision 0000, this duban needs {SCHEMA_REVISION}; "
            "run `duban db upgrade`",
        ),
    }
    contents = {path: path.read_bytes() for path in cases if path.exists()}
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda c: _run_config(_config(site, f"sqlite:///{c[0]}"), *c[1][0]), cases.items())
    for (path, (args, message)), result in zip(cases.items(), results, strict=True):
        assert result.returncode == 2, (path, args, result.stderr)
        assert result.stderr.splitlines() == [f"duban: {path}: {message}"], result.stderr
    assert not (site / "missing.db").exists()
    for path, data in contents.items():
        assert path.read_bytes() == data, f"{path} was changed"


def test_a_missing_or_broken_config_is_named_with_its_line(site):
    broken = site / "broken.toml"
    broken.write_text(
        '[database]\nurl = "sqlite:///duban.db"\n[daemon\ntick_interval = 60\n', encoding="utf-8"
    )
    wrong = site / "wrong.toml"
    wrong.write_text(CONFIG.replace("tick_interval = 60", 'tick_interval = "often"'), encoding="utf-8")
    cases = {
        site / "nope.toml": f"{site / 'nope.toml'}:1: config file not found",
        broken: f"{broken}:3: TOML syntax",
        wrong: f"{wrong}:9: daemon.tick_interval:",
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = pool.map(lambda path: _run_config(path, "done", "1", "--evidence", "x"), cases)
    for message, result in zip(cases.values(), results, strict=True):
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(message), result.stderr
        assert result.stdout == ""


# -- a running daemon picks up a `done` -----------------------------------------------------------------


def test_a_running_daemon_sends_nothing_more_about_an_obligation_done_while_it_runs(make_duban_env):
    """``duban run`` as a subprocess (conftest's plan: T1 due 06-10, T2 due 06-12, three towns).

    The daemon starts on 2026-06-10 09:30 and ticks. While it runs, the CLI marks T2 of town-00 and
    T1 of town-01 done. Then the next day is brought to the daemon instead of waiting for it: the
    timers due at 06-11 00:00 (T2's reminder, T1's overdue notice and first escalation step, each
    one timer for all three towns) are moved to now, and the daemon's next tick (every 0.5 s) fires them. The other towns are
    notified; about the two obligations done, nothing at all.
    """
    env = make_duban_env(daemon={"tick_interval": 0.5, "dispatch_interval": 0.5, "standby_poll": 0.2})
    daemon = env.start()
    try:
        daemon.wait_for_event("daemon.ready")
        (status,) = [json.loads(env.cli("status", "--json").stdout)]
        assert status["daemon_alive"] is True and status["last_tick_at"].startswith("2026-06-10T09:30")
        with ThreadPoolExecutor(max_workers=2) as pool:
            done = list(
                pool.map(
                    lambda args: env.cli(*args),
                    [
                        ["done", "T2", "--unit", "town-00", "--evidence", "已报送"],
                        ["done", "T1", "--unit", "town-01"],
                    ],
                )
            )
        assert [d.returncode for d in done] == [0, 0], [d.stderr for d in done]
        assert "（按时完成）" in done[1].stdout
        _bring_the_next_day(env)
        deadline = time.monotonic() + 30
        while env.scalar("SELECT count(*) FROM timer WHERE fired_at IS NULL AND \"on\" = '2026-06-11'"):
            assert time.monotonic() < deadline, f"the daemon did not tick: {daemon.output()}"
            time.sleep(0.1)
        rows = [
            (task, late_unit, kind)
            for task, unit, kind, late in env.rows(
                "SELECT task, unit, kind, late FROM notification_item WHERE \"on\" = '2026-06-11'"
            )
            for late_unit in ([u for _, u in json.loads(late)] if late else [unit])
        ]
        notified = {(task, unit) for task, unit, _ in rows}
        assert ("T2", "town-00") not in notified and ("T1", "town-01") not in notified
        assert notified == {("T2", "town-01"), ("T2", "town-02"), ("T1", "town-00"), ("T1", "town-02")}
        assert {kind for task, unit, kind in rows if (task, unit) == ("T1", "town-00")} == {
            "overdue",
            "escalation",
        }
        outcomes = env.rows("SELECT outcome FROM timer WHERE \"on\" = '2026-06-11'")
        assert sorted(outcome for (outcome,) in outcomes) == ["fired"] * 3  # (for the other towns)
        states = dict(env.rows("SELECT unit, state FROM obligation WHERE task = 'T1'"))
        assert states == {"town-00": "overdue", "town-01": "done", "town-02": "overdue"}
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def _bring_the_next_day(env) -> None:
    """Move the timers due at 2026-06-11 00:00 (local) to 2026-06-10 09:30: due at the daemon's next tick."""
    from sqlalchemy import update
    from sqlmodel import Session

    from orchestrator.store.models import Timer

    engine = env.engine()
    with Session(engine) as session, session.begin():
        moved = session.execute(
            update(Timer)
            .where(Timer.on == datetime(2026, 6, 11).date(), Timer.fired_at.is_(None))
            .values(fire_at=datetime(2026, 6, 10, 9, 30, tzinfo=TZ).astimezone(UTC))
        ).rowcount
    engine.dispose()
    assert moved == 3  # T2's reminder, T1's overdue notice and first escalation step (for all towns)


# -- issue 15: what people read ---------------------------------------------------------------------


def test_version_flag_prints_the_installed_version(cli):
    from importlib.metadata import version

    code, out, _ = cli("--version")
    assert (code, out.strip()) == (0, f"duban {version('duban')}")


def test_log_hides_skipped_notices_unless_all_and_shows_local_times(cli):
    shown = cli.json("log")
    everything = cli.json("log", "--all")
    skipped = [e for e in everything if e["kind"] == "notice.skipped"]
    assert skipped, "the catch-up run skips stale reminders"
    assert not any(e["kind"] == "notice.skipped" for e in shown)
    assert len(everything) == len(shown) + len(skipped)
    assert [e["kind"] for e in cli.json("log", "--kind", "notice.skipped")] == ["notice.skipped"] * len(
        skipped
    )
    assert all(e["at"].endswith("+08:00") for e in everything)  # the plan's local time, not UTC
    code, out, err = cli("log", "--limit", "1")
    assert code == 0, err
    (last,) = shown[-1:]
    assert last["at"][:16].replace("T", " ") in out


def test_show_has_a_creation_entry_for_an_obligation_created_already_overdue(cli):
    code, _, err = cli("start", "admin-test", "--year", "2025")
    assert code == 0, err
    story = cli.json("show", "T1", "--unit", "town-a", "--program", "admin-test:2025")[0]
    first = story["history"][0]
    assert (first["kind"], first["after"]["state"], first["actor"]) == (
        "obligation.created",
        "overdue",
        "alice",
    )
    assert first["at"].startswith("2026-06-15T10:30")
    code, out, err = cli("show", "T1", "--unit", "甲镇人民政府", "--program", "admin-test:2025")
    assert code == 0, err
    assert re.search(r"创建事项\s*│\s*→ 已逾期，开始 \S+，到期 \S+\s*│\s*方案启动时创建，创建时已逾期", out)


def test_every_unit_option_takes_the_id_or_the_exact_name(cli):
    by_id = cli.json("tasks", "--unit", "town-a")
    assert by_id and by_id == cli.json("tasks", "--unit", "甲镇人民政府")
    assert cli.json("log", "--unit", "town-c") == cli.json("log", "--unit", "丙镇人民政府")
    code, _, err = cli("tasks", "--unit", "丁镇人民政府")
    assert (code, err.strip()) == (2, 'duban: --unit: unknown unit "丁镇人民政府"')


def test_outbox_show_has_headers_recipients_attempts_and_the_eml_file(cli, site):
    (first,) = cli.json("outbox")[:1]
    (found,) = cli.json("outbox", "show", str(first["id"]))
    assert (found["id"], found["state"], found["to"]) == (first["id"], "sent", first["to"])
    assert found["headers"]["Message-ID"] == first["message_id"]
    assert "Subject" in found["headers"] and "From" in found["headers"]
    assert (
        found["eml"] and Path(found["eml"]).is_file() and Path(found["eml"]).parent == site / "mail" / "new"
    )
    assert [e["kind"] for e in found["events"]] == ["mail.queued", "mail.sent"]
    code, out, err = cli("outbox", "show", f"#{first['id']}")
    assert code == 0, err
    assert found["eml"] in out.replace("\n", "") or Path(found["eml"]).name[:20] in out
    assert "服务器最后答复" in out and "邮件头" in out
    code, _, err = cli("outbox", "show", "999")
    assert (code, err.strip()) == (2, "duban: no outbox message #999 (`duban outbox` lists them)")
    code, _, err = cli("outbox", "show", "x7")
    assert (code, err.strip()) == (2, 'duban: outbox show：邮件编号 "x7" 有误，应为数字，如 7')


def test_help_keeps_bracketed_words_and_shows_flags_as_flags(cli):
    code, out, _ = cli("plan", "--help")
    assert code == 0
    assert "[definitions] units in config" in out and "[registers] in config" in out
    assert "<bool>" not in out
    code, out, _ = cli("tasks", "--help")
    assert "<bool>" not in out and "--unit" in out and "UNIT" in out


def test_simulate_one_unit_with_a_summary_and_eml_files(cli, site):
    everything = cli.json("simulate", "admin-test", "--year", "2026")
    mine = cli.json("simulate", "admin-test", "--year", "2026", "--unit", "甲镇人民政府")
    assert mine and {e["to_unit"] for e in mine} == {"town-a"}
    assert mine == [e for e in everything if e["to_unit"] == "town-a"]  # the same emails, fields unchanged
    assert set(mine[0]) == {"send_at", "to_unit", "to", "subject", "message_id", "items"}
    folder = site / "eml"
    folder.mkdir()
    code, out, err = cli("simulate", "admin-test", "--year", "2026", "--unit", "town-a", "--eml", str(folder))
    assert code == 0, err
    files = sorted(folder.iterdir())
    assert len(files) == len(mine) and f"{len(mine)} 封邮件写入 {folder}" in err
    first = message_from_bytes(files[0].read_bytes(), policy=default_policy)
    assert first["Message-ID"] == mine[0]["message_id"] and first["Subject"] == mine[0]["subject"]
    assert "事项办结后" in first.get_body(("plain",)).get_content()
    assert "假设：全年没有任何单位报告办结" in out
    code, out, err = cli("simulate", "admin-test", "--year", "2026", "--summary")
    assert code == 0, err
    assert "月份" in out and "收件单位" in out and "2026-06" in out and "甲镇人民政府" in out
    assert "假设：全年没有任何单位报告办结" in out
    code, _, err = cli("simulate", "admin-test", "--year", "2026", "--unit", "nobody")
    assert code == 2 and 'unknown unit "nobody"' in err


def test_a_units_calendar_feed_is_one_function_returning_its_bytes(site):
    from sqlmodel import Session

    from orchestrator.admin.calendars import unit_calendar
    from orchestrator.service.config import load_settings
    from orchestrator.service.runtime import program_bundle
    from orchestrator.store.db import open_database

    settings = load_settings(site / "config.toml")
    engine = open_database(settings.database.url)
    at = datetime(2026, 6, 15, 2, tzinfo=UTC)
    with Session(engine) as session:
        data = unit_calendar(
            session, "town-a", lambda p: program_bundle(settings, p), domain="duban.test", now=at
        )
        empty = unit_calendar(
            session, "nobody", lambda p: program_bundle(settings, p), domain="duban.test", now=at
        )
    events = Calendar.from_ical(data).walk("VEVENT")
    assert len(events) == 4 and all(str(e["SUMMARY"]).endswith("（甲镇人民政府）") for e in events)
    assert Calendar.from_ical(empty).walk("VEVENT") == []  # a feed with nothing left is still a calendar
