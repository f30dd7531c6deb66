"""Shared fixtures.

- ``duban_env``: a temporary deployment — a small definition, a units file, ``config.toml`` and
  a SQLite database made by ``duban db upgrade`` — with helpers to start the daemon as a real
  subprocess (``env.start()``), to run the CLI, and to read the database.
- ``notify_socket``: a real ``AF_UNIX`` datagram socket standing in for systemd's
  ``NOTIFY_SOCKET``; ``wait_for("READY=1")`` returns the datagram that carried it.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

REPO = Path(__file__).resolve().parent.parent
DUBAN = str(Path(sys.executable).with_name("duban"))
FAKE_NOW = "2026-06-10T09:30:00+08:00"  # a Wednesday, a working day, inside the send window
LINE = re.compile(r"^<([0-7])>(\{.*\})$")

TEST_DEFINITION = """\
[workflow]
id = "daemon-test"
title = "守护进程测试方案"
timezone = "Asia/Shanghai"
calendar = "cn-workdays"
reminders = ["-1wd"]
escalation = [{ after = "1wd", to = "lead" }]

[[phases]]
id = "p1"
name = "测试阶段"
start = "06-10"
end = "06-30"

[[tasks]]
id = "T1"
title = "报送实施方案"
phase = "p1"
lead = ["role:office"]
responsible = ["role:town"]
due = "06-10"

[[tasks]]
id = "T2"
title = "报送工作总结"
phase = "p1"
lead = ["role:office"]
responsible = ["role:town"]
due = "06-12"
"""


def units_toml(towns: int) -> str:
    """An office and ``towns`` towns (ids ``town-00`` …), addresses under example.gov.cn."""
    parts = [
        '[[units]]\nid = "office"\nname = "县督查办"\nemails = ["office@example.gov.cn"]\nroles = ["office"]\n'
    ]
    for n in range(towns):
        parts.append(
            f'[[units]]\nid = "town-{n:02d}"\nname = "第{n}镇人民政府"\n'
            f'emails = ["town{n:02d}@example.gov.cn"]\nroles = ["town"]\n'
        )
    return "\n".join(parts)


# -- systemd's side of the notify protocol -------------------------------------------------------


class NotifySocket:
    """A bound ``AF_UNIX SOCK_DGRAM`` socket; every datagram received is kept in ``datagrams``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.datagrams: list[str] = []

    def drain(self, timeout: float = 0.0) -> list[str]:
        """Read what has arrived (waiting up to ``timeout`` for the first datagram)."""
        got = []
        while True:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                break
            got.append(self.sock.recv(65536).decode("utf-8"))
            timeout = 0.0
        self.datagrams.extend(got)
        return got

    def wait_for(self, field: str, timeout: float = 20.0, *, after: int = 0) -> str:
        """The first datagram (from index ``after`` on) with the line ``field``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for datagram in self.datagrams[after:]:
                if field in datagram.split("\n"):
                    return datagram
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {field} within {timeout}s; got {self.datagrams!r}")
            self.drain(min(left, 0.2))

    def count(self, field: str) -> int:
        self.drain()
        return sum(field in d.split("\n") for d in self.datagrams)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A folder with a short path (a Unix socket path must fit in 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="duban-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def notify_socket(short_tmp: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(short_tmp / "notify.sock")
    yield sock
    sock.close()


# -- the daemon as a real subprocess -----------------------------------------------------------


class DaemonProcess:
    """``duban … run`` in a subprocess; stdout and stderr are collected by reader threads."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def events(self) -> list[dict]:
        """Every stdout line as a dict (JSON lines with a journald prefix), with ``_priority``."""
        found = []
        for line in list(self.stdout):
            match = LINE.match(line)
            if match:
                found.append(json.loads(match.group(2)) | {"_priority": int(match.group(1))})
        return found

    def wait_for_event(
        self, name: str, timeout: float = 20.0, *, where: Callable[[dict], bool] | None = None, **fields
    ) -> dict:
        """The first event ``name`` with ``fields`` (and for which ``where(event)`` holds)."""

        def wanted(event: dict) -> bool:
            if event.get("event") != name or any(event.get(k) != v for k, v in fields.items()):
                return False
            return where is None or where(event)

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if wanted(event):
                    return event
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the readers catch the last lines
                for event in self.events():
                    if wanted(event):
                        return event
                raise AssertionError(f"daemon exited ({self.proc.returncode}) before {name}: {self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"no {name} event within {timeout}s: {self.output()}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 10.0) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()

    def output(self) -> str:
        return "\n".join([*self.stdout, "--- stderr ---", *self.stderr])[-6000:]


@dataclass
class DubanEnv:
    """A temporary deployment; ``config`` holds the config.toml sections as TOML text."""

    root: Path
    towns: int = 3
    database_url: str | None = None
    daemon: dict = field(
        default_factory=lambda: {"tick_interval": 60, "dispatch_interval": 0.5, "standby_poll": 0.2}
    )
    mail: str = ""
    processes: list[DaemonProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.root / "definitions").mkdir(parents=True, exist_ok=True)
        self.definition.write_text(TEST_DEFINITION, encoding="utf-8")
        self.units.write_text(units_toml(self.towns), encoding="utf-8")
        self.write_config()

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def definition(self) -> Path:
        return self.root / "definitions" / "daemon_test.toml"

    @property
    def units(self) -> Path:
        return self.root / "units.toml"

    @property
    def database(self) -> Path:
        return self.root / "duban.db"

    @property
    def maildir(self) -> Path:
        return self.root / "mail"

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{self.database}"

    def write_config(self) -> None:
        daemon = "\n".join(f"{k} = {v}" for k, v in self.daemon.items())
        mail = self.mail or textwrap.dedent("""\
            transport = "maildir"
            maildir = "mail"
            """)
        self.config_path.write_text(
            f'[database]\nurl = "{self.url}"\n\n'
            f'[definitions]\npaths = ["definitions"]\nunits = "units.toml"\n\n'
            f"[daemon]\n{daemon}\n\n"
            f'[mail]\nsender = "督办系统 <duban@example.gov.cn>"\ndomain = "duban.test"\n'
            f"retry_base = 1\nretry_max = 2\n{mail}\n"
            f'[[programs]]\nworkflow = "daemon-test"\nyear = "current"\n',
            encoding="utf-8",
        )

    def base_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_", "DUBAN_"))}
        env.update({"DUBAN_FAKE_NOW": FAKE_NOW, "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"})
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def cli(self, *args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [DUBAN, "--config", str(self.config_path), *args],
            env=env or self.base_env(),
            cwd=self.root,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
        )

    def upgrade(self) -> None:
        """What ``duban db upgrade`` does (in this process: one interpreter start less per test)."""
        from orchestrator.store.db import make_engine, upgrade

        engine = make_engine(self.url, create_dir=True)
        try:
            upgrade(engine)
        finally:
            engine.dispose()

    def start(self, *args: str, notify: NotifySocket | None = None, **env: str) -> DaemonProcess:
        extra = dict(env)
        if notify is not None:
            extra["NOTIFY_SOCKET"] = str(notify.path)
        process = DaemonProcess(
            [DUBAN, "--config", str(self.config_path), "run", *args], self.base_env(**extra), self.root
        )
        self.processes.append(process)
        return process

    def engine(self) -> Engine:
        from orchestrator.store.db import make_engine

        return make_engine(self.url)

    def scalar(self, sql: str, **params):
        engine = self.engine()
        try:
            with engine.connect() as connection:
                return connection.execute(text(sql), params).scalar()
        finally:
            engine.dispose()

    def rows(self, sql: str, **params) -> list[tuple]:
        engine = self.engine()
        try:
            with engine.connect() as connection:
                return [tuple(r) for r in connection.execute(text(sql), params)]
        finally:
            engine.dispose()

    def cleanup(self) -> None:
        for process in self.processes:
            if process.proc.poll() is None:
                process.kill()


@pytest.fixture
def duban_env(short_tmp: Path) -> Iterator[DubanEnv]:
    """A temporary deployment with its SQLite database created by ``duban db upgrade``."""
    env = DubanEnv(short_tmp / "deploy")
    env.upgrade()
    yield env
    env.cleanup()


@pytest.fixture
def make_duban_env(short_tmp: Path) -> Iterator[Callable[..., DubanEnv]]:
    """Build a deployment with other settings: ``make_duban_env(towns=30, mail=..., database_url=...)``."""
    made: list[DubanEnv] = []

    def make(name: str = "deploy", *, upgrade: bool = True, **options) -> DubanEnv:
        env = DubanEnv(short_tmp / name, **options)
        if upgrade:
            env.upgrade()
        made.append(env)
        return env

    yield make
    for env in made:
        env.cleanup()


_POSTGRES_UP: bool | None = None


def _postgres_up() -> bool:
    global _POSTGRES_UP
    if _POSTGRES_UP is None:
        try:
            with socket.create_connection(("127.0.0.1", 5432), timeout=2):
                _POSTGRES_UP = True
        except OSError:
            _POSTGRES_UP = False
    return _POSTGRES_UP


def pytest_runtest_setup(item: pytest.Item) -> None:
    """PostgreSQL tests need the server on 127.0.0.1:5432. Without it they skip, saying so —
    except under CI (``DUBAN_REQUIRE_POSTGRES=1``, set by .ci/run), where they must run."""
    if item.get_closest_marker("postgres") and not _postgres_up():
        if os.environ.get("DUBAN_REQUIRE_POSTGRES") == "1":
            pytest.fail(
                "PostgreSQL is required (DUBAN_REQUIRE_POSTGRES=1) but 127.0.0.1:5432 does not answer"
            )
        pytest.skip("PostgreSQL on 127.0.0.1:5432 does not answer (make test skips; .ci/run requires it)")
