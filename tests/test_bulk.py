"""``bulk_insert``, ``memoized`` and ``among`` (the hot paths' plain-driver writes, memoized reads and
batches of keys) store and read exactly what the ORM would, on SQLite and PostgreSQL."""

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
from orchestrator.store.db import among, bulk_insert, memoized, transaction
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


def test_among_selects_what_in_selects_for_ids_and_texts(store):
    """``among`` (``= ANY(:array)`` on PostgreSQL) finds the rows ``IN (...)`` finds: integer ids and
    text keys, none, one, a repeated key, keys that match nothing, and a key with a quote in it."""
    program = Program(**program_fields(NOW))
    with transaction(store) as session:
        session.add(program)
        session.flush()
        keys = ["a", "b'; --", "c", "d"]
        bulk_insert(
            session.connection(),
            Timer.__table__,
            [
                {
                    "key": k,
                    "fire_at": NOW,
                    "kind": "reminder",
                    "program_id": program.id,
                    "on": date(2026, 6, 1),
                }
                | {"recipients": [], "step": 0}
                for k in keys
            ],
        )
    table = Timer.__table__
    with store.connect() as connection:
        ids = connection.execute(select(table.c.id).order_by(table.c.id)).scalars().all()
        for column, wanted in (
            (table.c.id, []),
            (table.c.id, [ids[1]]),
            (table.c.id, [ids[0], ids[2], ids[2], 10**9]),
            (table.c.key, ["b'; --", "d", "zz"]),
        ):
            query = select(table.c.key).order_by(table.c.id)
            found = connection.execute(query.where(among(column, wanted, connection.dialect))).scalars().all()
            expected = connection.execute(query.where(column.in_(wanted))).scalars().all()
            assert found == expected
        assert connection.execute(
            select(table.c.key).where(among(table.c.key, ["b'; --", "d"], connection.dialect))
        ).scalars().all() == ["b'; --", "d"]


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


def test_a_program_started_and_reconciled_in_chunks_stores_what_one_pass_stores(monkeypatch, tmp_path):
    """``start_program`` walks a province's obligations 20,000 at a time: forced to chunks of 7, the
    pilot started and then reconciled with a unit renamed (one unit leaves, one joins after its
    tasks opened) stores the same obligations, timers and audit events as in one pass."""
    from support import sqlite_engine

    from orchestrator.engine import programs
    from orchestrator.store.models import Obligation

    examples = Path(__file__).resolve().parent.parent / "examples"
    registers = {"normative_documents": examples / "normative_documents.example.csv"}
    units = (examples / "units.example.toml").read_text(encoding="utf-8")
    last = units.rindex('id = "')
    renamed = tmp_path / "renamed.toml"
    renamed.write_text(
        units[:last] + 'id = "renamed-unit-x' + units[last + len('id = "') :], encoding="utf-8"
    )
    plan = BUILTIN_DEFINITIONS / "rule_of_law_pilot.toml"
    before = load_bundle(plan, examples / "units.example.toml", registers)
    after = load_bundle(plan, renamed, registers)

    def stored(chunk: int, folder: Path) -> tuple:
        monkeypatch.setattr(programs, "CHUNK", chunk)
        engine = sqlite_engine(folder)
        reports = []
        for bundle, when in (
            (before, datetime(2026, 5, 1, tzinfo=UTC)),
            (after, datetime(2026, 7, 1, tzinfo=UTC)),
        ):
            with transaction(engine) as session:
                report = programs.start_program(session, bundle, 2026, when)
                reports.append(
                    (report.added, report.moved, report.cancelled, report.unchanged, report.timers)
                )
        with engine.connect() as connection:
            o, t, e = Obligation.__table__, Timer.__table__, Event.__table__
            obligations = connection.execute(
                select(o.c.key, o.c.state, o.c.opens, o.c.due).order_by(o.c.id)
            ).all()
            keys = dict(connection.execute(select(o.c.id, o.c.key)).all())
            timers = sorted(
                (r.key, r.fire_at, r.fired_at, r.outcome, keys.get(r.obligation_id))
                for r in connection.execute(select(t))
            )
            events = sorted(
                (r.kind, r.subject, r.unit, json.dumps(r.after, sort_keys=True))
                for r in connection.execute(select(e))
            )
        return reports, obligations, timers, events

    whole = stored(10**9, tmp_path / "whole")
    chunked = stored(7, tmp_path / "chunked")
    reports = whole[0]
    assert reports[0][0] > 100  # the start: every obligation added
    assert reports[1][0] > 0 and reports[1][2] > 0 and reports[1][3] > 100  # added, cancelled, unchanged
    assert chunked == whole


def test_an_emails_facts_read_compactly_are_the_dicts_the_digest_lists():
    """``Facts`` keeps an escalation's late units as names, not a dict each, each list read alone:
    read back, indexed or compared, it is the list of dicts, each late unit once per message."""
    lists = {
        11: [[1, "agency-1"], [2, "agency-2"]],
        12: [[2, "agency-2"], [3, "agency-3"]],  # the next step of the same escalation
        13: [[3, "agency-3"]],  # nothing new: no fact
        14: [[7, "agency-2"]],  # another task's escalation: its own
    }
    read = []

    def late_of(item_id):
        read.append(item_id)
        return lists[item_id]

    def row(item_id, kind, unit, task="T1"):
        # (message_id, kind, key, phase, task, unit, recipient, occurrence, due, listing, id)
        listing = item_id in lists
        return (
            "m",
            kind,
            "wf/2026/x",
            "implement",
            task,
            unit,
            "office",
            None,
            "2026-06-10",
            listing,
            item_id,
        )

    rows = [row(10, "due_today", "agency-1"), row(11, "escalation", None), row(12, "escalation", None)]
    rows += [row(13, "escalation", None), row(14, "escalation", None, task="T2")]
    names = {}
    facts = simulated.Facts.of(rows, late_of, names)
    base = {"workflow": "wf", "phase": "implement", "task": "T1", "occurrence": None, "due": "2026-06-10"}
    expected = [{**base, "kind": "due_today", "unit": "agency-1"}] + [
        {**base, "kind": "escalation", "unit": u} for u in ("agency-1", "agency-2", "agency-3")
    ]
    expected.append({**base, "kind": "escalation", "task": "T2", "unit": "agency-2"})
    assert read == [11, 12, 13, 14]
    assert len(facts) == 5
    assert list(facts) == expected and facts == expected
    assert [facts[i] for i in range(-5, 5)] == expected + expected
    assert facts[1:3] == expected[1:3]
    assert facts[2]["unit"] is facts[4]["unit"]  # one string per unit id, however many lists name it
    next(iter(facts))["unit"] = "changed"  # a caller's dict is its own
    assert facts[0]["unit"] == "agency-1"


def test_a_memo_keeps_short_values_and_converts_long_ones_each_time(store):
    """A memoized read shares the value of a short raw text and parses a long one (a province's list
    of late units) afresh each time, so a memo's 4,096 values can never hold gigabytes."""
    from orchestrator.store.db import MEMO_LONGEST

    long = [[f"unit-{n:05d}"] for n in range(MEMO_LONGEST)]
    afters = [{"s": "x"}, {"s": "x"}, {"l": long}, {"l": long}]
    with transaction(store) as session:
        insert_events(session, [event_row(at=NOW, actor="t", kind="k", after=a) for a in afters])
    with store.connect() as connection:
        table = Event.__table__
        rows = connection.execute(select(memoized(table.c.after)).order_by(table.c.id)).scalars().all()
    assert rows == afters
    if store.dialect.name == "sqlite":  # (psycopg hands over JSON already parsed: nothing to share)
        assert rows[0] is rows[1] and rows[2] is not rows[3]


def test_a_year_ticked_in_tiny_batches_makes_the_same_emails(monkeypatch):
    """A tick's batch ends once it has written ``BUDGET`` rows or listed that many late units: with a
    budget of 3 (most batches one timer, escalations alone), the pilot's year gives the same emails."""
    from orchestrator.engine import tick as ticking

    examples = Path(__file__).resolve().parent.parent / "examples"
    registers = {"normative_documents": examples / "normative_documents.example.csv"}
    bundle = load_bundle(
        BUILTIN_DEFINITIONS / "rule_of_law_pilot.toml", examples / "units.example.toml", registers
    )
    settings = Settings()
    bundles = {bundle.definition.workflow.id: bundle}

    def year(budget: int) -> list[tuple]:
        monkeypatch.setattr(ticking, "BUDGET", budget)
        emails = simulated.simulate(
            bundle, 2026, policy=send_policy(settings, bundles), renderer=make_renderer(settings)
        )
        return [(e.send_at, e.message_id, e.to_unit, e.subject, list(e.items)) for e in emails]

    whole, tiny = year(10**9), year(3)
    assert sum(1 for e in whole for fact in e[4] if fact["kind"] == "escalation") > 10
    assert tiny == whole
