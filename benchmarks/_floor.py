"""The floor of a simulated year: the rows duban wrote, written again with nothing but ``executemany``.

After a run, every row of the tables the engine writes (obligations, timers, notification items,
audit events, outbox messages) is read back from duban's database — untimed — and then written,
timed, into a fresh file made by the same migrations (the same indexes and constraints, the same
pragmas), in batches of 50,000 rows per transaction, followed by the updates the year made: each
obligation's state changes (one per ``obligation.*`` state event), each timer's ``fired_at``, and
each item's queueing into its message. That is the least any design must do to store the same
facts; duban's wall and CPU time are printed as a ratio to it.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.store.db import SQLITE_PRAGMAS, make_engine, upgrade

BATCH = 50_000
INSERTED = ("obligation", "timer", "notification_item", "event", "outbox_message")


@dataclass
class Floor:
    wall: float
    cpu: float
    rows: dict[str, int]

    @property
    def written(self) -> int:
        return sum(self.rows.values())


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def _read(source: sqlite3.Connection, table: str, columns: list[str]) -> list[tuple]:
    names = ", ".join(f'"{c}"' for c in columns)
    return source.execute(f"SELECT {names} FROM {table} ORDER BY id").fetchall()


def _write(db: sqlite3.Connection, sql: str, rows: list[tuple]) -> None:
    for start in range(0, len(rows), BATCH):
        with db:
            db.executemany(sql, rows[start : start + BATCH])


def measure(source_path: Path, floor_path: Path) -> Floor:
    """Write ``source_path``'s engine rows into a fresh ``floor_path``; time only the writes."""
    upgrade(make_engine(f"sqlite:///{floor_path}"))
    source = sqlite3.connect(source_path)
    db = sqlite3.connect(floor_path, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:  # the same as duban's
        db.execute(f"PRAGMA {pragma}")
    db.isolation_level = ""  # ``with db:`` commits each batch
    for table in ("program", "phase_run", "register_row"):  # a handful of rows, written by start
        columns = _columns(db, table)
        _write(db, _insert(table, columns), _read(source, table, columns))
    plan: list[tuple[str, str, list[tuple]]] = []
    for table in INSERTED:
        columns = _columns(db, table)
        rows = _read(source, table, columns)
        if table == "notification_item":  # inserted pending, queued later by an update
            state, message = columns.index("state"), columns.index("message_id")
            rows = [(*r[:state], "pending", *r[state + 1 : message], None, *r[message + 1 :]) for r in rows]
        if table == "timer":  # inserted unfired, fired later by an update
            fired = columns.index("fired_at")
            rows = [(*r[:fired], None, *r[fired + 1 :]) for r in rows]
        plan.append((table, _insert(table, columns), rows))
    changes = source.execute(
        "SELECT json_extract(after, '$.state'), at, obligation_id FROM event "
        "WHERE kind LIKE 'obligation.%' AND obligation_id IS NOT NULL "
        "AND json_extract(after, '$.state') IS NOT NULL"
    ).fetchall()
    fired = source.execute("SELECT fired_at, id FROM timer WHERE fired_at IS NOT NULL").fetchall()
    queued = source.execute(
        "SELECT message_id, id FROM notification_item WHERE message_id IS NOT NULL"
    ).fetchall()
    source.close()
    rows = {table: len(r) for table, _, r in plan}
    started, cpu = time.perf_counter(), time.process_time()
    for _table, sql, table_rows in plan:
        _write(db, sql, table_rows)
    _write(db, "UPDATE obligation SET state = ?, updated_at = ? WHERE id = ?", changes)
    _write(db, "UPDATE timer SET fired_at = ? WHERE id = ?", fired)
    _write(db, "UPDATE notification_item SET state = 'queued', message_id = ? WHERE id = ?", queued)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    db.close()
    rows |= {
        "obligation state updates": len(changes),
        "timer updates": len(fired),
        "item updates": len(queued),
    }
    return Floor(wall, cpu, rows)


def _insert(table: str, columns: list[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
