"""One line instead of a traceback (issue 26): a ref past the largest row id, a done date long before
the program, a read-only SQLite database, a database another writer holds. ``duban`` runs in this
process (``orchestrator.cli.main``) on the deployment of ``test_cli_review``; ``run`` is the real
daemon code, the database a real SQLite file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import structlog
from fault_support import unwritable
from support import DUBAN
from test_cli_review import CONFIG, DEFINITION, UNITS, Cli, engine_of, obligation

from orchestrator.cli import failures

HUGE = "99999999999999999999"  # past the largest row id (2^63 - 1): the drivers raise OverflowError


@pytest.fixture(autouse=True)
def _restore_logging():
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def site(tmp_path, capsys, monkeypatch) -> Cli:
    """``test_cli_review``'s deployment (its plan, units and config), started and ticked on 06-01."""
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


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def _states(cli) -> list[tuple]:
    db = sqlite3.connect(cli.root / "duban.db")
    try:
        return db.execute("SELECT id, state, done_at FROM obligation ORDER BY id").fetchall()
    finally:
        db.close()


def test_a_ref_past_the_largest_row_id_is_one_line(site, tmp_path):
    before = _states(site)
    for args in (
        ("show", HUGE),
        ("done", HUGE),
        ("waive", HUGE, "--reason", "不适用"),
        ("reopen", f"#{HUGE}"),
    ):
        code, _, err = site(*args)
        assert code == 2, args
        assert _one_line(err) == f"duban: no obligation #{HUGE} (`duban tasks` lists them)", args
    code, _, err = site("review", "approve", HUGE)
    assert code == 2 and "no submission" in _one_line(err)
    code, _, err = site("evidence", "get", HUGE, "--out", str(tmp_path / "x.pdf"))
    assert code == 2 and _one_line(err) == f"duban: 没有 #{HUGE} 号材料文件"
    sheet = tmp_path / "status.csv"
    sheet.write_text(f"ref,state,done_on\n{HUGE},done,2026-06-05\n", encoding="utf-8")
    code, _, err = site("import-status", str(sheet))
    assert code == 2 and _one_line(err) == f"{sheet}:2: 列「ref」：没有编号为 #{HUGE} 的事项"
    assert _states(site) == before


def test_a_done_date_long_before_the_program_is_refused(site, tmp_path):
    """0001-01-01 overflowed when turned into a time; 1900-01-01 was stored as 1899-12-31 15:54:17
    (Asia/Shanghai's local mean time): a done date is from the year before the program's on."""
    a, b = obligation(engine_of(site), "town-a").id, obligation(engine_of(site), "town-b").id
    sheet = tmp_path / "status.csv"
    sheet.write_text(f"ref,state,done_on\n{a},done,0001-01-01\n{b},done,1900-01-01\n", encoding="utf-8")
    before = _states(site)
    code, _, err = site("import-status", str(sheet))
    assert code == 2 and "Traceback" not in err
    assert err.splitlines() == [
        f"{sheet}:2: 列「done_on」：1年1月1日远早于事项 #{a} 的开始日期（2026年6月1日）：请填写2025年1月1日以后的日期",
        f"{sheet}:3: 列「done_on」：1900年1月1日远早于事项 #{b} 的开始日期（2026年6月1日）：请填写2025年1月1日以后的日期",
    ]
    assert _states(site) == before
    sheet.write_text(f"ref,state,done_on\n{a},done,2025-12-30\n", encoding="utf-8")  # prepared ahead: fine
    code, _, err = site("import-status", str(sheet))
    assert code == 0, err


def _executable(cli, *args: str) -> subprocess.CompletedProcess:
    """``duban`` as its own process: a read-only file must be opened afresh (SQLite reuses, within
    one process, the descriptors of the connections it had open before, read-write)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUBAN_")}
    env |= {
        "DUBAN_FAKE_NOW": "2026-06-12T10:00:00+08:00",
        "DUBAN_TEST_WEB_SECRET": "k" * 48,
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        [DUBAN, "--config", str(cli.root / "config.toml"), *args],
        env=env,
        cwd=cli.root,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def test_a_read_only_database_is_one_line_and_exit_1(site, tmp_path):
    database = site.root / "duban.db"
    sheet = tmp_path / "status.csv"
    a = obligation(engine_of(site), "town-a").id
    sheet.write_text(f"ref,state,done_on\n{a},done,2026-06-05\n", encoding="utf-8")
    before = _states(site)
    commands = {
        "run": ("run",),
        "run --once": ("run", "--once"),
        "done": ("done", str(a)),
        "import-status": ("import-status", str(sheet)),
    }
    with unwritable(database), ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(
            zip(commands, pool.map(lambda args: _executable(site, *args), commands.values()), strict=True)
        )
    for name in ("run", "run --once"):
        result = results[name]
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        assert "cannot open the database for writing" in _one_line(result.stderr), name
    once = results["run --once"].stdout
    assert '"event": "daemon.stopped"' in once and '"exit_code": 1' in once and '"exit_code": 0' not in once
    for name in ("done", "import-status"):
        result = results[name]
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        assert _one_line(result.stderr) == (
            f"duban: {database}: the database is read-only for this user: nothing was changed — duban "
            "needs to write the database file and its folder (check their owner and permissions)"
        )
    assert _states(site) == before


def _hold_the_write_lock(database, seconds: float) -> threading.Thread:
    """Another writer (as the daemon's tick is at province scale) holding the database for ``seconds``."""
    held = threading.Event()

    def hold():
        connection = sqlite3.connect(database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        connection.execute("ROLLBACK")
        connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    return thread


def test_a_command_waits_for_a_busy_database_then_says_so_in_one_line(site, monkeypatch):
    database = site.root / "duban.db"
    a, b = obligation(engine_of(site), "town-a").id, obligation(engine_of(site), "town-b").id
    # a writer holding the database for 6 s: past the daemon's 5 s wait, within the CLI's
    writer = _hold_the_write_lock(database, 6)
    started = time.monotonic()
    code, _, err = site("done", str(a))
    writer.join()
    assert code == 0, err
    assert time.monotonic() - started >= 5
    # held for longer than the command waits: one line, exit 1, nothing changed
    monkeypatch.setattr(failures, "CLI_BUSY_SECONDS", 0.5)
    writer = _hold_the_write_lock(database, 3)
    code, _, err = site("done", str(b))
    writer.join()
    assert code == 1
    assert _one_line(err) == (
        f"duban: {database}: the database is busy: another process (the daemon's tick?) has been writing "
        "to it for more than 0.5 s; nothing was changed — run the command again in a moment"
    )
    assert dict((i, s) for i, s, _ in _states(site))[b] == "open"


@pytest.mark.parametrize("needle", ["database is locked", "attempt to write a readonly database"])
def test_only_the_databases_own_failures_are_turned_into_a_line(needle):
    from sqlalchemy.exc import OperationalError

    assert failures.database_problem(OperationalError("UPDATE x", {}, Exception(needle)), "db")
    assert failures.database_problem(ValueError(needle), "db") is None
