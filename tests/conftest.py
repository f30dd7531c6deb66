"""Shared fixtures (the helpers they use, and every other shared helper, are in ``support.py``:
tests import ``support``, never ``conftest``).

- ``store``: a migrated store, once on a SQLite file and once on a fresh PostgreSQL schema.
- ``pg_url``: the URL of a fresh, empty PostgreSQL schema (dropped afterwards).
- ``duban_env``: a temporary deployment — a small definition, a units file, ``config.toml`` and
  a SQLite database made by ``duban db upgrade`` — with helpers to start the daemon as a real
  subprocess (``env.start()``), to run the CLI, and to read the database; ``make_duban_env`` builds
  one with other settings.
- ``notify_socket``: a real ``AF_UNIX`` datagram socket standing in for systemd's
  ``NOTIFY_SOCKET``; ``wait_for("READY=1")`` returns the datagram that carried it.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import Engine
from support import (  # noqa: F401 - DUBAN, REPO, FAKE_NOW, TEST_DEFINITION: names tests once took from here
    DUBAN,
    FAKE_NOW,
    REPO,
    TEST_DEFINITION,
    DaemonProcess,
    DubanEnv,
    NotifySocket,
    pg_schema_url,
    postgres_engine,
    sqlite_engine,
    town_units,
)

units_toml = town_units  # the name this helper had here

# The terminal the tests were started from is not theirs: pytest-xdist's workers start with
# COLUMNS=80 and LINES=24 (a plain run usually has neither), and Rich's console, made when
# orchestrator.cli is first imported, keeps a width it found then for good, whatever COLUMNS a test
# sets later. Tests that care set COLUMNS themselves.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

# Hypothesis times each example (200 ms by default) and fails one that ran slower than it did on a
# retry: on two cores shared by the suite's workers that is the machine, not the code. Tests that
# bound a time do so themselves (test_loader_fuzz.py).
settings.register_profile(
    "duban", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("duban")


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """A test that runs the CLI or the daemon in this process configures logging: a handler on the
    root logger that writes to the test's captured output. It is taken off after the test (and the
    levels put back), so that a later test's threads (aiosmtpd's) do not log into a closed capture."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if h.get_name() == "duban-daemon"]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path: Path) -> Iterator[Engine]:
    """A store with the schema ``duban db upgrade`` makes: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        engine = sqlite_engine(tmp_path)
        yield engine
        engine.dispose()
    else:
        with postgres_engine() as engine:
            yield engine


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty schema in database ``test``: its URL puts it first on the search path."""
    with pg_schema_url() as url:
        yield url


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
