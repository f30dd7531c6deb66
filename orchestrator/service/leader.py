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

Every daemon sends, the standbys too, so claims can be another daemon's and alive. On PostgreSQL
each daemon also holds a lock of its own name (``NODE_CLASS``, the schema and ``host:pid``) on the
same connection: a claim whose node lock nobody holds is a dead daemon's and can be handed back at
once (``gone``), instead of after its expiry. On SQLite one daemon runs per file: any other claim
is a dead one's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Collection
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
NODE_CLASS = 0x6475626E  # "dubn": each daemon's own lock, held while it lives (PostgreSQL)


class AlreadyRunning(DubanError):
    """Another daemon holds the database (SQLite allows one)."""

    exit_code = 1


class DatabaseUnwritable(DubanError):
    """The SQLite database file cannot be opened for writing (permissions, a read-only mount)."""

    exit_code = 1


class LeadershipLost(DubanError):
    """The connection that held the PostgreSQL advisory lock is gone: another daemon may lead now."""

    exit_code = 1


class Leadership(Protocol):
    """``try_acquire`` → True when this process leads; ``check`` raises ``LeadershipLost``.

    ``present`` → True while the other daemons can see this one alive (it may hold claims then);
    ``gone(nodes)`` → which of ``nodes`` (other daemons' names) are certainly dead.
    """

    standby_possible: bool

    def try_acquire(self) -> bool: ...

    def check(self) -> None: ...

    def release(self) -> None: ...

    def present(self) -> bool: ...

    def gone(self, nodes: Collection[str]) -> set[str]: ...


class _Alone:
    """One daemon per database: it is always present, and any other claimer is a dead one."""

    def present(self) -> bool:
        return True

    def gone(self, nodes: Collection[str]) -> set[str]:
        return set(nodes)


class NoLock(_Alone):
    """An in-memory database: nobody else can see it."""

    standby_possible = False

    def try_acquire(self) -> bool:
        return True

    def check(self) -> None:
        return None

    def release(self) -> None:
        return None


class SqliteLock(_Alone):
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
        try:
            fd = os.open(self.database, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:  # a read-only file (or folder): the daemon could not write a row
            raise DatabaseUnwritable(
                f"{self.database}: cannot open the database for writing ({exc.strerror}): the daemon "
                "writes it — check the owner and permissions of the file and its folder"
            ) from None
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
    SQL_NODE = text("SELECT pg_try_advisory_lock(:cls, hashtext(current_schema() || '/' || :node))")
    SQL_GONE = text(  # a transaction lock: released at commit; it conflicts with a live daemon's
        "SELECT n FROM unnest(CAST(:nodes AS text[])) AS n"
        " WHERE pg_try_advisory_xact_lock(:cls, hashtext(current_schema() || '/' || n))"
    )

    def __init__(self, engine: Engine, node: str) -> None:
        self.engine, self.node = engine, node
        self._connection: Connection | None = None
        self.held = False
        self.announced = False

    def try_acquire(self) -> bool:
        if self.held:
            return True
        try:
            if self._connection is None:
                self._connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                self._announce(self._connection)
            self.held = bool(self._connection.execute(self.SQL_TRY, {"cls": LOCK_CLASS}).scalar())
        except SQLAlchemyError as exc:
            log.warning("leader.lock_unavailable", error=str(exc).splitlines()[0])
            self._drop()
            return False
        return self.held

    def _announce(self, connection: Connection) -> None:
        """Take this daemon's own lock: while this session lives, others know its claims are alive."""
        self.announced = bool(
            connection.execute(self.SQL_NODE, {"cls": NODE_CLASS, "node": self.node}).scalar()
        )
        if not self.announced:  # another session holds our name (a reused pid?): send nothing, only lead
            log.warning("leader.node_lock_taken", node=self.node)

    def present(self) -> bool:
        return self._connection is not None and self.announced

    def gone(self, nodes: Collection[str]) -> set[str]:
        others = sorted(set(nodes) - {self.node})
        if not others:
            return set()
        with self.engine.begin() as connection:
            return set(connection.execute(self.SQL_GONE, {"cls": NODE_CLASS, "nodes": others}).scalars())

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
        self.announced = False
        if connection is not None:  # closed for real, never back to the pool: its session and locks end
            connection.invalidate()
            connection.close()


def leadership_for(engine: Engine, node: str) -> Leadership:
    """The lock of this database's kind; ``node`` (``host:pid``) names this daemon to the others."""
    if engine.dialect.name == "postgresql":
        return PostgresLock(engine, node)
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    return NoLock() if path is None else SqliteLock(path)
