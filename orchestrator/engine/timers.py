"""The timer rows a program wants, and bringing its stored timers in line with them.

``TimerSync`` moves, cancels or queues a program's unfired timers owner by owner (a task
occurrence, a phase, one obligation) and inserts the new ones in bulk; ``timer_row`` is the one
shape of a timer row; ``group_timers`` (the notices of one task occurrence, for all its units),
``joiner_timer`` (a late joiner's own opening notice) and ``program_timers`` (the office's
before-start summary, the scorecard) say what is wanted. ``start_program`` (``engine.programs``)
drives them.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from notifications.model import NoticeKind
from orchestrator.engine.window import local_day, local_midnight
from orchestrator.store.db import bulk_insert
from orchestrator.store.models import Program, Timer
from orchestrator.store.states import TimerKind, TimerOutcome
from workflows.catalog import Bundle
from workflows.plan import Occurrence
from workflows.schedule import obligation_notices

PROGRAM_PHASE = "__program__"  # the owner of program-level timers (the scorecard)
PHASE_NOTICE = {TimerKind.PHASE_START: NoticeKind.PHASE_STARTED, TimerKind.PHASE_END: NoticeKind.PHASE_CLOSED}
"""A phase timer's notice kind where the two names differ (``phase_ending`` is both)."""
PHASE_TIMER = {notice: timer for timer, notice in PHASE_NOTICE.items()}


class TimerSync:
    """Makes the unfired timers of a program match what the plan wants, in bulk.

    Loads the program's unfired timers once; ``sync(owner, wanted)`` moves, cancels or queues
    timers of one owner (a task occurrence, a phase, or one obligation: a timer of its task occurrence
    narrowed to it, a late joiner's opening notice); ``flush()`` inserts the new ones,
    ignoring keys that exist already (a timer that fired keeps its row: its key names its date).
    """

    def __init__(self, session: Session, program: Program, now: datetime):
        self.session, self.program, self.now = session, program, now
        self.existing: dict[object, dict[str, Timer]] = {}
        query = select(Timer).where(Timer.program_id == program.id, Timer.fired_at.is_(None))
        for timer in session.exec(query):
            self.existing.setdefault(self._owner_of(timer), {})[timer.key] = timer
        self.new: list[dict] = []
        self.changed = self.inserted = 0

    @staticmethod
    def _owner_of(timer: Timer) -> object:
        if timer.obligation_id is not None:  # narrowed to one obligation
            return timer.obligation_id
        if timer.task is not None:
            return ("group", timer.task, timer.occurrence, timer.opens, timer.due)
        return ("phase", timer.phase)

    def unfired(self, owner: object, kind: str | None) -> dict[str, dict]:
        """The owner's unfired timers of ``kind`` (None: all) as wanted rows (to keep them as they are)."""
        return {
            key: {"fire_at": t.fire_at, "on": t.on, "recipients": t.recipients}
            for key, t in self.existing.get(owner, {}).items()
            if kind is None or t.kind == kind
        }

    def sync_groups(self, groups: dict[tuple, dict[str, dict]]) -> None:
        """Sync every task occurrence the plan wants; cancel the timers of those it no longer has."""
        for owner, wanted in groups.items():
            self.sync(owner, wanted)
        for owner in [o for o in self.existing if isinstance(o, tuple) and o[0] == "group"]:
            self.sync(owner, {})

    def sync(self, owner: object, wanted: dict[str, dict]) -> None:
        existing = self.existing.pop(owner, {})
        for key, timer in existing.items():
            target = wanted.get(key)
            if target is None:
                timer.fired_at, timer.outcome = self.now, TimerOutcome.CANCELLED
                self.changed += 1
            elif (timer.fire_at, timer.on, timer.recipients) != (
                target["fire_at"],
                target["on"],
                target["recipients"],
            ):
                timer.fire_at, timer.on, timer.recipients = (
                    target["fire_at"],
                    target["on"],
                    target["recipients"],
                )
                self.changed += 1
        for key, row in wanted.items():
            if key not in existing:
                self.new.append(row)
        if len(self.new) >= self.CHUNK:
            self._insert()

    CHUNK = 20_000  # timers inserted at a time: a province's million timers are never all in memory

    def _insert(self) -> None:
        self.inserted += insert_ignoring_duplicates(self.session, Timer, self.new)
        self.new = []

    def flush(self) -> int:
        """Insert the queued timers; returns how many rows were inserted or changed."""
        self._insert()
        return self.changed + self.inserted


def insert_ignoring_duplicates(session: Session, model, rows: list[dict]) -> int:
    """Bulk INSERT … ON CONFLICT (key) DO NOTHING; returns the number of rows really inserted."""
    return bulk_insert(session.connection(), model.__table__, rows, unique="key")


def timer_row(key: str, kind: str, program: Program, on: date, tz: ZoneInfo, **fields) -> dict:
    return {
        "key": key,
        "kind": kind,
        "program_id": program.id,
        "fire_at": local_midnight(on, tz),
        "on": on,
        "obligation_id": fields.get("obligation_id"),
        "phase": fields.get("phase"),
        "step": fields.get("step", 0),
        "recipients": list(fields.get("recipients", ())),
        "fired_at": None,
        "outcome": None,
        "task": fields.get("task"),
        "occurrence": fields.get("occurrence"),
        "due": fields.get("due"),
        "opens": fields.get("opens"),
    }


def office_units(bundle: Bundle) -> tuple[str, ...]:
    """The supervising office: the workflow's ``contact`` units (who gets the before-start summary)."""
    contact = bundle.definition.workflow.contact
    return tuple(bundle.units.directory.expand(contact)) if contact else ()


def program_timers(bundle, program, timers: TimerSync) -> None:
    """Program-level timers: the summary of what was due before ``notify_from`` to the office, and
    the scorecard to the supervising office (``[evaluation] send_on``)."""
    evaluation = bundle.definition.evaluation
    tz = ZoneInfo(program.timezone)
    wanted = {}
    office = office_units(bundle)
    if office and program.notify_from is not None:
        start = program.notify_from
        day = local_day(start, tz)
        key = f"{program.workflow}/{program.year}/program/before_start/{day}"
        row = timer_row(key, TimerKind.BEFORE_START, program, day, tz, phase=PROGRAM_PHASE, recipients=office)
        wanted[key] = row | {"fire_at": start}  # at the instant itself: after every notice before it
    if evaluation and evaluation.send_on and evaluation.recipients:
        day = bundle.calendar.next_workday(evaluation.send_on.in_year(program.year))
        recipients = bundle.units.directory.expand_all(evaluation.recipients)
        key = f"{program.workflow}/{program.year}/program/scorecard/{day}"
        wanted[key] = timer_row(
            key, TimerKind.SCORECARD, program, day, tz, phase=PROGRAM_PHASE, recipients=recipients
        )
    timers.sync(("phase", PROGRAM_PHASE), wanted)


def joiner_timer(program: Program, obligation_id: int, key: str, occ: Occurrence) -> dict[str, dict]:
    """The opening notice of an obligation added after its task occurrence opened (a unit that
    joined the plan late): a ``task_opened`` timer of its task occurrence narrowed to it
    (``obligation_id``), due at once. Its items have the keys the task occurrence's timer gives the
    same notice, so a unit is never told twice."""
    timer_key = f"{key}/task_opened/0/{occ.opens}"
    tz = ZoneInfo(program.timezone)
    row = timer_row(
        timer_key,
        TimerKind.TASK_OPENED,
        program,
        occ.opens,
        tz,
        obligation_id=obligation_id,
        phase=occ.phase,
        task=occ.task,
        occurrence=occ.occurrence,
        due=occ.due,
        opens=occ.opens,
    )
    return {timer_key: row}


def group_timers(bundle: Bundle, program: Program, occ: Occurrence, groups: dict) -> None:
    """The timers of ``occ``'s task occurrence: one per notice (task opened, each reminder, due today,
    overdue, each escalation step) for every unit with the same task, occurrence, opening and due
    dates — computed once per group. When one fires, the tick applies it to each of those units'
    obligations as it stands then (done, waived and cancelled ones get nothing)."""
    owner = ("group", occ.task, occ.occurrence, occ.opens, occ.due)
    if owner in groups:
        return
    tz = ZoneInfo(program.timezone)
    task = bundle.definition.task(occ.task)
    assert task is not None
    wanted = {}
    base = f"{program.workflow}/{program.year}/{occ.task}/*/{occ.occurrence or '-'}/{occ.opens}/{occ.due}"
    for notice in obligation_notices(
        occ, task, bundle.definition.workflow, bundle.units.directory, bundle.calendar, exclude_own=False
    ):
        key = f"{base}/{notice.kind}/{notice.step}/{notice.on}"
        wanted[key] = timer_row(
            key,
            notice.kind,
            program,
            notice.on,
            tz,
            phase=occ.phase,
            step=notice.step,
            recipients=notice.to if notice.kind == TimerKind.ESCALATION else (),  # () : each unit itself
            task=occ.task,
            occurrence=occ.occurrence,
            due=occ.due,
            opens=occ.opens,
        )
    groups[owner] = wanted
