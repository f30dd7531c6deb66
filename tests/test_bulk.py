"""``bulk_insert`` and ``memoized`` (the hot paths' plain-driver writes and memoized reads) store and
read exactly what the ORM would, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

from engine_support import program_fields
from sqlalchemy import select

from orchestrator.engine import simulate as simulated
from orchestrator.service.config import Settings
from orchestrator.service.runtime import make_renderer, send_policy
from orchestrator.store.audit import event_row, insert_events
from orchestrator.store.db import bulk_insert, memoized, transaction
from orchestrator.store.models import Event, Program, Timer
from workflows.catalog import BUILTIN_DEFINITIONS, load_bundle

NOW = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)
ENQUEUING = importlib.import_module(
    "orchestrator.engine.outbox.enqueue"
)  # (the package exports the function)


def test_values_that_python_calls_equal_are_stored_as_themselves(store):
    """1 == True and the same instant in two time zones are equal in Python: a memo must not mix
    them up."""
    afters = [{"n": 1}, {"n": True}, {"s": "x"}, {"s": "x"}, {"l": ["a"]}, None]
    ats = [NOW, NOW.astimezone(timezone(timedelta(hours=8))), NOW + timedelta(seconds=1), NOW, NOW, NOW]
    with transaction(store) as session:
        insert_events(
            session,
            [event_row(at=at, actor="t", kind="k", after=a) for at, a in zip(ats, afters, strict=True)],
        )
    with store.connect() as connection:
        table = Event.__table__
        rows = connection.execute(select(memoized(table.c.at), table.c.after).order_by(table.c.id)).all()
    assert [r.after for r in rows] == afters
    assert [type(r.after["n"]) for r in rows[:2]] == [int, bool]
    assert [r.at for r in rows] == [NOW, NOW, NOW + timedelta(seconds=1), NOW, NOW, NOW]
    assert all(r.at.tzinfo is not None for r in rows)


def test_bulk_insert_skips_what_a_unique_column_has_and_counts_what_it_inserted(store):
    program = Program(**program_fields(NOW))
    with transaction(store) as session:
        session.add(program)
        session.flush()
        program_id = program.id

    def timers(*keys):
        return [
            {
                "key": k,
                "fire_at": NOW,
                "kind": "reminder",
                "program_id": program_id,
                "on": date(2026, 6, 1),
                "recipients": ["u"],
                "step": 0,
            }
            for k in keys
        ]

    with transaction(store) as session:
        assert bulk_insert(session.connection(), Timer.__table__, timers("k1", "k2"), unique="key") == 2
    with transaction(store) as session:
        assert bulk_insert(session.connection(), Timer.__table__, timers("k2", "k3"), unique="key") == 1
    with store.connect() as connection:
        keys = (
            connection.execute(select(Timer.__table__.c.key).order_by(Timer.__table__.c.id)).scalars().all()
        )
    assert keys == ["k1", "k2", "k3"]


def test_a_day_read_in_parts_by_recipient_makes_the_same_emails(monkeypatch):
    """``enqueue`` reads a big day in parts by ranges of recipients: forced to parts of 5 items,
    the pilot's year gives the same emails (Message-IDs, recipients, subjects, facts) as in one."""
    examples = Path(__file__).resolve().parent.parent / "examples"
    registers = {"normative_documents": examples / "normative_documents.example.csv"}
    bundle = load_bundle(
        BUILTIN_DEFINITIONS / "rule_of_law_pilot.toml", examples / "units.example.toml", registers
    )
    settings = Settings()
    bundles = {bundle.definition.workflow.id: bundle}

    def year(parts: int) -> set[tuple]:
        monkeypatch.setattr(ENQUEUING, "PART_ITEMS", parts)
        emails = simulated.simulate(
            bundle,
            2026,
            until=date(2026, 6, 12),
            policy=send_policy(settings, bundles),
            renderer=make_renderer(settings),
        )
        return {
            (e.message_id, e.to_unit, e.subject, json.dumps(e.items, sort_keys=True, default=str))
            for e in emails
        }

    whole, in_parts = year(10**9), year(5)
    assert len(whole) > 100
    assert in_parts == whole
