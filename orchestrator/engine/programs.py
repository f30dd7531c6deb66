"""Starting a program: materialize its phases, obligations and timers; reconcile on change.

Idempotent: starting the same plan twice changes nothing. When a definition, units file or
register changes, the next start (or reload) adds new obligations, moves changed dates, and
cancels obligations that left the plan — each change recorded in the audit log, nothing
duplicated, nothing silently dropped.

The timers it arms are built in ``engine.timers`` (``TimerSync``, the timer rows); their names are
importable from here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, select

from notifications.labels import EVENT_DETAILS as WORDS
from orchestrator.engine.timers import (
    PHASE_NOTICE,
    PHASE_TIMER,
    PROGRAM_PHASE,
    TimerSync,
    group_timers,
    insert_ignoring_duplicates,
    joiner_timer,
    office_units,
    program_timers,
    timer_row,
)
from orchestrator.engine.window import local_day, local_midnight
from orchestrator.store.audit import DAEMON, record
from orchestrator.store.db import IN_LIMIT, bulk_insert, gc_paused
from orchestrator.store.models import Obligation, PhaseRun, Program
from orchestrator.store.states import OPEN_STATES, OWED_STATES, ObligationState, PhaseState, TimerKind
from workflows.catalog import Bundle
from workflows.plan import Occurrence, iter_plan, phase_dates
from workflows.schedule import phase_notices

CHUNK = 20_000  # obligations built and inserted at a time (memory stays flat at province scale)

_timer_row = timer_row  # engine.extensions imports it by this name

__all__ = [
    "PHASE_NOTICE",
    "PHASE_TIMER",
    "PROGRAM_PHASE",
    "StartReport",
    "TimerSync",
    "insert_ignoring_duplicates",
    "needs_extension",
    "notify_day",
    "obligation_key",
    "office_units",
    "start_program",
    "state_for",
]


@dataclass
class StartReport:
    program_id: int
    created: bool = False
    added: int = 0
    moved: int = 0
    cancelled: int = 0
    unchanged: int = 0
    timers: int = 0
    changes: list[str] = field(default_factory=list)


def obligation_key(workflow: str, year: int, occ: Occurrence) -> str:
    return f"{workflow}/{year}/{occ.task}/{occ.unit}/{occ.occurrence or '-'}"


def state_for(opens: date, due: date, today: date) -> str:
    """The state an untouched obligation has on ``today``."""
    if today < opens:
        return ObligationState.PENDING
    return ObligationState.OPEN if today <= due else ObligationState.OVERDUE


def notify_day(program: Program) -> date:
    """The first local day whose notices are sent: dates before it are history (see ``notify_from``;
    a program started before revision 0004 has none: ``date.min``)."""
    if program.notify_from is None:
        return date.min
    return local_day(program.notify_from, ZoneInfo(program.timezone))


def _program(
    session: Session,
    bundle: Bundle,
    year: int,
    now: datetime,
    actor: str,
    report: StartReport,
    notify_from: date | None,
):
    wf = bundle.definition.workflow
    tz = ZoneInfo(wf.timezone)
    wanted_from = local_midnight(notify_from, tz) if notify_from is not None else None
    program = session.exec(select(Program).where(Program.workflow == wf.id, Program.year == year)).first()
    if program is None:
        program = Program(
            workflow=wf.id,
            year=year,
            title=wf.title,
            timezone=wf.timezone,
            definition_path=bundle.loaded.path,
            definition_digest=bundle.loaded.digest,
            units_digest=bundle.units.digest,
            started_at=now,
            reconciled_at=now,
            materialized_until=date(year, 1, 1),
            notify_from=wanted_from or now,
        )
        session.add(program)
        session.flush()
        report.created = True
        record(
            session,
            at=now,
            actor=actor,
            kind="program.started",
            program_id=program.id,
            subject=f"{wf.id} {year}",
            after={
                "workflow": wf.id,
                "year": year,
                "title": wf.title,
                "notify_from": program.notify_from.isoformat(),
            },
        )
    else:
        if wanted_from is not None and wanted_from != program.notify_from:
            before = program.notify_from.isoformat() if program.notify_from else None
            program.notify_from = wanted_from
            record(
                session,
                at=now,
                actor=actor,
                kind="program.notify_from",
                program_id=program.id,
                subject=f"{wf.id} {year}",
                before={"notify_from": before},
                after={"notify_from": wanted_from.isoformat()},
                detail=WORDS["notify_from_moved"],
            )
        program.title, program.timezone = wf.title, wf.timezone
        program.definition_path = bundle.loaded.path
        program.definition_digest, program.units_digest = bundle.loaded.digest, bundle.units.digest
        program.reconciled_at = now
    return program


def _phase_runs(session, bundle, program, now, actor, timers: TimerSync) -> None:
    tz = ZoneInfo(program.timezone)
    today = local_day(now, tz)
    runs = {r.phase: r for r in session.exec(select(PhaseRun).where(PhaseRun.program_id == program.id))}
    wf = bundle.definition.workflow
    for phase in bundle.definition.phases:
        dates = phase_dates(phase, program.year)
        run = runs.pop(phase.id, None)
        if run is None:
            run = PhaseRun(
                program_id=program.id, phase=phase.id, name=phase.name, start=dates.start, end=dates.end
            )
            session.add(run)
        elif (run.start, run.end, run.name) != (dates.start, dates.end, dates.name):
            before = {"start": str(run.start), "end": str(run.end)}
            run.start, run.end, run.name = dates.start, dates.end, dates.name
            record(
                session,
                at=now,
                actor=actor,
                kind="phase.moved",
                program_id=program.id,
                subject=phase.id,
                before=before,
                after={"start": str(run.start), "end": str(run.end)},
            )
            if run.state != PhaseState.CLOSED or today <= run.end:
                run.state = (
                    PhaseState.PENDING
                    if today < run.start
                    else (PhaseState.ACTIVE if today <= run.end else run.state)
                )
        wanted = {}
        for notice in phase_notices(dates, wf, bundle.calendar):
            kind = PHASE_TIMER.get(notice.kind, notice.kind)
            key = f"{program.workflow}/{program.year}/phase/{phase.id}/{kind}/{notice.on}"
            wanted[key] = timer_row(key, kind, program, notice.on, tz, phase=phase.id)
        timers.sync(("phase", phase.id), wanted)
    for run in runs.values():  # a phase that left the definition
        if run.state != PhaseState.CANCELLED:
            record(
                session,
                at=now,
                actor=actor,
                kind="phase.cancelled",
                program_id=program.id,
                subject=run.phase,
                before={"state": run.state},
                after={"state": PhaseState.CANCELLED},
            )
            run.state = PhaseState.CANCELLED
            timers.sync(("phase", run.phase), {})


@gc_paused()
def start_program(
    session: Session,
    bundle: Bundle,
    year: int,
    now: datetime,
    *,
    horizon_days: int = 400,
    actor: str = DAEMON,
    notify_from: date | None = None,
) -> StartReport:
    """Materialize (or reconcile) the program of ``bundle`` for ``year`` as of ``now``.

    ``notify_from``: the first local day whose notices units get (default: ``now``, when the program
    is first started; given for a program already started, it moves). Obligations whose dates lie
    before it are created in their true state but no unit is told of them; the office gets one
    summary (the ``before_start`` timer, at that instant).
    """
    report = StartReport(program_id=0)
    program = _program(session, bundle, year, now, actor, report, notify_from)
    report.program_id = program.id
    tz = ZoneInfo(program.timezone)
    today = local_day(now, tz)
    horizon = today + timedelta(days=horizon_days)
    timers = TimerSync(session, program, now)
    _phase_runs(session, bundle, program, now, actor, timers)
    program_timers(bundle, program, timers)
    occurrences = iter_plan(
        bundle.definition, bundle.units.directory, year, bundle.calendar, bundle.registers
    )
    fresh = report.created  # nothing of it stored yet: no obligation to look up, move or cancel
    stored = 0 if fresh else _count(session, program)
    wanted_keys: set[str] = set()  # to cancel what left the plan (kept only when something is stored)
    groups: dict[tuple, dict[str, dict]] = {}
    while True:  # a province's 1.67M obligations, made and stored 20,000 at a time
        chunk = {obligation_key(program.workflow, year, o): o for o in islice(occurrences, CHUNK)}
        if not chunk:
            break
        existing = {} if fresh else _stored(session, list(chunk))
        if not fresh:
            wanted_keys.update(chunk)
        new = _add_obligations(session, program, chunk, existing, horizon, now, today)
        report.added += len(new)
        for key, occ in chunk.items():
            obligation = existing.get(key)
            oid = obligation.id if obligation is not None else new.get(key)
            if oid is None:
                continue  # beyond the horizon: materialized when the horizon reaches it
            # a late joiner's own opening notice; an extended obligation's own timers (engine.extensions)
            own = timers.unfired(
                oid, None if getattr(obligation, "extended_to", None) else TimerKind.TASK_OPENED
            )
            if obligation is None:  # new
                if not fresh:
                    _audit_added(session, program, oid, key, occ, now, actor)
                    if occ.opens <= today:  # its task occurrence opened before it joined: tell it now
                        own = joiner_timer(program, oid, key, occ)
            else:
                report.moved += _update_obligation(session, obligation, occ, today, now, actor)
            timers.sync(oid, own)
            group_timers(bundle, program, occ, groups)
    if stored:
        for obligation in _left_the_plan(session, program, wanted_keys):
            _cancel(session, program, obligation, now, actor)
            timers.sync(obligation.id, {})
            report.cancelled += 1
    timers.sync_groups(groups)
    report.timers = timers.flush()
    program.materialized_until = horizon
    report.unchanged = stored - report.moved - report.cancelled
    return report


def _count(session, program) -> int:
    table = Obligation.__table__
    query = select(func.count()).select_from(table).where(table.c.program_id == program.id)
    return session.connection().execute(query).scalar_one()


def _stored(session, keys: list[str]) -> dict[str, Obligation]:
    """The stored obligations of ``keys`` (by the unique key alone: with the program's id in the
    query too, SQLite walked the program's index for each list of keys)."""
    found: dict[str, Obligation] = {}
    for start in range(0, len(keys), IN_LIMIT):
        query = select(Obligation).where(Obligation.key.in_(keys[start : start + IN_LIMIT]))
        found.update((o.key, o) for o in session.exec(query))
    return found


def _left_the_plan(session, program, wanted_keys: set[str]) -> list[Obligation]:
    """The program's owed obligations that the plan no longer has (read as keys, then loaded)."""
    table = Obligation.__table__
    query = select(table.c.id, table.c.key).where(
        table.c.program_id == program.id, table.c.state.in_(list(OWED_STATES))
    )
    gone = [oid for oid, key in session.connection().execute(query) if key not in wanted_keys]
    found: list[Obligation] = []
    for start in range(0, len(gone), IN_LIMIT):
        batch = gone[start : start + IN_LIMIT]
        found.extend(session.exec(select(Obligation).where(Obligation.id.in_(batch)).order_by(Obligation.id)))
    return found


def _add_obligations(
    session, program, chunk: dict[str, Occurrence], existing, horizon: date, now: datetime, today: date
) -> dict[str, int]:
    """Insert the obligations of ``chunk`` that are new and within the horizon (one executemany).

    Returns their ids by key, read back as the rows above the largest id before the insert: building
    ORM objects (or reading back whole rows) for 100k obligations costs more than the inserts
    themselves, and holding a province's obligations at once was the peak of its memory.
    """
    keys = [key for key, occ in chunk.items() if key not in existing and occ.opens <= horizon]
    if not keys:
        return {}
    table = Obligation.__table__
    connection = session.connection()
    latest = select(func.max(table.c.id))
    before = connection.execute(latest).scalar_one() or 0
    bulk_insert(connection, table, [_obligation_row(program, key, chunk[key], now, today) for key in keys])
    after = connection.execute(latest).scalar_one()
    added = set(keys)
    # by a range of the primary key alone (SQLite would otherwise take the program's index and walk
    # it whole; PostgreSQL, with no statistics yet, scanned the whole table for ``id > before``);
    # rows another program inserted meanwhile are left out by their keys
    query = select(table.c.key, table.c.id).where(table.c.id > before, table.c.id <= after)
    return {key: oid for key, oid in connection.execute(query) if key in added}


def _obligation_row(program, key: str, occ: Occurrence, now: datetime, today: date) -> dict:
    return {
        "key": key,
        "program_id": program.id,
        "task": occ.task,
        "title": occ.title,
        "phase": occ.phase,
        "unit": occ.unit,
        "lead": list(occ.lead),
        "occurrence": occ.occurrence,
        "opens": occ.opens,
        "due": occ.due,
        "state": state_for(occ.opens, occ.due, today),  # started late: born open or overdue
        "updated_at": now,
    }


def _audit_added(session, program, oid: int, key: str, occ: Occurrence, now: datetime, actor: str) -> None:
    record(
        session,
        at=now,
        actor=actor,
        kind="obligation.added",
        program_id=program.id,
        obligation_id=oid,
        unit=occ.unit,
        subject=key,
        after={"opens": str(occ.opens), "due": str(occ.due)},
    )


def _cancel(session, program, obligation: Obligation, now: datetime, actor: str) -> None:
    record(
        session,
        at=now,
        actor=actor,
        kind="obligation.cancelled",
        program_id=program.id,
        obligation_id=obligation.id,
        unit=obligation.unit,
        subject=obligation.key,
        before={"state": obligation.state},
        after={"state": ObligationState.CANCELLED},
        detail=WORDS["left_plan"],
    )
    obligation.state, obligation.updated_at = ObligationState.CANCELLED, now


def _update_obligation(
    session, obligation: Obligation, occ: Occurrence, today: date, now: datetime, actor
) -> int:
    fields = {
        "opens": occ.opens,
        "due": max(occ.due, obligation.extended_to or occ.due),  # an approved extension stays
        "title": occ.title,
        "phase": occ.phase,
        "lead": list(occ.lead),
    }
    before = {k: getattr(obligation, k) for k in fields}
    revive = obligation.state == ObligationState.CANCELLED
    if before == fields and not revive:
        return 0
    for name, value in fields.items():
        setattr(obligation, name, value)
    after_state = obligation.state
    if obligation.state in OPEN_STATES or revive:
        after_state = state_for(occ.opens, occ.due, today)
    changed = {k: (str(before[k]), str(v)) for k, v in fields.items() if before[k] != v}
    record(
        session,
        at=now,
        actor=actor,
        kind="obligation.moved" if not revive else "obligation.restored",
        program_id=obligation.program_id,
        obligation_id=obligation.id,
        unit=obligation.unit,
        subject=obligation.key,
        before={k: a for k, (a, _) in changed.items()} | {"state": obligation.state},
        after={k: b for k, (_, b) in changed.items()} | {"state": after_state},
    )
    obligation.state, obligation.updated_at = after_state, now
    return 1


def needs_extension(program: Program, today: date, horizon_days: int) -> bool:
    """True when the rolling horizon has moved past what was materialized (and the year still has dates)."""
    return program.materialized_until < min(
        today + timedelta(days=horizon_days), date(program.year + 1, 12, 31)
    )
