"""What an operator reads: status, obligation rows, one obligation's story, the log, the outbox.

Plain queries that return plain rows (dicts with stable field names — the ``--json`` output of
the admin CLI, documented in ``docs/admin-cli.md``). No printing, no clock: ``now`` is a parameter;
dates are local dates of the program's time zone; times are ISO-8601 with the offset of ``tz``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, false, or_
from sqlmodel import Session, select

from notifications.model import NoticeKind
from orchestrator.admin.portal import submission_rows
from orchestrator.engine.programs import notify_day
from orchestrator.engine.window import local_day
from orchestrator.store.models import (
    Event,
    NotificationItem,
    Obligation,
    OutboxMessage,
    PhaseRun,
    Program,
    Timer,
)
from orchestrator.store.states import OPEN_STATES, ObligationState

STATES = tuple(ObligationState)  # in this order in counts and tables
DUE_SOON_DAYS = 3


@dataclass(frozen=True)
class TaskFilter:
    """``duban tasks`` filters; None means "any". ``due_before`` is inclusive (due on or before)."""

    program_ids: tuple[int, ...] | None = None
    unit: str | None = None
    states: tuple[str, ...] | None = None
    phase: str | None = None
    due_before: date | None = None
    before_start: bool = False  # only those due before their program's notify-from day


def iso(value: datetime | None, tz: ZoneInfo) -> str | None:
    return value.astimezone(tz).isoformat(timespec="seconds") if value else None


def display_tz(session: Session) -> ZoneInfo:
    """The zone times are shown in: the programs' zone when they share one, else the plans' default zone."""
    zones = set(session.exec(select(Program.timezone).distinct()))
    if len(zones) == 1:
        return ZoneInfo(zones.pop())
    from workflows.schema import DEFAULT_TIMEZONE  # only here: the schema is slow to import

    return ZoneInfo(DEFAULT_TIMEZONE)


def programs_by_id(session: Session) -> dict[int, Program]:
    return {p.id: p for p in session.exec(select(Program))}


# -- obligations --------------------------------------------------------------------------------


def timing(obligation: Obligation, today: date) -> dict[str, Any]:
    """Days left or late for an obligation still to do (nulls once it is done, waived or cancelled)."""
    if obligation.state not in OPEN_STATES:
        return {"days_left": None, "days_late": None, "overdue_since": None}
    delta = (obligation.due - today).days
    if delta >= 0:
        return {"days_left": delta, "days_late": None, "overdue_since": None}
    return {"days_left": None, "days_late": -delta, "overdue_since": str(obligation.due + timedelta(days=1))}


def due_soon(row: Mapping[str, Any]) -> bool:
    return (
        row["state"] in (ObligationState.OPEN, ObligationState.PENDING)
        and row["days_left"] is not None
        and row["days_left"] <= DUE_SOON_DAYS
    )


def is_late(row: Mapping[str, Any]) -> bool:
    return row["state"] == ObligationState.OVERDUE or row["days_late"] is not None


def obligation_row(
    obligation: Obligation, program: Program, names: Mapping[str, str], now: datetime
) -> dict[str, Any]:
    """One obligation as the stable JSON row of ``duban tasks --json``."""
    tz = ZoneInfo(program.timezone)
    return {
        "id": obligation.id,
        "key": obligation.key,
        "workflow": program.workflow,
        "year": program.year,
        "task": obligation.task,
        "title": obligation.title,
        "phase": obligation.phase,
        "unit": obligation.unit,
        "unit_name": names.get(obligation.unit, obligation.unit),
        "lead": list(obligation.lead),
        "lead_names": [names.get(u, u) for u in obligation.lead],
        "occurrence": obligation.occurrence,
        "opens": str(obligation.opens),
        "due": str(obligation.due),
        "state": obligation.state,
        **timing(obligation, local_day(now, tz)),
        "done_at": iso(obligation.done_at, tz),
        "done_late": obligation.done_late,
        "evidence": obligation.evidence,
        "reason": obligation.reason,
        "updated_at": iso(obligation.updated_at, tz),
    }


def task_rows(
    session: Session, wanted: TaskFilter, names: Mapping[str, str], now: datetime
) -> list[dict[str, Any]]:
    """Obligations matching ``wanted``, by due date then unit; cancelled ones only when asked for."""
    programs = programs_by_id(session)
    query = select(Obligation)
    if wanted.program_ids is not None:
        query = query.where(Obligation.program_id.in_(wanted.program_ids))
    if wanted.unit is not None:
        query = query.where(Obligation.unit == wanted.unit)
    states = wanted.states or tuple(s for s in STATES if s != ObligationState.CANCELLED)
    query = query.where(Obligation.state.in_(states))
    if wanted.phase is not None:
        query = query.where(Obligation.phase == wanted.phase)
    if wanted.due_before is not None:
        query = query.where(Obligation.due <= wanted.due_before)
    if wanted.before_start:
        query = query.where(or_(*(before_start(p) for p in programs.values())) if programs else false())
    query = query.order_by(Obligation.due, Obligation.unit, Obligation.task, Obligation.id)
    return [obligation_row(o, programs[o.program_id], names, now) for o in session.exec(query)]


def before_start(program: Program):
    """The condition "an obligation of ``program`` due before its notify-from day"."""
    return and_(Obligation.program_id == program.id, Obligation.due < notify_day(program))


def count_states(rows: list[Mapping[str, Any]]) -> dict[str, int]:
    counts = {state: 0 for state in STATES}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    counts["done_late"] = sum(1 for r in rows if r["state"] == ObligationState.DONE and r["done_late"])
    counts["total"] = len(rows)
    return counts


# -- one obligation -----------------------------------------------------------------------------


def story(
    session: Session, obligation: Obligation, names: Mapping[str, str], now: datetime
) -> dict[str, Any]:
    """``duban show``: the obligation, its timers, its notices (sent when, to whom) and its history."""
    program = session.get(Program, obligation.program_id)
    tz = ZoneInfo(program.timezone)
    timers = session.exec(
        select(Timer)
        .where(
            (Timer.obligation_id == obligation.id)
            | (_same_group(Timer, obligation) & (Timer.opens.is_(None) | (Timer.opens == obligation.opens)))
        )
        .order_by(Timer.fire_at, Timer.id)
    )
    notices = [
        (item, message)
        for item, message in session.exec(
            select(NotificationItem, OutboxMessage)
            .join(OutboxMessage, NotificationItem.message_id == OutboxMessage.id, isouter=True)
            .where(
                (NotificationItem.obligation_id == obligation.id)
                | (
                    _same_group(NotificationItem, obligation)
                    & (NotificationItem.kind == NoticeKind.ESCALATION)
                )
            )
            .order_by(NotificationItem.send_at, NotificationItem.id)
        ).all()
        if item.late is None or any(oid == obligation.id for oid, _ in item.late)
    ]
    notices = _once_per_message(notices)
    message_ids = sorted({m.message_id for _, m in notices if m is not None})
    history = select(Event).where(Event.obligation_id == obligation.id)
    if message_ids:
        history = select(Event).where(
            (Event.obligation_id == obligation.id)
            | (Event.kind.startswith("mail.", autoescape=True) & Event.subject.in_(message_ids))
        )
    events = session.exec(history.order_by(Event.at, Event.id))
    return {
        "obligation": obligation_row(obligation, program, names, now) | {"program_title": program.title},
        "timers": [
            {
                "kind": t.kind,
                "step": t.step,
                "on": str(t.on),
                "fire_at": iso(t.fire_at, tz),
                "fired_at": iso(t.fired_at, tz),
                "outcome": t.outcome,
                "recipients": list(t.recipients) or [obligation.unit],  # (): each unit itself
            }
            for t in timers
        ],
        "notices": [_notice(item, message, names, tz) for item, message in notices],
        "history": _with_creation(session, obligation, program, [event_row(e, tz) for e in events], tz),
        "submissions": submission_rows(session, obligation.id, tz),
    }


def phase_name(session: Session, obligation: Obligation) -> str | None:
    """The name of the obligation's phase in its program (``宣传动员阶段``), or None without one."""
    if obligation.phase is None:
        return None
    query = select(PhaseRun.name).where(
        PhaseRun.program_id == obligation.program_id, PhaseRun.phase == obligation.phase
    )
    return session.exec(query).first() or obligation.phase


def _once_per_message(notices: list) -> list:
    """One escalation notice per recipient and message: several steps of one escalation that reached
    a recipient together (catch-up, or both roles) told it once, in one listing."""
    seen: set[tuple] = set()
    kept = []
    for item, message in notices:
        if item.kind == NoticeKind.ESCALATION:
            key = (item.recipient, message.id if message is not None else item.send_at)
            if key in seen:
                continue
            seen.add(key)
        kept.append((item, message))
    return kept


def _with_creation(
    session: Session, obligation: Obligation, program: Program, history: list[dict[str, Any]], tz: ZoneInfo
) -> list[dict[str, Any]]:
    """The history with how it began: an obligation added by a reconcile has its ``obligation.added``
    event; one created when the program started (in bulk, without an event of its own) gets an
    ``obligation.created`` entry from the program's start — with the state it had then, so one
    created already overdue says so."""
    if any(e["kind"] == "obligation.added" for e in history):
        return history
    started = session.exec(
        select(Event)
        .where(Event.program_id == program.id, Event.kind == "program.started")
        .order_by(Event.id)
    ).first()
    at = started.at if started else program.started_at
    day = local_day(at, tz)
    state = "pending" if day < obligation.opens else ("overdue" if day > obligation.due else "open")
    entry = {
        "id": None,
        "at": iso(at, tz),
        "actor": started.actor if started else "duban",
        "kind": "obligation.created",
        "program_id": program.id,
        "obligation_id": obligation.id,
        "unit": obligation.unit,
        "subject": obligation.key,
        "before": None,
        "after": {"state": state, "opens": str(obligation.opens), "due": str(obligation.due)},
        "detail": "方案启动时创建" + ("，创建时已逾期" if state == "overdue" else ""),
    }
    return [entry, *history]


def _same_group(model, obligation: Obligation):
    """The timers or items of the obligation's task occurrence (one for all of its units)."""
    occurrence = model.occurrence
    return (
        model.obligation_id.is_(None)
        & (model.program_id == obligation.program_id)
        & (model.task == obligation.task)
        & (model.due == obligation.due)
        & (occurrence.is_(None) if obligation.occurrence is None else occurrence == obligation.occurrence)
    )


def _notice(item: NotificationItem, message: OutboxMessage | None, names, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "kind": item.kind,
        "recipient": item.recipient,
        "recipient_name": names.get(item.recipient, item.recipient),
        "send_at": iso(item.send_at, tz),
        "state": item.state,
        "outbox_id": message.id if message else None,
        "message_state": message.state if message else None,
        "to": list(message.to) if message else [],
        "sent_at": iso(message.sent_at, tz) if message else None,
        "subject": message.subject if message else None,
    }


# -- the audit log ------------------------------------------------------------------------------


def event_row(event: Event, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": iso(event.at, tz),
        "actor": event.actor,
        "kind": event.kind,
        "program_id": event.program_id,
        "obligation_id": event.obligation_id,
        "unit": event.unit,
        "subject": event.subject,
        "before": event.before,
        "after": event.after,
        "detail": event.detail,
    }


def log_rows(
    session: Session,
    tz: ZoneInfo,
    *,
    since: datetime | None = None,
    unit: str | None = None,
    kind: str | None = None,
    actor: str | None = None,
    limit: int | None = None,
    hidden: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Audit events in time order; ``kind`` matches a prefix (``obligation.`` or ``obligation.done``);
    events of the ``hidden`` kinds are left out; with ``limit``, the latest ``limit`` events (still
    in time order)."""
    query = select(Event)
    if hidden:
        query = query.where(Event.kind.not_in(hidden))
    if since is not None:
        query = query.where(Event.at >= since)
    if unit is not None:
        query = query.where(Event.unit == unit)
    if kind is not None:
        query = query.where(Event.kind.startswith(kind, autoescape=True))
    if actor is not None:
        query = query.where(Event.actor == actor)
    if limit:
        events = list(session.exec(query.order_by(Event.at.desc(), Event.id.desc()).limit(limit)))[::-1]
    else:
        events = list(session.exec(query.order_by(Event.at, Event.id)))
    return [event_row(e, tz) for e in events]
