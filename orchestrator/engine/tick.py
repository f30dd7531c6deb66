"""``tick(now)``: apply every due timer, in order, in one transaction.

Each timer either changes a state (phase start/end, obligation open/overdue) and writes
notification items, or is recorded as skipped when its notice is no longer true (catch-up after
downtime: the task is already due, done or waived, or a later reminder supersedes it). Timers are
marked fired in the same transaction, and items have unique keys, so running a tick twice — or in
two processes against one database — never duplicates anything.

The batch decides each timer and writes in bulk; the items and events it writes for a notice, and
the escalation, phase and program timers, are in ``engine.tick_notices``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from notifications.labels import EVENT_DETAILS as WORDS
from orchestrator.engine.programs import insert_ignoring_duplicates, notify_day
from orchestrator.engine.tick_notices import OBLIGATION, TIMER, BatchNotices, task_occurrence_of
from orchestrator.engine.window import SendPolicy, local_day
from orchestrator.store.audit import DAEMON, event_row, insert_events
from orchestrator.store.db import bind_value, chunks, gc_paused, memoized, set_per_id, transaction
from orchestrator.store.models import NotificationItem, Program, Timer
from orchestrator.store.states import (
    PHASE_TIMER_KINDS,
    QUIET_STATES,
    REMINDER_KINDS,
    ObligationState,
    TimerKind,
    TimerOutcome,
)


@dataclass
class TickReport:
    fired: int = 0
    skipped: int = 0
    items: int = 0
    transitions: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def next_fire_at(engine: Engine, programs: Collection[int] | None = None) -> datetime | None:
    """When the earliest unfired timer is due (for the daemon's DateTrigger); of ``programs`` only
    (ids), when given."""
    with Session(engine) as session:
        query = select(func.min(Timer.fire_at)).where(Timer.fired_at.is_(None))
        if programs is not None:
            query = query.where(Timer.program_id.in_(sorted(programs)))
        return session.exec(query).one()


@gc_paused()
def tick(
    engine: Engine,
    now: datetime,
    policy: SendPolicy,
    *,
    actor: str = DAEMON,
    batch: int = 5000,
    programs: Collection[int] | None = None,
) -> TickReport:
    """Apply all timers with ``fire_at <= now``, in order; returns what was done. With ``programs``
    (ids), only theirs: the daemon runs the programs its config declares, the others' timers wait.

    Timers are applied in batches of ``batch`` (each batch one transaction: states, items, audit
    events and the timers' ``fired_at`` commit together), so a catch-up over a long outage does not
    hold one huge transaction; a batch also ends once it has written ``BUDGET`` rows or listed
    that many late units (a task occurrence's timer can concern thousands of units). A second tick, or a second process, finds
    nothing left to do.
    """
    report = TickReport()
    latest = None
    while True:
        with transaction(engine) as session:
            query = (
                select(*TIMER_COLUMNS)
                .where(TIMER.c.fired_at.is_(None), TIMER.c.fire_at <= now)
                .order_by(TIMER.c.fire_at, TIMER.c.id)
                .limit(batch)
            )
            if programs is not None:
                query = query.where(TIMER.c.program_id.in_(sorted(programs)))
            if engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            timers = session.connection().execute(query).all()
            if not timers:
                return report
            if latest is None:  # once per tick: the same for every batch (it names due timers)
                latest = _Latest.load(session.connection(), now)
            applied = _Batch(session, timers, now, policy, actor, report, latest).apply()
        if applied == len(timers) < batch:
            return report


TIMER_COLUMNS = [
    *(
        TIMER.c[n]
        for n in ("id", "key", "kind", "program_id", "obligation_id", "phase", "step", "task", "occurrence")
    ),
    *(memoized(TIMER.c[n]) for n in ("fire_at", "on", "due", "opens", "recipients")),
]
OBLIGATION_FIELDS = ("id", "key", "program_id", "task", "phase", "unit", "occurrence", "due", "state")
OBLIGATION_COLUMNS = [memoized(OBLIGATION.c[n]) if n == "due" else OBLIGATION.c[n] for n in OBLIGATION_FIELDS]
BUDGET = 50_000  # items, events and late units listed one batch writes at most (then its other timers wait)


@dataclass(frozen=True)
class _Latest:
    """The latest due notice where several are due at once (catch-up): the earlier ones are stale.

    ``group``: ((program, task, occurrence, opens, due), obligation id or None) → fire time of the
    task occurrence's latest due reminder-kind timer for all its units (None), or for one obligation
    (a timer narrowed to it: a late joiner's opening notice); ``phase``: program id → its latest due
    phase notice. One grouped scan of the due timers per tick (per batch and IN-list it was
    quadratic in a big day's timers).
    """

    phase: dict[int, datetime]
    group: dict[tuple, datetime]

    @classmethod
    def load(cls, connection, now: datetime) -> _Latest:
        due = (TIMER.c.fired_at.is_(None), TIMER.c.fire_at <= now)
        phase = connection.execute(
            select(TIMER.c.program_id, func.max(TIMER.c.fire_at))
            .where(*due, TIMER.c.task.is_(None), TIMER.c.kind.in_(sorted(PHASE_TIMER_KINDS)))
            .group_by(TIMER.c.program_id)
        ).all()
        c = TIMER.c
        group = connection.execute(
            select(c.program_id, c.task, c.occurrence, c.opens, c.due, c.obligation_id, func.max(c.fire_at))
            .where(*due, c.task.is_not(None), c.kind.in_(sorted(REMINDER_KINDS)))
            .group_by(c.program_id, c.task, c.occurrence, c.opens, c.due, c.obligation_id)
        ).all()
        return cls(dict(phase), {(tuple(row[:5]), row[5]): row[6] for row in group})


class _Batch(BatchNotices):
    """One batch of due timers: decide each (pure), then write states, items, events in bulk."""

    def __init__(
        self, session: Session, timers, now: datetime, policy: SendPolicy, actor: str, report, latest: _Latest
    ):
        self.session, self.timers, self.now, self.policy = session, timers, now, policy
        self.actor, self.report = actor, report
        program_ids = {t.program_id for t in timers}
        self.programs = {p.id: p for p in session.exec(select(Program).where(Program.id.in_(program_ids)))}
        self.zones = {pid: ZoneInfo(p.timezone) for pid, p in self.programs.items()}
        self.today = {pid: local_day(now, tz) for pid, tz in self.zones.items()}
        self.notify_day = {pid: notify_day(p) for pid, p in self.programs.items()}
        self.obligations: dict[int, dict] = {}  # by id, as this batch has changed them
        self.latest_phase_notice, self.latest_group_notice = latest.phase, latest.group
        self.items: list[dict] = []
        self.events: list[dict] = []
        self.listed = 0  # late units the escalation items list (at province scale 50,000 an item)
        self.state_changes: dict[int, str] = {}
        self.slots: dict[tuple[int, datetime], datetime] = {}
        self.groups: dict[tuple, list[dict]] = {}

    def apply(self) -> int:
        """Apply the timers in order until the budget is spent; returns how many were applied (the
        others stay unfired for the next batch)."""
        outcomes: dict[str, list[int]] = {TimerOutcome.FIRED: [], TimerOutcome.SKIPPED: []}
        applied = 0
        for timer in self.timers:
            outcome = self._apply(timer)
            outcomes[outcome].append(timer.id)
            self.report.kinds[timer.kind] = self.report.kinds.get(timer.kind, 0) + 1
            applied += 1
            if len(self.items) + len(self.events) + self.listed >= BUDGET:
                break
        self.report.fired += len(outcomes[TimerOutcome.FIRED])
        self.report.skipped += len(outcomes[TimerOutcome.SKIPPED])
        connection = self.session.connection()
        if self.state_changes:
            at = bind_value(connection, OBLIGATION.c.updated_at, self.now)
            changes = list(self.state_changes.items())
            set_per_id(connection, "obligation", "state", changes, "text", updated_at=at)
        insert_events(self.session, self.events)
        for outcome, ids in outcomes.items():
            for chunk in chunks(ids):
                connection.execute(
                    update(TIMER)
                    .where(TIMER.c.id.in_(chunk))  # locked by this transaction: no other condition
                    .values(fired_at=self.now, outcome=outcome)
                )
        # items have unique keys: a second tick or a second process inserts nothing
        self.report.items += insert_ignoring_duplicates(self.session, NotificationItem, self.items)
        return applied

    def _apply(self, timer) -> str:
        if timer.task is None:
            return self._program_timer(timer)
        if timer.kind == TimerKind.ESCALATION:
            return self._escalation(timer)
        return self._task_occurrence(timer)

    def _advance(self, timer, obligation: dict) -> None:
        """The state change a notice brings (opened, overdue) to an unfinished obligation."""
        state = obligation["state"]
        if timer.kind == TimerKind.TASK_OPENED and state == ObligationState.PENDING:
            self._transition(obligation, ObligationState.OPEN)
        if timer.kind == TimerKind.OVERDUE and state in (ObligationState.PENDING, ObligationState.OPEN):
            self._transition(obligation, ObligationState.OVERDUE)

    def _stale(self, timer, due, latest: datetime | None) -> str | None:
        """Why a notice is no longer true today (catch-up after downtime), or None; ``latest`` is
        the fire time of the latest reminder-kind notice of the same obligation(s) due now."""
        today = self.today[timer.program_id]
        start = self.notify_day[timer.program_id]
        if due is not None and due < start:
            return WORDS["before_notify_from"].format(start=start, due=due)
        if timer.kind in (TimerKind.TASK_OPENED, TimerKind.REMINDER) and today >= due:
            return WORDS["already_due"].format(today=today, due=due)
        if timer.kind == TimerKind.DUE_TODAY and today > due:
            return WORDS["due_passed"].format(today=today, due=due)
        if (
            timer.kind in (TimerKind.TASK_OPENED, TimerKind.REMINDER)
            and latest is not None
            and latest > timer.fire_at
        ):
            return WORDS["superseded"]
        return None

    def _transition(self, obligation: dict, state: str) -> None:
        before = obligation["state"]
        obligation["state"] = state
        self.state_changes[obligation["id"]] = state
        self.events.append(
            event_row(
                at=self.now,
                actor=self.actor,
                kind=f"obligation.{state}",
                program_id=obligation["program_id"],
                obligation_id=obligation["id"],
                unit=obligation["unit"],
                subject=obligation["key"],
                before={"state": before},
                after={"state": state},
            )
        )
        self.report.transitions += 1

    def _task_occurrence(self, timer) -> str:
        """A notice of a task occurrence, applied to each unit's obligation: its state moves (opened,
        overdue) and, unless the notice is no longer true or the obligation is finished, the unit
        gets an item. A notice no longer true is recorded once, as skipped."""
        stale = self._stale(timer, timer.due, self._latest(timer))
        told = []
        for obligation in self._members(timer):
            if obligation["state"] in QUIET_STATES:  # finished, or in review: no state change, no notice
                continue
            self._advance(timer, obligation)
            told.append(obligation)
        if stale and told:
            return self._skip(timer, stale)
        self._obligation_items(timer, told)
        return TimerOutcome.FIRED if told else TimerOutcome.SKIPPED

    def _latest(self, timer) -> datetime | None:
        """The fire time of the latest reminder-kind notice due now that concerns the timer's units."""
        group = task_occurrence_of(timer)
        times = [self.latest_group_notice.get((group, None))]
        if timer.obligation_id is not None:
            times.append(self.latest_group_notice.get((group, timer.obligation_id)))
        return max((t for t in times if t is not None), default=None)

    def _members(self, timer) -> list[dict]:
        """The obligations of the timer's task occurrence, as this batch sees them (read once a
        batch: the overdue notice and the first escalation step often fire together); only its
        obligation for a timer narrowed to one (a late joiner's opening notice)."""
        group = task_occurrence_of(timer)
        if group not in self.groups:
            self.groups[group] = self._load_members(timer)
        if timer.obligation_id is not None:
            return [o for o in self.groups[group] if o["id"] == timer.obligation_id]
        return self.groups[group]

    def _load_members(self, timer) -> list[dict]:
        o = OBLIGATION.c
        query = select(*OBLIGATION_COLUMNS).where(
            o.program_id == timer.program_id,
            o.task == timer.task,
            o.due == timer.due,
            (o.occurrence.is_(None) if timer.occurrence is None else o.occurrence == timer.occurrence),
        )
        if timer.opens is not None:
            query = query.where(o.opens == timer.opens)
        members = []
        for row in self.session.connection().execute(query).all():  # (fetchall: one driver call)
            obligation = self.obligations.get(row.id)
            if obligation is None:
                obligation = self.obligations[row.id] = dict(zip(OBLIGATION_FIELDS, row, strict=True))
            members.append(obligation)
        return members
