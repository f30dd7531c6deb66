"""The systemd notify protocol: the notifier against a real datagram socket, then the daemon itself.

The daemon runs as a real subprocess with ``NOTIFY_SOCKET`` bound in a temporary folder, on a
shifted clock (``DUBAN_FAKE_NOW``) that puts it on a plan date.
"""

from __future__ import annotations

import signal
import socket
import time
import uuid

import pytest
from structlog.testing import capture_logs

from orchestrator.service.systemd import Notifier, monotonic_usec, notify_address, watchdog_interval

# -- the notifier ------------------------------------------------------------------------------


def test_nothing_at_all_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    assert notifier.ready("运行中") is False
    assert notifier.watchdog() is False
    assert notifier._socket is None  # not even a socket was made


def test_utf8_status_arrives_whole_in_one_datagram(notify_socket):
    notifier = Notifier({"NOTIFY_SOCKET": str(notify_socket.path)})
    assert notifier.ready("运行中：已处理 3 个定时器，\n下一次 2026-06-11 00:00")
    (datagram,) = notify_socket.drain(1.0)
    assert datagram == "READY=1\nSTATUS=运行中：已处理 3 个定时器， 下一次 2026-06-11 00:00"
    notifier.close()


def test_abstract_namespace_address():
    name = f"duban-test-{uuid.uuid4().hex}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(b"\0" + name.encode())
    receiver.settimeout(2)
    try:
        assert notify_address({"NOTIFY_SOCKET": "@" + name}) == b"\0" + name.encode()
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.stopping("正在停止")
        assert receiver.recv(1024).decode() == "STOPPING=1\nSTATUS=正在停止"
        notifier.close()
    finally:
        receiver.close()


def test_reloading_carries_the_monotonic_time(notify_socket):
    notifier = Notifier({"NOTIFY_SOCKET": str(notify_socket.path)})
    before = monotonic_usec()
    notifier.reloading()
    after = monotonic_usec()
    (datagram,) = notify_socket.drain(1.0)
    fields = dict(line.split("=", 1) for line in datagram.split("\n"))
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= after
    notifier.close()


def test_a_missing_socket_is_logged_not_raised(short_tmp):
    notifier = Notifier({"NOTIFY_SOCKET": str(short_tmp / "nobody-listens.sock")})
    with capture_logs() as logs:
        assert notifier.ready() is False
        assert notifier.watchdog() is False
    assert [e["event"] for e in logs] == ["systemd.notify_failed"]  # warned once only


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "400000"}, 0.2),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "4242"}, 60.0),  # 4242 is "us" below
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "1"}, None),  # another process's watchdog
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "x"}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec_for_our_pid_only(environ, expected):
    assert watchdog_interval(environ, pid=4242) == expected


# -- the daemon speaks it ---------------------------------------------------------------------


def fields_of(datagram: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.split("\n"))


def test_ready_after_the_first_tick_then_watchdog_and_a_clean_stop(duban_env, notify_socket):
    daemon = duban_env.start(notify=notify_socket, WATCHDOG_USEC="400000")
    ready = notify_socket.wait_for("READY=1")
    # READY=1 comes once the database is open and the first tick is done: the heartbeat shows it
    status = fields_of(ready)["STATUS"]
    assert status.startswith("运行中：已处理 ") and status.endswith("下一次 2026-06-11 00:00"), status
    assert (
        duban_env.scalar("SELECT count(*) FROM heartbeat WHERE role='leader' AND last_tick_at IS NOT NULL")
        == 1
    )
    assert duban_env.scalar("SELECT count(*) FROM obligation WHERE state='open'") > 0
    ticked = daemon.wait_for_event("tick.done")
    assert ticked["fired"] > 0

    # WATCHDOG_USEC=0.4 s: a ping every 0.2 s, each at least 0.2 s after the one before (three more
    # take two intervals at least), however late a crowded machine runs them
    start, began = notify_socket.count("WATCHDOG=1"), time.monotonic()
    while notify_socket.count("WATCHDOG=1") < start + 3:
        assert time.monotonic() - began < 30, "no three watchdog pings in 30 s"
        notify_socket.drain(0.2)
    assert time.monotonic() - began >= 0.35

    began = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0, daemon.output()
    assert time.monotonic() - began < 5
    stopping = notify_socket.wait_for("STOPPING=1", timeout=1)
    assert notify_socket.datagrams.index(stopping) > notify_socket.datagrams.index(ready)
    assert duban_env.scalar("SELECT role FROM heartbeat") == "stopped"
    assert daemon.wait_for_event("daemon.stopped", exit_code=0)


def test_sighup_reloads_and_a_broken_file_keeps_the_old_state(duban_env, notify_socket):
    daemon = duban_env.start(notify=notify_socket)
    notify_socket.wait_for("READY=1")
    obligations = duban_env.rows("SELECT key, state FROM obligation ORDER BY key")
    assert len(obligations) == 6  # T1 and T2 for three towns

    # a broken units file: the daemon says exactly where, and keeps running on the old files
    good_units = duban_env.units.read_text(encoding="utf-8")
    duban_env.units.write_text(good_units + '\n[[units]]\nid = "town-x"\nname = \n', encoding="utf-8")
    broken_line = good_units.count("\n") + 4
    seen = len(notify_socket.datagrams)
    daemon.signal(signal.SIGHUP)
    reloading = notify_socket.wait_for("RELOADING=1", after=seen)
    assert int(fields_of(reloading)["MONOTONIC_USEC"]) > 0
    ready = notify_socket.wait_for("READY=1", after=notify_socket.datagrams.index(reloading) + 1)
    assert "沿用原配置" in fields_of(ready)["STATUS"]
    problem = daemon.wait_for_event("reload.problem")
    assert problem["problem"].startswith(f"{duban_env.units}:{broken_line}:"), problem
    assert problem["_priority"] == 3
    assert daemon.wait_for_event("reload.failed")["problems"] == 1
    assert daemon.proc.poll() is None
    assert duban_env.rows("SELECT key, state FROM obligation ORDER BY key") == obligations

    # a broken definition: the same
    good_definition = duban_env.definition.read_text(encoding="utf-8")
    duban_env.definition.write_text(
        good_definition.replace('due = "06-12"', 'due = "13-45"'), encoding="utf-8"
    )
    duban_env.units.write_text(good_units, encoding="utf-8")
    seen = len(notify_socket.datagrams)
    daemon.signal(signal.SIGHUP)
    notify_socket.wait_for("RELOADING=1", after=seen)
    notify_socket.wait_for("READY=1", after=seen + 1)
    due_line = good_definition.splitlines().index('due = "06-12"') + 1
    # wait for this reload's own problem line (READY=1 may reach us before the log line does)
    problem = daemon.wait_for_event(
        "reload.problem", where=lambda e: e["problem"].startswith(f"{duban_env.definition}:{due_line}:")
    )
    assert "13-45" in problem["problem"], problem
    assert duban_env.rows("SELECT key, state FROM obligation ORDER BY key") == obligations

    # fixed, with a new town: the reload reconciles (the new town gets its obligations)
    duban_env.definition.write_text(good_definition, encoding="utf-8")
    duban_env.units.write_text(
        good_units
        + '\n[[units]]\nid = "town-new"\nname = "新镇"\nemails = ["new@example.gov.cn"]\nroles = ["town"]\n',
        encoding="utf-8",
    )
    seen = len(notify_socket.datagrams)
    daemon.signal(signal.SIGHUP)
    notify_socket.wait_for("RELOADING=1", after=seen)
    ready = notify_socket.wait_for("READY=1", after=seen + 1)
    assert fields_of(ready)["STATUS"].startswith("运行中")
    daemon.wait_for_event("reload.done")
    # the tick after the reload opened them (the fake clock says 2026-06-10 09:30, the phase's first day)
    assert duban_env.rows("SELECT task, state FROM obligation WHERE unit='town-new' ORDER BY task") == [
        ("T1", "open"),
        ("T2", "open"),
    ]
    assert (
        duban_env.scalar("SELECT count(*) FROM event WHERE kind='obligation.added' AND unit='town-new'") == 2
    )
    assert duban_env.scalar("SELECT count(*) FROM event WHERE kind='daemon.reloaded'") == 1
    assert daemon.stop() == 0
