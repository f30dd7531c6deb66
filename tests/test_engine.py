"""The durable engine: start/reconcile, tick, catch-up, idempotency — on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import textwrap
from datetime import date, timedelta

import pytest
from engine_support import (
    SMALL_PLAN,
    SMALL_UNITS,
    items,
    local,
    obligation,
    pending_timers,
    policy_for,
    sqlite_engine,
    stored_items,
    write_bundle,
)
from sqlmodel import Session, select

from orchestrator.engine.programs import start_program, state_for
from orchestrator.engine.tick import tick
from orchestrator.store.db import transaction
from orchestrator.store.models import Event, NotificationItem, Obligation, PhaseRun, Timer


@pytest.fixture
def bundle(tmp_path):
    return write_bundle(tmp_path / "plan")


def start(engine, bundle, now, year=2026):
    with transaction(engine) as session:
        return start_program(session, bundle, year, now)


def run_days(engine, bundle, first: date, last: date):
    """Tick once a day at 00:01 local from ``first`` to ``last`` (the daemon's midnight ticks)."""
    policy = policy_for(bundle)
    day = first
    while day <= last:
        tick(engine, local(day.year, day.month, day.day, 0, 1), policy)
        day += timedelta(days=1)


@pytest.mark.parametrize(
    ("opens", "due", "today", "state"),
    [
        (date(2026, 6, 1), date(2026, 6, 10), date(2026, 5, 31), "pending"),
        (date(2026, 6, 1), date(2026, 6, 10), date(2026, 6, 1), "open"),
        (date(2026, 6, 1), date(2026, 6, 10), date(2026, 6, 10), "open"),
        (date(2026, 6, 1), date(2026, 6, 10), date(2026, 6, 11), "overdue"),
    ],
)
def test_state_of_an_untouched_obligation(opens, due, today, state):
    assert state_for(opens, due, today) == state


def test_start_materializes_and_is_idempotent(store, bundle):
    first = start(store, bundle, local(2026, 5, 20))
    assert first.created and first.added == 3  # T1 × agency-1, agency-2; T2 × agency-1
    timers = pending_timers(store)
    second = start(store, bundle, local(2026, 5, 21))
    assert not second.created and (second.added, second.moved, second.cancelled) == (0, 0, 0)
    assert pending_timers(store) == timers
    t2 = obligation(store, "T2", "agency-1")
    assert (t2.opens, t2.due) == (date(2026, 9, 17), date(2026, 10, 8))  # 10-01 is National Day


def test_a_year_of_notices_for_one_obligation(store, bundle):
    start(store, bundle, local(2026, 5, 20))
    run_days(store, bundle, date(2026, 5, 20), date(2026, 6, 30))
    got = [(i.kind, i.recipient, i.unit, i.send_at) for i in items(store, task="T1") if i.unit == "agency-1"]
    assert got == [
        ("task_opened", "agency-1", "agency-1", local(2026, 6, 1, 9)),
        ("reminder", "agency-1", "agency-1", local(2026, 6, 3, 9)),
        ("reminder", "agency-1", "agency-1", local(2026, 6, 9, 9)),
        ("due_today", "agency-1", "agency-1", local(2026, 6, 10, 9)),
        ("escalation", "office", "agency-1", local(2026, 6, 11, 9)),
        ("overdue", "agency-1", "agency-1", local(2026, 6, 11, 9)),
        ("escalation", "office", "agency-1", local(2026, 6, 17, 9)),
    ]
    assert obligation(store, "T1", "agency-1").state == "overdue"
    with Session(store) as session:
        phase = session.exec(select(PhaseRun).where(PhaseRun.phase == "implement")).one()
        assert phase.state == "active"
        kinds = [e.kind for e in session.exec(select(Event).where(Event.subject.like("%T1/agency-1%")))]
    assert kinds[:2] == ["obligation.open", "obligation.overdue"]


def test_escalation_goes_to_the_lead_and_is_rolled_over_holidays(store, bundle):
    start(store, bundle, local(2026, 9, 1))
    run_days(store, bundle, date(2026, 9, 1), date(2026, 10, 20))
    got = [
        (i.kind, i.recipient, i.send_at.astimezone(local(2026, 1, 1).tzinfo)) for i in items(store, task="T2")
    ]
    sends = {(k, r): at for k, r, at in got}
    assert sends[("task_opened", "agency-1")] == local(2026, 9, 17, 9)
    assert sends[("reminder", "agency-1")] == local(2026, 9, 30, 9)  # -7d and -1wd both land on 09-30
    assert sends[("due_today", "agency-1")] == local(2026, 10, 8, 9)
    assert sends[("escalation", "lead-a")] == local(2026, 10, 9, 9)
    assert sends[("escalation", "office")] == local(2026, 10, 14, 9)  # 10-10 is a make-up Saturday
    assert len(got) == 6


def test_tick_twice_changes_nothing_the_second_time(store, bundle):
    start(store, bundle, local(2026, 5, 20))
    policy = policy_for(bundle)
    first = tick(store, local(2026, 6, 12, 0, 1), policy)
    before = len(items(store))
    second = tick(store, local(2026, 6, 12, 0, 1), policy)
    assert first.fired > 0 and before > 0
    assert (second.fired, second.skipped, second.items) == (0, 0, 0)
    assert len(items(store)) == before


def test_done_obligation_gets_nothing_more(store, bundle):
    start(store, bundle, local(2026, 5, 20))
    run_days(store, bundle, date(2026, 5, 20), date(2026, 6, 5))
    with transaction(store) as session:
        row = session.exec(
            select(Obligation).where(Obligation.task == "T1", Obligation.unit == "agency-1")
        ).one()
        row.state = "done"
    run_days(store, bundle, date(2026, 6, 6), date(2026, 6, 30))
    after = [i.kind for i in items(store, task="T1") if i.unit == "agency-1"]
    assert after == ["task_opened", "reminder"]  # nothing after it was done
    other = [i.kind for i in items(store, task="T1") if i.unit == "agency-2"]
    assert "overdue" in other and "escalation" in other
    # T1's timers are one per notice for both units: they fired for agency-2, and its escalation
    # steps name agency-2 only
    with Session(store) as session:
        later = session.exec(select(Timer).where(Timer.task == "T1", Timer.on > date(2026, 6, 5))).all()
    assert later and {t.outcome for t in later} == {"fired"}
    escalations = stored_items(store, task="T1", kind="escalation")
    assert escalations and all(unit == "agency-2" for i in escalations for _, unit in i.late)


def test_an_escalation_with_nobody_late_is_skipped(store, bundle):
    start(store, bundle, local(2026, 5, 20))
    run_days(store, bundle, date(2026, 5, 20), date(2026, 6, 5))
    with transaction(store) as session:
        for row in session.exec(select(Obligation).where(Obligation.task == "T1")):
            row.state = "done"
    run_days(store, bundle, date(2026, 6, 6), date(2026, 6, 30))
    assert stored_items(store, task="T1", kind="escalation") == []
    with Session(store) as session:
        steps = session.exec(select(Timer).where(Timer.kind == "escalation", Timer.task == "T1")).all()
    assert steps and {t.outcome for t in steps} == {"skipped"}
    assert all(t.obligation_id is None for t in steps)


def test_thirty_day_outage_sends_only_what_is_still_true(store, bundle):
    start(store, bundle, local(2026, 5, 31))
    report = tick(store, local(2026, 6, 30, 10), policy_for(bundle))  # down from 05-31 to 06-30 10:00
    got = sorted((i.kind, i.recipient, i.unit) for i in items(store, task="T1"))
    assert got == sorted(
        [
            ("overdue", "agency-1", "agency-1"),
            ("overdue", "agency-2", "agency-2"),
            ("escalation", "office", "agency-1"),
            ("escalation", "office", "agency-1"),
            ("escalation", "office", "agency-2"),
            ("escalation", "office", "agency-2"),
        ]
    )
    assert report.skipped == 4  # T1's task_opened, 2 reminders and due_today (each for both units)
    sends = {i.send_at for i in items(store)}
    assert sends == {local(2026, 6, 30, 10)}  # inside today's window: sent now, not a day late
    with Session(store) as session:
        skipped = session.exec(select(Event).where(Event.kind == "notice.skipped")).all()
    assert len(skipped) == 4 and all("补处理时" in e.detail for e in skipped)
    phase_items = items(store, kind="phase_started")
    assert {i.recipient for i in phase_items} == {"agency-1", "agency-2", "office"}


def test_reconcile_adds_moves_and_cancels_with_audit(store, bundle, tmp_path):
    start(store, bundle, local(2026, 5, 20))
    changed = SMALL_PLAN.replace('due = "06-10"', 'due = "06-12"').replace(
        '[[tasks]]\nid = "T2"', '[[tasks]]\nid = "T3"'
    )
    new_bundle = write_bundle(tmp_path / "plan2", textwrap.dedent(changed))
    report = start(store, new_bundle, local(2026, 5, 21))
    assert (report.added, report.moved, report.cancelled) == (1, 2, 1)
    assert obligation(store, "T1", "agency-1").due == date(2026, 6, 12)
    assert obligation(store, "T2", "agency-1").state == "cancelled"
    with Session(store) as session:
        kinds = sorted(e.kind for e in session.exec(select(Event).where(Event.kind.like("obligation.%"))))
        due_timers = session.exec(
            select(Timer).where(Timer.task == "T1", Timer.kind == "due_today", Timer.fired_at.is_(None))
        ).all()
    assert kinds == ["obligation.added", "obligation.cancelled", "obligation.moved", "obligation.moved"]
    assert [t.on for t in due_timers] == [date(2026, 6, 12)]
    again = start(store, new_bundle, local(2026, 5, 22))
    assert (again.added, again.moved, again.cancelled) == (0, 0, 0)


def _tick_in_process(url: str, folder: str, when: str, barrier) -> int:
    from datetime import datetime

    from engine_support import policy_for, write_bundle

    from orchestrator.store.db import make_engine

    bundle = write_bundle(__import__("pathlib").Path(folder))
    engine = make_engine(url)
    barrier.wait()
    return tick(engine, datetime.fromisoformat(when), policy_for(bundle), batch=1).fired


def test_two_processes_ticking_one_sqlite_file_never_duplicate(tmp_path):
    engine = sqlite_engine(tmp_path)
    bundle = write_bundle(tmp_path / "plan")
    start(engine, bundle, local(2026, 5, 20))
    url = engine.url.render_as_string()
    when = local(2026, 10, 20).isoformat()
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(2)
    with context.Pool(2) as pool:
        fired = pool.starmap(_tick_in_process, [(url, str(tmp_path / "plan"), when, barrier)] * 2)
    with Session(engine) as session:
        timers = session.exec(select(Timer)).all()
        keys = session.exec(select(NotificationItem.key)).all()
    assert all(t.fired_at is not None for t in timers)
    assert len(keys) == len(set(keys))
    assert sum(fired) + sum(1 for t in timers if t.outcome == "skipped") == len(timers)


MONTHLY = """\
[workflow]
id = "monthly"
title = "每月报送"
reminders = ["-1wd"]

[[tasks]]
id = "M1"
title = "月度报表"
responsible = ["agency-1"]
rrule = "FREQ=MONTHLY;BYMONTHDAY=25"
window = "-10d"
"""


def test_recurring_duties_materialize_on_a_rolling_horizon(store, tmp_path):
    from orchestrator.engine.programs import needs_extension
    from orchestrator.store.models import Program

    bundle = write_bundle(tmp_path / "monthly", MONTHLY)
    with transaction(store) as session:
        report = start_program(session, bundle, 2026, local(2026, 1, 5), horizon_days=60)
    assert report.added == 2  # January and February open within 60 days of 01-05
    with Session(store) as session:
        program = session.exec(select(Program)).one()
    assert not needs_extension(program, date(2026, 1, 5), 60)
    assert needs_extension(program, date(2026, 2, 1), 60)
    with transaction(store) as session:
        later = start_program(session, bundle, 2026, local(2026, 3, 1), horizon_days=60)
    assert later.added == 2 and later.cancelled == 0  # March and April; nothing dropped
    with Session(store) as session:
        dues = sorted(o.due for o in session.exec(select(Obligation)))
    assert dues == [date(2026, 1, 26), date(2026, 2, 25), date(2026, 3, 25), date(2026, 4, 27)]


def test_tick_reports_the_items_it_wrote(store, bundle):
    start(store, bundle, local(2026, 5, 20))
    report = tick(store, local(2026, 6, 1, 0, 1), policy_for(bundle))
    assert report.items == len(stored_items(store)) > 0


def test_catch_up_sends_only_the_latest_phase_notice(store, tmp_path):
    two_phases = SMALL_PLAN.replace(
        '[[tasks]]\nid = "T1"',
        '[[phases]]\nid = "evaluate"\nname = "考核评比阶段"\nstart = "07-01"\nend = "07-31"\n\n'
        '[[tasks]]\nid = "T9"\ntitle = "考评"\nphase = "evaluate"\nresponsible = ["agency-2"]\n\n'
        '[[tasks]]\nid = "T1"',
    )
    bundle = write_bundle(tmp_path / "two", two_phases)
    start(store, bundle, local(2026, 5, 20))
    tick(store, local(2026, 7, 3, 10), policy_for(bundle))  # down from 05-20 to 07-03
    phase_items = {(i.kind, i.phase) for i in items(store) if i.kind.startswith("phase_")}
    # implement's start (06-01) is stale; its close and evaluate's start both happened on 07-01
    assert phase_items == {("phase_closed", "implement"), ("phase_started", "evaluate")}
    with Session(store) as session:
        runs = {r.phase: r.state for r in session.exec(select(PhaseRun))}
    assert runs == {"implement": "closed", "evaluate": "active"}  # the states still advanced


def test_a_program_started_late_has_true_states_before_the_first_tick(store, bundle):
    start(store, bundle, local(2026, 6, 20))  # T1 (06-01 → 06-10) is already late, T2 not open yet
    assert obligation(store, "T1", "agency-1").state == "overdue"
    assert obligation(store, "T2", "agency-1").state == "pending"


def test_a_unit_that_joins_after_its_task_opened_is_told_at_once_and_once(store, bundle, tmp_path):
    """A unit added to the units file on 06-05 owes T1 (opened 06-01, due 06-10): the next tick tells
    it the task is open — its own opening notice, since the task's was sent before it joined — and a
    second reconcile neither drops nor repeats it."""
    start(store, bundle, local(2026, 5, 20))
    run_days(store, bundle, date(2026, 5, 20), date(2026, 6, 4))
    agency_3 = (
        '[[units]]\nid = "agency-3"\nname = "执法局三"\nemails = ["a3@example.gov.cn"]\nroles = ["agency"]\n'
    )
    joined = write_bundle(tmp_path / "joined", SMALL_PLAN, SMALL_UNITS + "\n" + agency_3)
    assert start(store, joined, local(2026, 6, 4, 20)).added == 1
    assert start(store, joined, local(2026, 6, 4, 20, 30)).added == 0  # a second reload: nothing lost
    run_days(store, joined, date(2026, 6, 5), date(2026, 6, 12))
    got = sorted((i.send_at, i.kind) for i in items(store, task="T1") if i.unit == "agency-3")
    assert got == [
        (local(2026, 6, 5, 9), "task_opened"),  # the next morning, once
        (local(2026, 6, 9, 9), "reminder"),  # (the 06-03 reminder was before it joined)
        (local(2026, 6, 10, 9), "due_today"),
        (local(2026, 6, 11, 9), "escalation"),
        (local(2026, 6, 11, 9), "overdue"),
    ]
