"""What the tests share, in one place: import it as ``support`` (never import ``conftest``).

- The plan and units builder: ``unit()`` + ``units_toml()`` write a units file, ``plan_toml()`` a
  definition, from plain Python values; ``write_bundle()`` writes both and loads them as ``duban``
  does. The plans that several files use are here once (``TOWNS_PLAN``, ``TEST_DEFINITION``).
  Tests that check ``FILE:LINE`` messages keep their literal TOML text: its lines are the point.
- Stores: ``sqlite_engine()`` (a migrated SQLite file) and ``postgres_engine()`` / ``pg_schema_url()``
  (a fresh schema in the ``test`` database on 127.0.0.1:5432, dropped afterwards).
- A temporary deployment (``DubanEnv``) with the daemon as a real subprocess (``DaemonProcess``)
  and systemd's notify socket (``NotifySocket``).

The fixtures over these (``store``, ``duban_env``, ``make_duban_env``, ``notify_socket``, ``pg_url``,
``short_tmp``) are in ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

REPO = Path(__file__).resolve().parent.parent
DUBAN = str(Path(sys.executable).with_name("duban"))
FAKE_NOW = "2026-06-10T09:30:00+08:00"  # a Wednesday, a working day, inside the send window
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
LINE = re.compile(r"^<([0-7])>(\{.*\})$")


# -- the plan and units builder -------------------------------------------------------------------


def toml_value(value: Any) -> str:
    """A Python value as a TOML value: strings, numbers, booleans, lists and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML value for {value!r}")


def toml_table(header: str, fields: Mapping[str, Any]) -> str:
    """``[header]`` (or ``[[header]]`` when written so) and one ``key = value`` line per field."""
    lines = [header, *(f"{k} = {toml_value(v)}" for k, v in fields.items() if v is not None)]
    return "\n".join(lines) + "\n"


def unit(id: str, name: str, *roles: str, emails: Sequence[str] | None = None) -> dict[str, Any]:
    """One unit of a units file (its address ``ID@example.gov.cn`` unless ``emails`` says otherwise)."""
    return {"id": id, "name": name, "emails": list(emails or [f"{id}@example.gov.cn"]), "roles": list(roles)}


def units_toml(*units: Mapping[str, Any]) -> str:
    """A units file: one ``[[units]]`` table per unit, a blank line between them."""
    return "\n".join(toml_table("[[units]]", u) for u in units)


OFFICE_AND_TWO_TOWNS = units_toml(
    unit("office", "县督查办", "office"),
    unit("town-a", "甲镇人民政府", "town"),
    unit("town-b", "乙镇人民政府", "town"),
)
"""The units of the review tests: an office and two towns."""


def plan_toml(
    workflow: Mapping[str, Any],
    *,
    phases: Iterable[Mapping[str, Any]] = (),
    tasks: Iterable[Mapping[str, Any]] = (),
    duties: Iterable[Mapping[str, Any]] = (),
    evaluation: Mapping[str, Any] | None = None,
) -> str:
    """A definition file: ``[workflow]``, then its phases, tasks and duties, then ``[evaluation]``."""
    parts = [toml_table("[workflow]", workflow)]
    parts += [toml_table("[[phases]]", p) for p in phases]
    parts += [toml_table("[[tasks]]", t) for t in tasks]
    parts += [toml_table("[[duties]]", d) for d in duties]
    if evaluation is not None:
        parts.append(toml_table("[evaluation]", evaluation))
    return "\n".join(parts)


def workflow(id: str, title: str, **fields: Any) -> dict[str, Any]:
    """The ``[workflow]`` table of a test plan: Shanghai time, PRC working days, unless told otherwise."""
    return {"id": id, "title": title, "timezone": "Asia/Shanghai", "calendar": "cn-workdays"} | fields


def task(id: str, title: str, **fields: Any) -> dict[str, Any]:
    """A ``[[tasks]]`` (or ``[[duties]]``) entry: its id and title first, then the given fields."""
    return {"id": id, "title": title} | fields


def write_bundle(folder: Path, plan: str, units: str, registers: Mapping[str, Path] | None = None):
    """``plan.toml`` and ``units.toml`` written in ``folder`` and loaded as ``duban`` loads them."""
    from workflows.catalog import load_bundle

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plan.toml").write_text(textwrap.dedent(plan), encoding="utf-8")
    (folder / "units.toml").write_text(textwrap.dedent(units), encoding="utf-8")
    return load_bundle(folder / "plan.toml", folder / "units.toml", dict(registers or {}))


def towns_plan(id: str, title: str) -> str:
    """An office supervising towns: T1 due 06-10 and T2 due 06-26 in phase p1 (06-01…06-30), and the
    monthly duty M1 (06-15 and 07-15, open 10 days before); reminders 3 days before, escalation to
    the lead after 1 working day and to the office after 5."""
    towns = {"lead": ["role:office"], "responsible": ["role:town"]}
    return plan_toml(
        workflow(
            id,
            title,
            reminders=["-3d"],
            escalation=[{"after": "1wd", "to": "lead"}, {"after": "5wd", "to": "role:office"}],
        ),
        phases=[{"id": "p1", "name": "实施阶段", "start": "06-01", "end": "06-30"}],
        tasks=[
            task("T1", "报送实施方案", phase="p1", **towns, due="06-10"),
            task("T2", "报送工作总结", phase="p1", **towns, due="06-26"),
        ],
        duties=[
            task("M1", "报送月度进展", rrule="FREQ=MONTHLY;BYMONTH=6,7;BYMONTHDAY=15", window="-10d", **towns)
        ],
    )


TEST_DEFINITION = plan_toml(
    workflow(
        "daemon-test", "守护进程测试方案", reminders=["-1wd"], escalation=[{"after": "1wd", "to": "lead"}]
    ),
    phases=[{"id": "p1", "name": "测试阶段", "start": "06-10", "end": "06-30"}],
    tasks=[
        task("T1", "报送实施方案", phase="p1", lead=["role:office"], responsible=["role:town"], due="06-10"),
        task("T2", "报送工作总结", phase="p1", lead=["role:office"], responsible=["role:town"], due="06-12"),
    ],
)
"""The daemon tests' plan: T1 due 06-10 and T2 due 06-12 for every town, led by the office."""


def town_units(towns: int) -> str:
    """An office and ``towns`` towns (ids ``town-00`` …), addresses under example.gov.cn."""
    office = unit("office", "县督查办", "office")
    return units_toml(
        office,
        *(
            unit(f"town-{n:02d}", f"第{n}镇人民政府", "town", emails=[f"town{n:02d}@example.gov.cn"])
            for n in range(towns)
        ),
    )


# -- stores ---------------------------------------------------------------------------------------


def sqlite_engine(tmp_path: Path) -> Engine:
    """A SQLite file in ``tmp_path`` with the schema ``duban db upgrade`` makes."""
    from orchestrator.store.db import make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'duban.db'}", create_dir=True)
    upgrade(engine)
    return engine


@contextlib.contextmanager
def pg_schema_url(prefix: str = "duban") -> Iterator[str]:
    """A fresh schema in database ``test``, as a URL that puts it first on the search path; dropped after."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextlib.contextmanager
def postgres_engine(*, migrate: bool = True) -> Iterator[Engine]:
    """A fresh schema in the ``test`` database, migrated to head (or left empty); dropped afterwards."""
    from orchestrator.store.db import make_engine, upgrade

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(PG_URL)

    @sqlalchemy.event.listens_for(engine, "connect")
    def _search_path(dbapi_connection, _record):
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET search_path TO {schema}")
        dbapi_connection.commit()

    try:
        if migrate:
            upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


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

    def wait_for(self, field: str, timeout: float = 60.0, *, after: int = 0) -> str:
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
        self, name: str, timeout: float = 60.0, *, where: Callable[[dict], bool] | None = None, **fields
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

    def wait(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def stop(self, timeout: float = 60.0) -> int:
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
        self.units.write_text(town_units(self.towns), encoding="utf-8")
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
