"""``tick(now)``: apply every due timer, in order, in one transaction.

Each timer either changes a state (phase start/end, obligation open/overdue) and writes
notification items, or is recorded as skipped when its notice is no longer true (catch-up after
downtime: the task is already due, done or waived, or a later reminder supersedes it). Timers are
marked fired in the same transaction, and items have unique keys, so running a tick twice — or in
two processes against one database — never duplicates anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from orchestrator.audit import DAEMON, record
from orchestrator.db import transaction
from orchestrator.models import NotificationItem, Obligation, PhaseRun, Program, Timer
from orchestrator.window import local_day, send_slot
from workflows.calendar import WorkdayCalendar

REMINDER_KINDS = ("task_opened", "reminder", "due_today")


@dataclass
class TickReport:
    fired: int = 0
    skipped: int = 0
    items: int = 0
    transitions: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SendPolicy:
    """Where items go into send windows: the working-day calendar of each program and the window."""

    window: tuple[time, time]
    calendars: dict[str, WorkdayCalendar]
    default: WorkdayCalendar

    def calendar(self, workflow: str) -> WorkdayCalendar:
        return self.calendars.get(workflow, self.default)


def next_fire_at(engine: Engine) -> datetime | None:
    """When the earliest unfired timer is due (for the daemon's DateTrigger)."""
    with Session(engine) as session:
        return session.exec(select(func.min(Timer.fire_at)).where(Timer.fired_at.is_(None))).one()


def tick(
    engine: Engine, now: datetime, policy: SendPolicy, *, actor: str = DAEMON, batch: int = 5000
) -> TickReport:
    """Apply all timers with ``fire_at <= now``; returns what was done. Commits in batches of ``batch`` timers."""
    report = TickReport()
    while True:
        with transaction(engine) as session:
            query = (
                select(Timer)
                .where(Timer.fired_at.is_(None), Timer.fire_at <= now)
                .order_by(Timer.fire_at, Timer.id)
                .limit(batch)
            )
            if engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            timers = list(session.exec(query))
            if not timers:
                return report
            _apply_batch(session, timers, now, policy, actor, report)
        if len(timers) < batch:
            return report


class _Batch:
    """Caches of one batch: programs, obligations, and which reminders are superseded."""

    def __init__(self, session: Session, timers: list[Timer], now: datetime):
        self.session = session
        program_ids = {t.program_id for t in timers}
        self.programs = {p.id: p for p in session.exec(select(Program).where(Program.id.in_(program_ids)))}
        obligation_ids = {t.obligation_id for t in timers if t.obligation_id is not None}
        self.obligations: dict[int, Obligation] = {}
        for chunk in _chunks(sorted(obligation_ids), 900):
            self.obligations.update(
                {o.id: o for o in session.exec(select(Obligation).where(Obligation.id.in_(chunk)))}
            )
        self.latest_notice: dict[int, datetime] = {}
        for chunk in _chunks(sorted(obligation_ids), 900):
            rows = session.execute(
                select(Timer.obligation_id, func.max(Timer.fire_at))
                .where(
                    Timer.obligation_id.in_(chunk),
                    Timer.fired_at.is_(None),
                    Timer.fire_at <= now,
                    Timer.kind.in_(REMINDER_KINDS),
                )
                .group_by(Timer.obligation_id)
            ).all()
            self.latest_notice.update({oid: at for oid, at in rows})
        self.items: list[dict] = []

    def tz(self, program_id: int) -> ZoneInfo:
        return ZoneInfo(self.programs[program_id].timezone)


def _chunks(values: list, size: int):
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _apply_batch(session: Session, timers, now, policy: SendPolicy, actor: str, report: TickReport) -> None:
    batch = _Batch(session, timers, now)
    claimed = []
    for timer in timers:
        outcome = _apply(batch, timer, now, policy, actor, report)
        claimed.append((timer.id, outcome))
        report.kinds[timer.kind] = report.kinds.get(timer.kind, 0) + 1
        if outcome == "skipped":
            report.skipped += 1
        else:
            report.fired += 1
    for outcome in ("fired", "skipped"):
        ids = [i for i, o in claimed if o == outcome]
        for chunk in _chunks(ids, 900):
            session.execute(
                update(Timer)
                .where(Timer.id.in_(chunk), Timer.fired_at.is_(None))
                .values(fired_at=now, outcome=outcome)
                .execution_options(synchronize_session=False)
            )
    _insert_items(session, batch.items)
    report.items += len(batch.items)


def _insert_items(session: Session, rows: list[dict]) -> None:
    """Insert items, ignoring keys that exist already (a second tick or a second process)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for chunk in _chunks(rows, 500):
        session.execute(insert(NotificationItem).values(chunk).on_conflict_do_nothing(index_elements=["key"]))


def _add_item(
    batch: _Batch,
    timer: Timer,
    kind: str,
    recipient: str,
    now: datetime,
    policy: SendPolicy,
    *,
    obligation: Obligation | None = None,
    phase: str | None = None,
) -> None:
    program = batch.programs[timer.program_id]
    tz = batch.tz(timer.program_id)
    slot = send_slot(max(timer.fire_at, now), tz, policy.window, policy.calendar(program.workflow))
    batch.items.append(
        {
            "key": f"{timer.key}/{recipient}",
            "kind": kind,
            "recipient": recipient,
            "program_id": timer.program_id,
            "obligation_id": obligation.id if obligation else None,
            "phase": obligation.phase if obligation else phase,
            "task": obligation.task if obligation else None,
            "unit": obligation.unit if obligation else None,
            "occurrence": obligation.occurrence if obligation else None,
            "due": obligation.due if obligation else None,
            "on": timer.on,
            "send_at": slot,
            "state": "pending",
            "created_at": now,
        }
    )


def _transition(batch: _Batch, obligation: Obligation, state: str, now: datetime, actor: str, report) -> None:
    before = obligation.state
    obligation.state, obligation.updated_at = state, now
    record(
        batch.session,
        at=now,
        actor=actor,
        kind=f"obligation.{state}",
        program_id=obligation.program_id,
        obligation_id=obligation.id,
        unit=obligation.unit,
        subject=obligation.key,
        before={"state": before},
        after={"state": state},
    )
    report.transitions += 1


def _skip(batch: _Batch, timer: Timer, now: datetime, actor: str, why: str, obligation=None) -> str:
    record(
        batch.session,
        at=now,
        actor=actor,
        kind="notice.skipped",
        program_id=timer.program_id,
        obligation_id=obligation.id if obligation else None,
        unit=obligation.unit if obligation else None,
        subject=timer.key,
        detail=why,
    )
    return "skipped"


def _apply(batch: _Batch, timer: Timer, now: datetime, policy, actor: str, report: TickReport) -> str:
    if timer.obligation_id is None:
        return _apply_program_timer(batch, timer, now, policy, actor, report)
    obligation = batch.obligations[timer.obligation_id]
    today = local_day(now, batch.tz(timer.program_id))
    state = obligation.state
    if state in ("done", "waived", "cancelled"):
        return "skipped"  # nothing more for a finished obligation (its state change is already in the log)
    if timer.kind == "task_opened" and state == "pending":
        _transition(batch, obligation, "open", now, actor, report)
    if timer.kind == "overdue" and state in ("pending", "open"):
        _transition(batch, obligation, "overdue", now, actor, report)
    stale = _stale(batch, timer, obligation, today)
    if stale:
        return _skip(batch, timer, now, actor, stale, obligation)
    for recipient in timer.recipients or [obligation.unit]:
        _add_item(batch, timer, timer.kind, recipient, now, policy, obligation=obligation)
    return "fired"


def _stale(batch: _Batch, timer: Timer, obligation: Obligation, today: date) -> str | None:
    """Why a notice is no longer true on ``today`` (catch-up), or None."""
    if timer.kind in ("task_opened", "reminder") and today >= obligation.due:
        return f"caught up on {today}: the obligation is already due ({obligation.due})"
    if timer.kind == "due_today" and today > obligation.due:
        return f"caught up on {today}: the due date {obligation.due} has passed"
    if timer.kind in ("task_opened", "reminder"):
        latest = batch.latest_notice.get(obligation.id)
        if latest is not None and latest > timer.fire_at:
            return "superseded by a later reminder due at the same tick"
    return None


def _apply_program_timer(batch: _Batch, timer: Timer, now, policy, actor, report) -> str:
    session = batch.session
    program = batch.programs[timer.program_id]
    today = local_day(now, batch.tz(timer.program_id))
    if timer.kind == "scorecard":
        for recipient in timer.recipients:
            _add_item(batch, timer, "scorecard", recipient, now, policy, phase=None)
        return "fired"
    run = session.exec(
        select(PhaseRun).where(PhaseRun.program_id == program.id, PhaseRun.phase == timer.phase)
    ).first()
    if run is None or run.state == "cancelled":
        return "skipped"
    if timer.kind == "phase_start" and run.state == "pending":
        _phase_state(batch, run, "active", now, actor, report)
    if timer.kind == "phase_end" and run.state != "closed":
        _phase_state(batch, run, "closed", now, actor, report)
    if timer.kind in ("phase_start", "phase_ending") and today > run.end:
        return _skip(
            batch, timer, now, actor, f"caught up on {today}: phase {run.phase} already ended {run.end}"
        )
    kind = {"phase_start": "phase_started", "phase_end": "phase_closed"}.get(timer.kind, timer.kind)
    for recipient in _phase_audience(session, program.id, run.phase):
        _add_item(batch, timer, kind, recipient, now, policy, phase=run.phase)
    return "fired"


def _phase_state(batch: _Batch, run: PhaseRun, state: str, now, actor, report) -> None:
    record(
        batch.session,
        at=now,
        actor=actor,
        kind=f"phase.{state}",
        program_id=run.program_id,
        subject=run.phase,
        before={"state": run.state},
        after={"state": state},
    )
    run.state = state
    report.transitions += 1


def _phase_audience(session: Session, program_id: int, phase: str) -> list[str]:
    """Units that owe something in the phase, and the lead units of those tasks."""
    rows = session.exec(
        select(Obligation.unit, Obligation.lead).where(
            Obligation.program_id == program_id, Obligation.phase == phase, Obligation.state != "cancelled"
        )
    )
    seen: dict[str, None] = {}
    for unit, lead in rows:
        seen.setdefault(unit, None)
        for lead_unit in lead or ():
            seen.setdefault(lead_unit, None)
    return sorted(seen)
