"""Engines, sessions and the schema check.

SQLite (the embedded default) gets WAL, a busy timeout and foreign keys on every connection.
Only ``duban db upgrade`` creates or changes a schema; everything else refuses a database that
is missing, not duban's, or behind the code's migrations, and says what to run.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    String,
    Table,
    TypeDecorator,
    any_,
    bindparam,
    event,
    inspect,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel, create_engine

from orchestrator.store import models  # noqa: F401  (registers the tables)
from orchestrator.store.models import SCHEMA_REVISION
from workflows.errors import DubanError

T = TypeVar("T")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaError(DubanError):
    """The database is missing, not duban's, or has an old schema."""


# A 32 MiB page cache (the default is 2 MiB): a province-scale year is ~1 GB of tables and indexes.
# (64 MiB was within 3 % of its speed and added 38 MiB to the peak memory: benchmarks/README.md.)
SQLITE_PRAGMAS = (
    "journal_mode=WAL",
    "busy_timeout=5000",
    "foreign_keys=ON",
    "synchronous=NORMAL",
    "cache_size=-32768",
    "wal_autocheckpoint=16384",  # checkpoint (and fsync) every 64 MiB of WAL, not every 4 MiB
)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _busy_timeout(seconds: float):
    """A ``connect`` listener that sets how long a connection waits for another writer."""

    def set_timeout(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")
        cursor.close()

    return set_timeout


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


# duban's statements are short (a page of rows by an index), but after a bulk write — a program's
# start, a tick or a queueing of 100k rows, with autovacuum off or behind — the planner's estimates
# for them run to millions of rows, past ``jit_above_cost``: each then paid 50–150 ms of JIT
# compilation for a few ms of work (reading a province's year back took 304 s, 92 s without JIT).
POSTGRES_OPTIONS = "-c jit=off"


def make_engine(url: str, *, create_dir: bool = False, busy_seconds: float | None = None) -> Engine:
    """An engine for ``url``; SQLite gets its pragmas, ``sqlite://`` (memory) one shared connection.
    ``busy_seconds``: how long a SQLite connection waits for another writer (default 5 s; the CLI
    waits longer: a tick at province scale writes for longer than that)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DubanError(f'database.url: cannot parse "{url}"') from None
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None and create_dir:
            path.parent.mkdir(parents=True, exist_ok=True)
        if path is None:
            engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        if busy_seconds is not None:
            event.listen(engine, "connect", _busy_timeout(busy_seconds))
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    # The URL's own ?options=… stand as they are. Otherwise ours, then PGOPTIONS: libpq reads that
    # variable only when no options are given, and an administrator's setting must not be lost.
    options = {} if "options" in parsed.query else {"options": _with_pgoptions(POSTGRES_OPTIONS)}
    return create_engine(url, pool_pre_ping=True, connect_args=options)


def _with_pgoptions(options: str) -> str:
    """``options`` followed by the environment's ``PGOPTIONS`` (later settings win: the admin's)."""
    return " ".join(filter(None, (options, os.environ.get("PGOPTIONS", "").strip())))


if TYPE_CHECKING:
    from alembic.config import Config


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config  # alembic only to migrate: opening a database stays fast

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(None)).get_current_head()  # type: ignore[arg-type]


def current_revision(engine: Engine) -> str | None:
    """The revision in ``alembic_version`` (what Alembic's ``get_current_revision`` reads), or None."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to head; returns (before, after) revisions."""
    before = current_revision(engine)
    _refuse_foreign(engine, before)
    from alembic import command

    command.upgrade(alembic_config(engine), "head")
    return before, current_revision(engine) or ""


def _refuse_foreign(engine: Engine, revision: str | None) -> None:
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    if revision is None and tables and "duban_schema" not in tables:
        raise SchemaError(
            f"{_where(engine)}: not a duban database (it has other tables: {', '.join(sorted(tables)[:5])})"
        )


def _where(engine: Engine) -> str:
    path = sqlite_path(engine.url.render_as_string())
    return str(path) if path else engine.url.render_as_string(hide_password=True)


def _probe(url: str) -> str | None:
    """The schema revision of the database at ``url``; refuses one that is not duban's.

    SQLite is probed without the pragmas: WAL would rewrite the header of a file that is refused.
    """
    path = sqlite_path(url)
    probe = create_engine(url) if path is not None else make_engine(url)
    try:
        revision = current_revision(probe)
        _refuse_foreign(probe, revision)
        return revision
    except OperationalError as exc:
        raise SchemaError(f"{_where(probe)}: cannot open the database ({exc.orig})") from None
    except Exception as exc:  # a file that is not SQLite at all
        if exc.__class__.__name__ == "DatabaseError":
            raise SchemaError(
                f"{_where(probe)}: not a duban database ({getattr(exc, 'orig', exc)})"
            ) from None
        raise
    finally:
        probe.dispose()


def open_database(url: str, *, busy_seconds: float | None = None) -> Engine:
    """Open an existing duban database at head revision, or raise ``SchemaError`` saying what to run."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise SchemaError(f"{path}: no such database; run `duban db upgrade` to create it")
    revision = _probe(url)
    engine = make_engine(url, busy_seconds=busy_seconds)
    head = SCHEMA_REVISION  # the migrations' head (tests/test_migrations.py checks they agree)
    if revision is None:
        raise SchemaError(f"{_where(engine)}: the database has no duban schema; run `duban db upgrade`")
    if revision != head:
        raise SchemaError(
            f"{_where(engine)}: the database schema is at revision {revision}, this duban needs {head}; "
            "run `duban db upgrade`"
        )
    return engine


def upgrade_database(url: str) -> tuple[str | None, str]:
    """Create the database at ``url`` or migrate it to head; a foreign database is refused untouched."""
    path = sqlite_path(url)
    if path is None or path.exists():
        _probe(url)
    return upgrade(make_engine(url, create_dir=True))


def memory_engine() -> Engine:
    """A fresh in-memory database with the whole schema (for ``simulate`` and tests)."""
    engine = make_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    return engine


IN_LIMIT = 900  # ids per ``IN (...)``: under SQLite's default limit of 999 bound parameters


def chunks(values: Sequence[T], size: int = IN_LIMIT) -> Iterator[Sequence[T]]:
    """``values`` in slices of ``size`` (for ``IN (...)`` lists and batched statements)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def among(column, values: Sequence, dialect) -> Any:
    """``column IN (values)`` for a hot path's batch of keys (``chunks`` of them). On PostgreSQL it is
    ``column = ANY(:values)``, one array parameter: the statement is then the same text for every
    batch, which psycopg parses once and prepares, where an ``IN`` of 900 parameters is rendered by
    SQLAlchemy and parsed again by psycopg at each execution (a fifth of loading a batch of letters).
    SQLite has no arrays: a plain ``IN``."""
    if dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type), unique=True))
    return column.in_(values)


def executemany(connection: Connection, sql: str, rows: Sequence[tuple]) -> int:
    """One plain SQL statement with ``?`` placeholders, run for many tuples of already-plain values
    (ints, strings) straight through the driver: SQLAlchemy's per-row parameter processing costs
    more than the statement itself on the hot paths (millions of rows in a province-scale year).
    Returns the rows changed (both drivers sum an executemany's row counts)."""
    if not rows:
        return 0
    if connection.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    return connection.exec_driver_sql(sql, list(rows)).rowcount


def set_per_id(
    connection: Connection, table: str, column: str, pairs: Sequence[tuple[int, Any]], cast: str, **same: Any
) -> int:
    """``UPDATE table SET column = value, (each of same) WHERE id = id`` for each ``(id, value)`` of
    ``pairs``, with already-plain values; returns the rows changed. PostgreSQL: one statement over
    two arrays (``unnest``; ``cast`` is the SQL type of the values), which costs a round trip where
    an executemany costs one per row; SQLite: an executemany."""
    if not pairs:
        return 0
    others = "".join(f", {name} = ?" for name in same)
    if connection.dialect.name != "postgresql":
        sql = f"UPDATE {table} SET {column} = ?{others} WHERE id = ?"
        return executemany(connection, sql, [(value, *same.values(), oid) for oid, value in pairs])
    changed = 0
    for part in chunks(pairs, 50_000):
        sql = (
            f"UPDATE {table} AS target SET {column} = v.value{others} "
            f"FROM unnest(?::bigint[], ?::{cast}[]) AS v(id, value) WHERE target.id = v.id"
        )
        ids, values = [oid for oid, _ in part], [value for _, value in part]
        changed += driver_sql(connection, sql, (*same.values(), ids, values)).rowcount
    return changed


def driver_sql(connection: Connection, sql: str, values: tuple):
    """One plain SQL statement with ``?`` placeholders and already-plain values, straight through the
    driver (``executemany``'s single-row sibling); its result."""
    if connection.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    return connection.exec_driver_sql(sql, values)


def bulk_insert(
    connection: Connection, table: Table, rows: Sequence[dict], *, unique: str | None = None
) -> int:
    """INSERT ``rows`` (dicts with the same keys) in one executemany; returns how many were inserted.

    With ``unique`` (a column with a unique index), rows whose value is already there are skipped
    (``ON CONFLICT … DO NOTHING``, on SQLite and PostgreSQL alike). The values go through each
    column type's own bind processing, once per value, without SQLAlchemy's per-row statement
    machinery (which costs more than the insert itself at a million rows); both drivers sum an
    executemany's row counts, so the count is what was really inserted.
    """
    if not rows:
        return 0
    dialect = connection.dialect
    names = list(rows[0])
    quote = dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
        f"VALUES ({', '.join('?' for _ in names)})"
    )
    if unique:
        sql += f" ON CONFLICT ({quote(unique)}) DO NOTHING"
    return executemany(connection, sql, plain_values(table, dialect, names, rows))


def bulk_update(connection: Connection, table: Table, rows: Sequence[dict], *, key: str) -> int:
    """UPDATE one row of ``table`` per dict of ``rows`` (the same keys in each): the one whose ``id``
    is ``row[key]``, its other keys set as given, in one executemany; returns the rows changed.
    The values go through each column's bind processing, as in ``bulk_insert``."""
    if not rows:
        return 0
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    names = [n for n in rows[0] if n != key]
    sql = f"UPDATE {quote(table.name)} SET {', '.join(f'{quote(n)} = ?' for n in names)} WHERE id = ?"
    values = plain_values(table, dialect, names, rows)
    return executemany(connection, sql, [(*v, row[key]) for v, row in zip(values, rows, strict=True)])


def plain_values(table: Table, dialect, names: list[str], rows: Sequence[dict]) -> list[tuple]:
    """The ``names`` of each row as the driver takes them (each column type's bind processing)."""
    take = itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
    processors = ((i, _bind_processor(table.c[n].type, dialect)) for i, n in enumerate(names))
    converted = [(i, p) for i, p in processors if p is not None]
    if not converted:
        return [tuple(take(row)) for row in rows]
    values = []
    for row in rows:
        value = list(take(row))
        for i, process in converted:
            value[i] = process(value[i])
        values.append(tuple(value))
    return values


class _Memoized(TypeDecorator):
    """Reads a column through its own type's result processing, once per distinct raw value.

    A hot query reads a handful of distinct timestamps, dates and small JSON lists over and over
    (every timer of a day has the same ``fire_at``); SQLite's parsing of each is the larger part of
    reading the row. Values come back shared: callers must not mutate them.
    """

    impl = String  # never used for results: ``result_processor`` below replaces it
    cache_ok = True

    def __init__(self, inner) -> None:
        super().__init__()
        self.inner = inner

    def result_processor(self, dialect, coltype):
        process = self.inner.dialect_impl(dialect).result_processor(dialect, coltype)
        return None if process is None else _memoize(process)


def memoized(column):
    """``column`` for a hot SELECT: its values converted once per distinct raw value (read-only)."""
    return type_coerce(column, _Memoized(column.type)).label(column.name)


def bind_value(connection: Connection, column, value):
    """``value`` as the driver takes it for ``column`` (for ``executemany`` with plain values)."""
    process = _bind_processor(column.type, connection.dialect)
    return value if process is None else process(value)


_UNCACHED = object()  # a key function's answer for a value to convert every time


MEMO_SIZE = 4096  # distinct values a memo keeps (then it starts again): its memory stays bounded
MEMO_LONGEST = 512  # characters of the longest raw text a memo keeps (an escalation's list of late
# units at province scale is a megabyte: 4,096 of them, parsed, would be gigabytes; and they rarely repeat)


def _memoize(process: Callable[[Any], Any], key: Callable[[Any], Any] | None = None) -> Callable[[Any], Any]:
    """``process``, run once per distinct value (or ``key(value)``); an unhashable value, or one
    whose key is ``_UNCACHED``, is converted every time. Results are shared: never mutate them.

    The memo lives as long as the compiled statement (SQLAlchemy caches those for the process), so
    it is emptied every ``MEMO_SIZE`` distinct values: a long-lived daemon's memos would otherwise
    grow with every timestamp and every escalation's list of late units it ever read.
    """
    cache: dict[Any, Any] = {}

    def memo(value):
        found = value if key is None else key(value)
        if found is _UNCACHED or (type(found) is str and len(found) > MEMO_LONGEST):
            return process(value)
        try:
            return cache[found]
        except KeyError:
            if len(cache) >= MEMO_SIZE:
                cache.clear()
            cache[found] = result = process(value)
            return result
        except TypeError:  # unhashable (e.g. a driver's already-parsed JSON)
            return process(value)

    return memo


def _json_key(value) -> Any:
    """A memo key for lists and dicts of strings only: equal keys must mean equal JSON (True == 1
    and 1.0 == 1 in Python). An audit event's before/after, e.g. {"state": "open"}, qualifies."""
    if type(value) is list and all(type(v) is str for v in value):
        return tuple(value)
    if type(value) is dict and all(isinstance(v, str) for v in value.values()):  # (a StrEnum too)
        return (dict, *value.items())
    return _UNCACHED


def _bind_processor(column_type, dialect) -> Callable[[Any], Any] | None:
    """The column type's bind processing, memoized where values repeat: dates and times (a bulk
    insert repeats a few send slots and one ``now``) and small JSON (a unit's recipients)."""
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return None
    if isinstance(column_type, JSON):
        return _memoize(process, _json_key)
    base = column_type.impl if isinstance(column_type, TypeDecorator) else column_type
    return _memoize(process) if isinstance(base, (Date, DateTime)) else process


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside a bulk step (a tick batch, ``enqueue``, a program's start).

    Such a step builds hundreds of thousands of rows — dicts and tuples, none in a reference cycle —
    and Python's collector walked them again and again as they were made: a tenth of a province's
    simulated year. Reference counting still frees them as usual; collection resumes after the block.
    """
    if not gc.isenabled():  # already paused (a nested step, or another thread's)
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextmanager
def transaction(engine: Engine):
    """One session, committed at the end of the block (rolled back on error).

    On SQLite the transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock before its
    first read, so two processes never decide on the same rows (the second waits, then sees the
    first one's commit). pysqlite would otherwise run the reads outside any transaction.
    """
    with Session(engine, expire_on_commit=False) as session, session.begin():
        if is_sqlite(engine):
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        yield session


def lock_row(session: Session, table: Table, row_id: int) -> None:
    """Hold the row ``row_id`` of ``table`` until the session's transaction ends: another transaction
    that locks it waits, then reads what this one committed. A decision that reads before it writes
    (a unit's double tap, a decision racing another) takes the lock first and reads after it.

    PostgreSQL: ``SELECT … FOR UPDATE`` (a row lock). SQLite: an UPDATE that changes nothing, which
    takes the database's write lock (pysqlite begins the transaction at the first write, so the
    reads that follow see every commit made before it)."""
    if is_sqlite(session.get_bind()):
        session.execute(table.update().where(table.c.id == row_id).values(id=table.c.id))
    else:
        session.execute(select(table.c.id).where(table.c.id == row_id).with_for_update())
