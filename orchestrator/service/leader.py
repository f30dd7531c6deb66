"""Who may tick: one daemon per SQLite file; on PostgreSQL one leader and any number on standby.

- SQLite: an exclusive ``fcntl.flock`` on the database file itself, held for the life of the
  process (the kernel releases it when the process dies, even by SIGKILL). A lock belongs to the
  file (its inode), not to a name: a symlink, a hard link or ``dir/../duban.db`` finds the same
  lock. (SQLite's own locks are POSIX ``fcntl`` record locks, which Linux keeps apart from
  ``flock``.) The holder writes its pid into ``<resolved database>.lock`` so that a second
  daemon can say who holds it.
- PostgreSQL: a session-level advisory lock, ``pg_try_advisory_lock(LOCK_CLASS,
  hashtext(current_schema()))``, on a dedicated autocommit connection. PostgreSQL releases it
  when that session ends, so a standby that polls takes over when the leader dies. The second
  key is the schema, so deployments in different schemas of one database do not block each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Protocol

import structlog
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.store.db import sqlite_path
from workflows.errors import DubanError

log = structlog.get_logger("duban.leader")
LOCK_CLASS = 0x64756261  # "duba" = 1685414497


class AlreadyRunning(DubanError):
    """Another daemon holds the database (SQLite allows one)."""

    exit_code = 1


class LeadershipLost(DubanError):
    """The connection that held the PostgreSQL advisory lock is gone: another daemon may lead now."""

    exit_code = 1


class Leadership(Protocol):
    """``try_acquire`` → True when this process leads; ``check`` raises ``LeadershipLost``."""

    standby_possible: bool

    def try_acquire(self) -> bool: ...

    def check(self) -> None: ...

    def release(self) -> None: ...


class NoLock:
    """An in-memory database: nobody else can see it."""

    standby_possible = False

    def try_acquire(self) -> bool:
        return True

    def check(self) -> None:
        return None

    def release(self) -> None:
        return None


class SqliteLock:
    """``flock`` on the database file; ``try_acquire`` raises ``AlreadyRunning`` naming the holder."""

    standby_possible = False

    def __init__(self, database: Path) -> None:
        self.database = database
        resolved = Path(os.path.realpath(database))
        self.path = resolved.with_name(resolved.name + ".lock")  # the holder's pid, for the message
        self._fd: int | None = None
        self._pid_fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.database, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self._holder()
            who = f"pid {holder}" if holder else "another process"
            raise AlreadyRunning(
                f"{self.database}: another duban daemon ({who}) is running on this database "
                f"(it holds the lock {self.path}); one daemon per SQLite database — stop it first, "
                "or use PostgreSQL to run several"
            ) from None
        self._fd = fd
        try:
            pid_fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.ftruncate(pid_fd, 0)
            os.pwrite(pid_fd, f"{os.getpid()}\n".encode(), 0)
            self._pid_fd = pid_fd
        except OSError as exc:  # the lock is what counts; the pid is only for the message
            log.warning("leader.pid_file", path=str(self.path), error=exc.strerror or str(exc))
        return True

    def _holder(self) -> int | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            return _read_pid(fd)
        finally:
            os.close(fd)

    def check(self) -> None:
        return None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        pid_fd, self._pid_fd = self._pid_fd, None
        if pid_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(pid_fd, 0)
            os.close(pid_fd)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError, UnicodeDecodeError):
        return None


class PostgresLock:
    """A session advisory lock on a dedicated autocommit connection (never returned to the pool)."""

    standby_possible = True
    SQL_TRY = text("SELECT pg_try_advisory_lock(:cls, hashtext(current_schema()))")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Connection | None = None
        self.held = False

    def try_acquire(self) -> bool:
        if self.held:
            return True
        try:
            if self._connection is None:
                self._connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self.held = bool(self._connection.execute(self.SQL_TRY, {"cls": LOCK_CLASS}).scalar())
        except SQLAlchemyError as exc:
            log.warning("leader.lock_unavailable", error=str(exc).splitlines()[0])
            self._drop()
            return False
        return self.held

    def check(self) -> None:
        if not self.held or self._connection is None:
            raise LeadershipLost("the PostgreSQL advisory lock is not held")
        try:
            self._connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            self.held = False
            self._drop()
            raise LeadershipLost(
                f"lost the connection holding the leader lock: {str(exc).splitlines()[0]}"
            ) from None

    def release(self) -> None:
        if self._connection is not None and self.held:
            try:
                self._connection.execute(
                    text("SELECT pg_advisory_unlock(:cls, hashtext(current_schema()))"), {"cls": LOCK_CLASS}
                )
            except SQLAlchemyError as exc:
                log.warning("leader.unlock_failed", error=str(exc).splitlines()[0])
        self.held = False
        self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except SQLAlchemyError:
                connection.invalidate()


def leadership_for(engine: Engine) -> Leadership:
    if engine.dialect.name == "postgresql":
        return PostgresLock(engine)
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    return NoLock() if path is None else SqliteLock(path)
