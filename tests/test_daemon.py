"""``duban run``: the daemon as a real subprocess on a real database, sending to real servers.

The clock is shifted, not waited for: ``DUBAN_FAKE_NOW`` (set by the ``duban_env`` fixture to
2026-06-10 09:30 +08:00, the first day of the test plan's phase) starts the daemon's clock there.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from smtp_server import SmtpServer, _Handler
from sqlalchemy import text
from support import DUBAN, REPO, DaemonProcess, NotifySocket

from orchestrator.engine.outbox.deliver import GROUP_SIZE
from orchestrator.store.db import make_engine

SECRET = "Zq-3ur3ka-marker-4711"


def wait_until(condition, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def smtp_mail(port: int, timeout: float = 5, **extra: str) -> str:
    lines = [f'{k} = "{v}"' for k, v in extra.items()]
    return "\n".join(
        [
            'transport = "smtp"',
            "",
            "[mail.smtp]",
            'host = "127.0.0.1"',
            f"port = {port}",
            'security = "none"',
            f"timeout = {timeout}",
            *lines,
            "",
        ]
    )


# -- one round: --once ------------------------------------------------------------------------


def test_run_once_on_a_plan_date_writes_eml_files_and_repeats_nothing(duban_env):
    done = duban_env.cli("run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted((duban_env.maildir / "new").glob("*.eml"))
    assert len(files) == 4  # one digest each for the office and the three towns
    recipients = set()
    for path in files:
        message = message_from_bytes(path.read_bytes(), policy=default_policy)
        recipients.add(message["To"].addresses[0].addr_spec)
        assert path.name == message["Message-ID"].strip("<>") + ".eml"
        assert (
            "报送实施方案" in message.get_body(("plain",)).get_content()
            or "测试阶段" in message.get_body(("plain",)).get_content()
        )
    assert recipients == {"office@example.gov.cn", *(f"town{n:02d}@example.gov.cn" for n in range(3))}
    assert duban_env.rows("SELECT state, count(*) FROM outbox_message GROUP BY state") == [("sent", 4)]
    assert duban_env.scalar("SELECT count(*) FROM notification_item WHERE message_id IS NULL") == 0

    again = duban_env.cli("run", "--once")
    assert again.returncode == 0, again.stderr
    assert sorted((duban_env.maildir / "new").glob("*.eml")) == files
    assert duban_env.scalar("SELECT count(*) FROM outbox_message") == 4
    assert duban_env.scalar("SELECT count(*) FROM program") == 1


# -- refusing to start --------------------------------------------------------------------------


def test_a_second_daemon_on_the_same_sqlite_file_refuses_and_names_the_lock(duban_env):
    first = duban_env.start()
    first.wait_for_event("daemon.ready")
    second = duban_env.cli("run")
    assert second.returncode == 1
    (line,) = second.stderr.strip().splitlines()
    assert f"{duban_env.database}.lock" in line and f"pid {first.pid}" in line, line
    assert "Traceback" not in second.stdout + second.stderr
    assert first.proc.poll() is None  # the first one is untouched
    assert first.stop() == 0
    # the lock dies with its holder: now a daemon may start again
    assert duban_env.cli("run", "--once").returncode == 0


def test_an_out_of_date_schema_or_a_bad_fake_clock_is_one_line_and_exit_2(make_duban_env):
    env = make_duban_env(upgrade=False)
    missing = env.cli("run")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"duban: {env.database}: no such database; run `duban db upgrade` to create it"
    ]
    env.upgrade()
    with sqlite3.connect(env.database) as db:
        db.execute("UPDATE alembic_version SET version_num = '0000'")
    old = env.cli("run")
    assert old.returncode == 2
    (line,) = old.stderr.strip().splitlines()
    assert "revision 0000" in line and "run `duban db upgrade`" in line, line
    bad_clock = env.cli("run", env=env.base_env(DUBAN_FAKE_NOW="next tuesday"))
    assert bad_clock.returncode == 2
    assert bad_clock.stderr.strip().splitlines() == [
        'duban: DUBAN_FAKE_NOW: bad time "next tuesday", expected ISO 8601 with an offset, '
        "e.g. 2026-06-10T00:30:00+08:00"
    ]
    assert "Traceback" not in missing.stderr + old.stderr + bad_clock.stderr
    with sqlite3.connect(env.database) as db:
        assert db.execute("SELECT count(*) FROM program").fetchone() == (0,)


# -- logs ---------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_the_smtp_password_never_reaches_the_output(make_duban_env):
    with SmtpServer(credentials={"duban": SECRET}, auth_require_tls=False) as server:
        env = make_duban_env(
            mail=smtp_mail(server.port, username="duban", password_env="DUBAN_SMTP_PASSWORD")
        )
        daemon = env.start("--once", DUBAN_SMTP_PASSWORD=SECRET)
        assert daemon.wait(30) == 0, daemon.output()
        daemon_debug = DaemonProcess(  # and with everything logged, SQL statements included
            [DUBAN, "--debug", "--config", str(env.config_path), "run", "--once"],
            env.base_env(DUBAN_SMTP_PASSWORD=SECRET),
            env.root,
        )
        assert daemon_debug.wait(30) == 0, daemon_debug.output()
    assert len(server.received) == 4
    assert {r.login for r in server.received} == {"duban"}  # the password was used …
    for process in (daemon, daemon_debug):
        output = "\n".join(process.stdout + process.stderr)
        assert SECRET not in output  # … and never written
        assert process.stdout and all(re.match(r"^<[0-7]>\{", line) for line in process.stdout)
    assert any(e["logger"].startswith("sqlalchemy") for e in daemon_debug.events())


def test_a_refused_message_is_kept_failed_and_reported_to_the_admin_once_a_day(make_duban_env):
    with SmtpServer(rcpt_reply={"town01@example.gov.cn": "550 5.1.1 no such user"}) as server:
        env = make_duban_env(mail='admin = "admin@example.gov.cn"\n' + smtp_mail(server.port))
        first = env.cli("run", "--once")
        second = env.cli("run", "--once")
    assert first.returncode == second.returncode == 0, first.stdout + first.stderr
    assert (
        dict(env.rows("SELECT recipient, state FROM outbox_message WHERE kind = 'digest'"))["town-01"]
        == "failed"
    )
    to_admin = [r for r in server.received if r.rcpt_tos == ["admin@example.gov.cn"]]
    assert len(to_admin) == 1  # the second round, the same day, sends no second report
    report = to_admin[0].message
    assert "投递失败" in report["Subject"]
    assert "550 5.1.1 no such user" in report.get_content()
    assert len(server.received) == 4  # three digests (town-01's refused) and the report


# -- the loop keeps running -------------------------------------------------------------------


def test_a_failing_tick_is_logged_with_its_traceback_and_the_next_one_retries(make_duban_env):
    env = make_duban_env(daemon={"tick_interval": 0.3, "dispatch_interval": 30, "standby_poll": 1})
    daemon = env.start()
    daemon.wait_for_event("daemon.ready")
    with sqlite3.connect(env.database, timeout=10) as db:
        db.execute("ALTER TABLE timer RENAME TO timer_away")
    failed = daemon.wait_for_event("tick.failed")
    assert failed["_priority"] == 3
    assert "Traceback" in failed["exception"] and "no such table: timer" in failed["exception"]
    assert daemon.proc.poll() is None
    before = env.scalar("SELECT last_tick_at FROM heartbeat")
    with sqlite3.connect(env.database, timeout=10) as db:
        db.execute("ALTER TABLE timer_away RENAME TO timer")
    wait_until(
        lambda: env.scalar("SELECT last_tick_at FROM heartbeat") > before, what="a tick after the repair"
    )
    assert daemon.stop() == 0


def test_the_next_timer_fires_on_time_without_waiting_for_the_safety_tick(duban_env):
    # two seconds before midnight: the overdue notices, reminders and escalations of 06-11 are next
    daemon = duban_env.start(DUBAN_FAKE_NOW="2026-06-10T23:59:58+08:00")  # tick_interval is 60 s
    ready = daemon.wait_for_event("daemon.ready")
    assert ready["status"].endswith("下一次 2026-06-11 00:00")
    due_at_midnight = "SELECT count(*) FROM timer WHERE \"on\" = '2026-06-11' AND fired_at IS NULL"
    assert duban_env.scalar(due_at_midnight) == 3  # T1 overdue, T1 escalation, T2 reminder (all towns)
    # before the safety tick (60 s after the first), however slowly a crowded machine runs the daemon
    fired = daemon.wait_for_event("tick.done", timeout=45, next="2026-06-12T00:00:00+08:00")
    assert fired["fired"] == 3
    assert duban_env.scalar(due_at_midnight) == 0
    assert duban_env.scalar("SELECT count(*) FROM obligation WHERE task='T1' AND state='overdue'") == 3
    assert daemon.stop() == 0


def test_when_the_year_turns_the_next_tick_starts_the_new_years_program(make_duban_env):
    env = make_duban_env(daemon={"tick_interval": 0.3, "dispatch_interval": 30, "standby_poll": 1})
    daemon = env.start(DUBAN_FAKE_NOW="2026-12-31T23:59:59+08:00")
    daemon.wait_for_event("daemon.ready")
    assert env.rows("SELECT year FROM program") == [(2026,)]
    daemon.wait_for_event("program.started", year=2027)
    assert env.rows("SELECT year FROM program ORDER BY year") == [(2026,), (2027,)]
    assert env.scalar("SELECT count(*) FROM event WHERE kind='program.started'") == 2
    assert daemon.stop() == 0


# -- SIGKILL mid-dispatch ----------------------------------------------------------------------


class _SlowData(_Handler):
    """Answers DATA after ``owner.data_delay`` seconds: a slow mail server, so a kill lands mid-send.

    ``owner.data_started`` records each DATA as it arrives (the message is then "on the wire");
    with ``owner.slower = (n, delay, event)`` the n-th message and those after it take ``delay``
    until ``event`` is set (the test sets it once it has seen what it waits for).
    """

    async def handle_DATA(self, server, session, envelope) -> str:
        self.owner.data_started.append(time.monotonic())
        delay = self.owner.data_delay
        slower = getattr(self.owner, "slower", None)
        if slower is not None and len(self.owner.data_started) >= slower[0] and not slower[2].is_set():
            delay = slower[1]
        await asyncio.sleep(delay)
        return await super().handle_DATA(server, session, envelope)


def slow_server(delay: float) -> SmtpServer:
    server = SmtpServer().start()
    server.data_delay = delay
    server.data_started = []
    server._controller.handler = _SlowData(server)  # for the connections from now on
    return server


def test_sigkill_mid_group_then_a_restart_resends_only_that_group_with_the_same_message_ids(make_duban_env):
    server = slow_server(0.1)  # three sends take well under GROUP_SECONDS
    try:
        env = make_duban_env(towns=30, mail=smtp_mail(server.port))
        first = env.start()
        wait_until(lambda: len(server.received) >= 3, what="three messages delivered")
        first.proc.kill()  # SIGKILL, mid-dispatch (and mid-group: outcomes commit a group at a time)
        assert first.wait() == -signal.SIGKILL
        states = dict(env.rows("SELECT state, count(*) FROM outbox_message GROUP BY state"))
        assert states.get("sending", 0) > 0, states  # claimed, not sent: the crash left work behind
        committed = {m for (m,) in env.rows("SELECT message_id FROM outbox_message WHERE state = 'sent'")}
        killed = {r.peer for r in server.received}  # the dead daemon's connection

        server.data_delay = 0.0
        second = env.start()
        wait_until(
            lambda: env.rows("SELECT state, count(*) FROM outbox_message GROUP BY state") == [("sent", 31)],
            what="every message sent",
        )
        assert second.stop() == 0
    finally:
        server.stop()

    outbox = dict(env.rows("SELECT message_id, recipient FROM outbox_message"))
    received = Counter(r.message["Message-ID"] for r in server.received)
    assert set(received) == set(outbox)  # every message arrived, nothing else did
    again = {message_id for message_id, n in received.items() if n > 1}
    uncommitted = {r.message["Message-ID"] for r in server.received if r.peer in killed} - committed
    # sent again: exactly the messages of the group whose outcomes the kill cut off (the one in
    # flight included), each once more under its own Message-ID; never more than a group
    assert again == uncommitted and 1 <= len(again) <= GROUP_SIZE
    assert set(received.values()) <= {1, 2}
    # every item is in exactly one message; none lost
    assert (
        env.scalar("SELECT count(*) FROM notification_item") == 91
    )  # 31 phase_started + 30×(due_today, task_opened)
    assert (
        env.scalar("SELECT count(*) FROM notification_item WHERE state != 'queued' OR message_id IS NULL")
        == 0
    )
    assert env.scalar("SELECT count(*) FROM event WHERE kind='mail.reclaimed'") == 1


def _children(pid: int) -> set[int]:
    """The processes ``pid`` started (Linux: /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(x) for x in (task / "children").read_text().split())
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_a_big_day_is_rendered_in_a_render_process_that_leaves_with_a_sigkilled_daemon(make_duban_env):
    server = slow_server(0.02)  # 121 messages take 3 s: the kill lands mid-delivery
    # the render process starts once 40 are claimed (by the 31st message: batches are 10 or more),
    # and is seen up at the start of a batch; from the 45th on the server is slower until then, so
    # that a crowded machine that takes long to start a process still has messages left to send
    server.slower = (45, 0.3, threading.Event())
    try:
        # 121 messages: a big delivery (the held one waits as long as the render process takes)
        env = make_duban_env(towns=120, mail=smtp_mail(server.port, timeout=120))
        first = env.start()
        ready = wait_until(
            lambda: re.search(r'"render\.process_ready", "pid": (\d+)', first.output()),
            what="the render process",
        )
        server.slower[2].set()
        render = int(ready.group(1))
        assert render in _children(first.pid) and _alive(render)
        then = len(server.received)
        assert then < 100, then
        wait_until(lambda: len(server.received) >= then + 10, what="ten messages more (made there)")
        first.proc.kill()
        assert first.wait() == -signal.SIGKILL
        wait_until(lambda: not _alive(render), what="the render process to leave with its daemon")

        server.data_delay = 0.0
        second = env.start()
        wait_until(
            lambda: env.rows("SELECT state, count(*) FROM outbox_message GROUP BY state") == [("sent", 121)],
            what="every message sent",
        )
        assert second.stop() == 0
    finally:
        server.stop()
    received = Counter(r.message["Message-ID"] for r in server.received)
    assert len(received) == 121 and set(received.values()) <= {1, 2}  # none lost
    assert sum(n - 1 for n in received.values()) <= GROUP_SIZE  # a crash re-sends at most a group
    for r in server.received[then : then + 10]:  # made in the render process: a well-formed notice
        message = r.message
        assert message["Subject"].startswith("【督办") and message.get_body(("html",)) is not None


def test_sigterm_mid_dispatch_finishes_the_message_in_flight_and_exits_0(make_duban_env):
    server = slow_server(0.6)
    try:
        env = make_duban_env(towns=10, mail=smtp_mail(server.port))
        daemon = env.start()
        wait_until(lambda: len(server.data_started) >= 3, what="the third message on the wire")
        daemon.signal(signal.SIGTERM)  # while the server sits on its DATA for 0.6 s
        began = time.monotonic()
        assert daemon.wait(10) == 0, daemon.output()
        assert time.monotonic() - began < 5
    finally:
        server.stop()
    states = dict(env.rows("SELECT state, count(*) FROM outbox_message GROUP BY state"))
    delivered = {r.message["Message-ID"] for r in server.received}
    sent = {m for (m,) in env.rows("SELECT message_id FROM outbox_message WHERE state='sent'")}
    assert sent == delivered and len(sent) == 3  # the one in flight was finished and committed, no more
    assert states == {"sent": len(sent), "pending": 11 - len(sent)}  # the rest wait for the next start
    assert env.scalar("SELECT role FROM heartbeat") == "stopped"


# -- the shipped configuration (`make run`) ------------------------------------------------------


def test_make_run_starts_the_daemon_on_the_shipped_config(short_tmp, notify_socket):
    root = short_tmp / "shipped"
    root.mkdir()
    shutil.copy(REPO / "config.toml", root / "config.toml")
    shutil.copytree(REPO / "examples", root / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_", "DUBAN_"))}
    upgraded = subprocess.run(
        [DUBAN, "--config", "config.toml", "db", "upgrade"], cwd=root, env=env, capture_output=True, text=True
    )
    assert upgraded.returncode == 0, upgraded.stderr
    daemon = DaemonProcess(
        [DUBAN, "--config", "config.toml", "run"], env | {"NOTIFY_SOCKET": str(notify_socket.path)}, root
    )
    try:
        notify_socket.wait_for("READY=1", timeout=60)
        assert (root / "var" / "duban.db").exists()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(15) == 0, daemon.output()
    finally:
        daemon.kill()
    assert notify_socket.count("STOPPING=1") == 1
    engine = make_engine(f"sqlite:///{root / 'var' / 'duban.db'}")
    with engine.connect() as connection:
        assert sorted(connection.execute(text("SELECT workflow FROM program")).scalars().all()) == [
            "rule-of-law-annual-report",  # the shipped config runs both shipped plans
            "rule-of-law-pilot",
        ]
    engine.dispose()


# -- PostgreSQL: a leader and a standby ----------------------------------------------------------


@pytest.mark.postgres
def test_postgres_one_leader_one_standby_and_the_standby_takes_over(make_duban_env, pg_url, short_tmp):
    env = make_duban_env(database_url=pg_url)
    sockets = [NotifySocket(short_tmp / "a.sock"), NotifySocket(short_tmp / "b.sock")]
    try:
        leader = env.start(notify=sockets[0])
        sockets[0].wait_for("READY=1")
        standby = env.start(notify=sockets[1])
        ready = sockets[1].wait_for("READY=1")
        assert "待命" in ready
        roles = dict(env.rows("SELECT pid, role FROM heartbeat"))
        assert roles == {leader.pid: "leader", standby.pid: "standby"}
        wait_until(lambda: env.scalar("SELECT count(*) FROM outbox_message WHERE state='sent'") == 4)

        leader.proc.kill()  # its session ends: PostgreSQL releases the advisory lock
        leader.wait()
        standby.wait_for_event("daemon.leader")
        sockets[1].wait_for("STATUS=运行中：已处理 0 个定时器，下一次 2026-06-11 00:00")
        heartbeat = env.rows(
            "SELECT role, last_tick_at IS NOT NULL FROM heartbeat WHERE pid = :pid", pid=standby.pid
        )
        assert heartbeat == [("leader", True)]
        assert env.scalar("SELECT count(*) FROM outbox_message") == 4  # nothing done twice
        assert env.scalar("SELECT count(*) FROM event WHERE kind='daemon.leader'") == 2
        assert standby.stop() == 0
    finally:
        for sock in sockets:
            sock.close()
