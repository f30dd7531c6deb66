"""Hostile input: deep nesting, huge values, control characters, empty files — one located line and
exit 2 (``validate``: 1, its check failed), never a traceback; and the daemon's reload survives it.

The daemon runs as a real subprocess on a real SQLite file (``duban_env``); CLI runs are real
``duban`` processes too, since a traceback is what a user would see.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess

import pytest
from support import DUBAN

from orchestrator.service import reload
from orchestrator.service.config import load_settings

DEEP = "[" * 600 + "]" * 600


def run(env, *args: str, config=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DUBAN, "--config", str(config or env.config_path), *args],
        env=env.base_env(),
        cwd=env.root,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


def one_error(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if not x.startswith("duban: 警告：")]
    return line


# -- 1. deep nesting, in every loader -----------------------------------------------------------


@pytest.mark.parametrize("where", ["definition", "units", "calendar"])
def test_deep_nesting_is_one_located_line_in_every_loader(duban_env, where):
    path = {"definition": duban_env.definition, "units": duban_env.units}.get(
        where, duban_env.root / "holidays.toml"
    )
    text = path.read_text(encoding="utf-8") if path.exists() else '[2027]\nholidays = ["2027-01-01"]\n'
    lines = text.count("\n")
    path.write_text(text + f"\nx = {DEEP}\n", encoding="utf-8")
    result = run(duban_env, "validate", str(path))
    assert result.returncode == 1
    assert one_error(result) == (
        f"{path}:{lines + 2}: nested too deeply (more than 32 levels of arrays and tables)"
    )
    if where != "calendar":
        workflow = str(path) if where == "definition" else "daemon-test"
        plan = run(duban_env, "plan", workflow, "--year", "2026")
        assert plan.returncode == 2 and one_error(plan).startswith(f"{path}:{lines + 2}: nested too deeply")
        start = run(duban_env, "start", workflow, "--year", "2026")
        assert start.returncode == 2 and one_error(start).startswith(f"{path}:")
        assert duban_env.scalar("SELECT count(*) FROM program") == 0  # nothing stored


def test_a_deep_config_file_is_exit_2_for_any_command(duban_env):
    duban_env.config_path.write_text(
        duban_env.config_path.read_text(encoding="utf-8") + f"\n[extra]\nx = {DEEP}\n", encoding="utf-8"
    )
    for args in (["status"], ["run", "--once"], ["tasks"]):
        result = run(duban_env, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "nested too deeply" in one_error(result)


def test_dotted_keys_nested_too_deep_and_huge_files_are_refused(duban_env, tmp_path):
    dotted = tmp_path / "dotted.toml"
    dotted.write_text("a" + ".a" * 100 + " = 1\n", encoding="utf-8")
    result = run(duban_env, "validate", str(dotted))
    assert result.returncode == 1 and "nested too deeply" in one_error(result)
    huge = tmp_path / "huge.toml"
    huge.write_text('[workflow]\nid = "x"\ntitle = "' + "长" * 9_000_000 + '"\n', encoding="utf-8")
    result = run(duban_env, "validate", str(huge))
    assert result.returncode == 1 and "file too large" in one_error(result)


# -- 7. length limits, exit codes, an empty file ----------------------------------------------------


def test_a_long_title_or_name_is_refused_at_its_line(duban_env):
    text = duban_env.definition.read_text(encoding="utf-8")
    duban_env.definition.write_text(
        text.replace('title = "报送实施方案"', f'title = "{"题" * 201}"'), encoding="utf-8"
    )
    line = text.splitlines().index('title = "报送实施方案"') + 1
    result = run(duban_env, "validate", str(duban_env.definition), str(duban_env.units))
    assert result.returncode == 1
    assert (
        one_error(result)
        == f"{duban_env.definition}:{line}: tasks[0].title: too long (201 characters, at most 200)"
    )
    duban_env.definition.write_text(text, encoding="utf-8")
    units = duban_env.units.read_text(encoding="utf-8")
    duban_env.units.write_text(units.replace('name = "县督查办"', f'name = "{"名" * 300}"'), encoding="utf-8")
    result = run(duban_env, "plan", "daemon-test", "--year", "2026")
    assert result.returncode == 2
    assert one_error(result) == f"{duban_env.units}:3: units[0].name: too long (300 characters, at most 200)"


def test_plan_simulate_and_start_exit_2_on_a_bad_file(duban_env):
    text = duban_env.definition.read_text(encoding="utf-8")
    duban_env.definition.write_text(text.replace('due = "06-12"', 'due = "13-45"'), encoding="utf-8")
    for args in (["plan", "daemon-test", "--year", "2026"], ["simulate", "daemon-test", "--year", "2026"],
                 ["start", "daemon-test", "--year", "2026"]):  # fmt: skip
        result = run(duban_env, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "13-45" in one_error(result)
    assert run(duban_env, "validate").returncode == 1  # validate: the check failed


# -- 6. control characters ------------------------------------------------------------------------


ESCAPE = "\x1b]0;owned\x07\x1b[2J"


@pytest.fixture
def started(duban_env):
    assert duban_env.cli("run", "--once").returncode == 0
    return duban_env


def test_control_characters_in_evidence_or_reason_are_refused(started):
    ref = str(started.scalar("SELECT min(id) FROM obligation"))
    for args in (
        ["done", ref, "--evidence", f"文号{ESCAPE}"],
        ["waive", ref, "--reason", "不适用\u202e反转"],
    ):
        result = started.cli(*args)
        assert result.returncode == 2, result.stderr
        assert "control character" in one_error(result)
    assert started.scalar(f"SELECT state FROM obligation WHERE id = {ref}") == "open"  # nothing stored


def test_stored_control_characters_are_never_printed_raw(started):
    ref = started.scalar("SELECT min(id) FROM obligation")
    with sqlite3.connect(started.database) as db:  # as an older version or another front end left it
        db.execute("UPDATE obligation SET evidence = ? WHERE id = ?", (f"文号{ESCAPE}", ref))
        db.execute("UPDATE event SET detail = ?", (f"说明{ESCAPE}",))
    for args in (["show", str(ref)], ["log"], ["show", str(ref), "--json"], ["log", "--json"], ["tasks"]):
        result = started.cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout, args
    assert "文号\\x1b]0;owned" in "".join(started.cli("show", str(ref)).stdout.split())
    assert "说明\\u001b]0;owned\\u0007" in started.cli("log", "--json").stdout


# -- 1. reload: whatever the new files hold, the daemon goes on with the old ones ------------------


def test_sighup_with_a_deeply_nested_units_file_keeps_the_daemon_running(duban_env, notify_socket):
    daemon = duban_env.start(notify=notify_socket)
    notify_socket.wait_for("READY=1")
    before = duban_env.rows("SELECT key, state FROM obligation ORDER BY key")
    duban_env.units.write_text(
        duban_env.units.read_text(encoding="utf-8") + f"\nx = {DEEP}\n", encoding="utf-8"
    )
    daemon.signal(signal.SIGHUP)
    problem = daemon.wait_for_event("reload.problem", where=lambda e: "nested too deeply" in e["problem"])
    assert problem["problem"].startswith(f"{duban_env.units}:")
    daemon.wait_for_event("reload.failed")
    assert daemon.proc.poll() is None
    assert duban_env.rows("SELECT key, state FROM obligation ORDER BY key") == before
    assert daemon.stop() == 0


def test_any_exception_while_reloading_keeps_the_old_runtime(duban_env, monkeypatch):
    settings = load_settings(duban_env.config_path, required=True)

    def explode(*_args):
        raise RuntimeError("a bug in a loader")

    monkeypatch.setattr(reload, "load_runtime", explode)
    runtime, problem = asyncio.run(reload.load_new(settings, lambda year, message: None))
    assert runtime is None and "沿用原配置" in problem
