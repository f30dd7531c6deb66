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

from sqlalchemy import and_, false, func, or_
from sqlmodel import Session, select

from notifications.ics import build_calendar
from notifications.model import NoticeKind
from orchestrator.admin.portal import submission_rows
from orchestrator.engine.digest import DigestBuilder
from orchestrator.engine.programs import notify_day
from orchestrator.engine.window import local_day
from orchestrator.store.models import (
    Event,
    Heartbeat,
    NotificationItem,
    Obligation,
    OutboxMessage,
    PhaseRun,
    Program,
    Timer,
)
from orchestrator.store.states import OPEN_STATES, Channel, ObligationState, OutboxKind, OutboxState
from workflows.catalog import Bundle
from workflows.schema import DEFAULT_TIMEZONE

STATES = tuple(ObligationState)  # in this order in counts and tables
OUTBOX_STATES = tuple(OutboxState)
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
    return ZoneInfo(zones.pop() if len(zones) == 1 else DEFAULT_TIMEZONE)


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
        "history": [event_row(e, tz) for e in events],
        "submissions": submission_rows(session, obligation.id, tz),
    }


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
) -> list[dict[str, Any]]:
    """Audit events in time order; ``kind`` matches a prefix (``obligation.`` or ``obligation.done``);
    with ``limit``, the latest ``limit`` events (still in time order)."""
    query = select(Event)
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


# -- the outbox ---------------------------------------------------------------------------------


def outbox_row(message: OutboxMessage, names: Mapping[str, str], tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": message.id,
        "kind": getattr(message, "kind", OutboxKind.DIGEST),  # or failure_report (the admin's daily list)
        "state": message.state,
        "recipient": message.recipient,
        "recipient_name": names.get(message.recipient, message.recipient),
        "to": list(message.to),
        "subject": message.subject,
        "send_date": str(message.send_date),
        "attempts": message.attempts,
        "next_attempt_at": iso(message.next_attempt_at, tz) if message.state == OutboxState.PENDING else None,
        "sent_at": iso(message.sent_at, tz),
        "last_error": message.last_error,
        "refused": dict(message.refused or {}),
        "message_id": message.message_id,
        "channel": message.channel,  # email | robot:NAME
    }


def outbox_rows(
    session: Session, names: Mapping[str, str], tz: ZoneInfo, state: str | None = None
) -> list[dict[str, Any]]:
    query = select(OutboxMessage)
    if state is not None:
        query = query.where(OutboxMessage.state == state)
    return [outbox_row(m, names, tz) for m in session.exec(query.order_by(OutboxMessage.id))]


def outbox_counts(session: Session) -> dict[str, Any]:
    """Rows by state (every channel), and ``channels``: by state for ``email``, for ``robot`` (all
    group robots) and for each ``robot:NAME``."""
    counts: dict[str, Any] = {state: 0 for state in OUTBOX_STATES}
    channels: dict[str, dict[str, int]] = {"email": {state: 0 for state in OUTBOX_STATES}}
    query = select(OutboxMessage.channel, OutboxMessage.state, func.count()).group_by(
        OutboxMessage.channel, OutboxMessage.state
    )
    for channel, state, n in session.exec(query):
        counts[state] = counts.get(state, 0) + n
        families = [channel] if channel == Channel.EMAIL else ["robot", channel]
        for family in families:
            by_state = channels.setdefault(family, {s: 0 for s in OUTBOX_STATES})
            by_state[state] = by_state.get(state, 0) + n
    refused = session.exec(select(OutboxMessage.refused).where(OutboxMessage.state == OutboxState.SENT)).all()
    counts["refused_recipients"] = sum(len(r or {}) for r in refused)
    counts["total"] = sum(counts[s] for s in OUTBOX_STATES)
    counts["channels"] = channels
    return counts


# -- status -------------------------------------------------------------------------------------


def daemon_rows(session: Session, now: datetime, tick_interval: float, tz: ZoneInfo) -> list[dict[str, Any]]:
    """The live daemons on this database, and the last one that stopped (not one row per past run);
    alive = seen within 3 × tick_interval and not stopped."""
    rows = []
    stopped_shown = False
    for beat in session.exec(select(Heartbeat).order_by(Heartbeat.last_seen_at.desc())):
        alive = beat.role != "stopped" and now - beat.last_seen_at <= timedelta(seconds=3 * tick_interval)
        if not alive:
            if stopped_shown:
                continue
            stopped_shown = True
        rows.append(
            {
                "node": beat.node,
                "host": beat.host,
                "pid": beat.pid,
                "role": beat.role,
                "started_at": iso(beat.started_at, tz),
                "last_tick_at": iso(beat.last_tick_at, tz),
                "last_seen_at": iso(beat.last_seen_at, tz),
                "alive": alive,
                "status": beat.status,
            }
        )
    return rows


def program_rows(session: Session) -> list[dict[str, Any]]:
    """Programs with their phases and their obligations counted by state."""
    counts: dict[int, dict[str, int]] = {}
    for program_id, state, n in session.exec(
        select(Obligation.program_id, Obligation.state, func.count()).group_by(
            Obligation.program_id, Obligation.state
        )
    ):
        counts.setdefault(program_id, {s: 0 for s in STATES})[state] = n
    late_done = dict(
        session.exec(
            select(Obligation.program_id, func.count())
            .where(Obligation.state == ObligationState.DONE, Obligation.done_late.is_(True))
            .group_by(Obligation.program_id)
        ).all()
    )
    late_units = dict(
        session.exec(
            select(Obligation.program_id, func.count(Obligation.unit.distinct()))
            .where(Obligation.state == ObligationState.OVERDUE)
            .group_by(Obligation.program_id)
        ).all()
    )
    rows = []
    for program in session.exec(select(Program).order_by(Program.workflow, Program.year)):
        tz = ZoneInfo(program.timezone)
        phases = session.exec(
            select(PhaseRun).where(PhaseRun.program_id == program.id).order_by(PhaseRun.start, PhaseRun.id)
        )
        by_state = counts.get(program.id, {s: 0 for s in STATES})
        rows.append(
            {
                "id": program.id,
                "workflow": program.workflow,
                "title": program.title,
                "year": program.year,
                "state": program.state,
                "timezone": program.timezone,
                "started_at": iso(program.started_at, tz),
                "phases": [
                    {
                        "phase": r.phase,
                        "name": r.name,
                        "start": str(r.start),
                        "end": str(r.end),
                        "state": r.state,
                    }
                    for r in phases
                ],
                "obligations": by_state
                | {"done_late": late_done.get(program.id, 0), "total": sum(by_state.values())},
                "late_units": late_units.get(program.id, 0),
            }
        )
    return rows


def years_touched(session: Session, program: Program) -> list[int]:
    """Every year a program's phases, obligations or their notices have a date in (the last due
    date's overdue notice and escalations fall in the next weeks: up to a month after it)."""
    low, high = session.exec(
        select(func.min(Obligation.opens), func.max(Obligation.due)).where(
            Obligation.program_id == program.id
        )
    ).one()
    phase_low, phase_high = session.exec(
        select(func.min(PhaseRun.start), func.max(PhaseRun.end)).where(PhaseRun.program_id == program.id)
    ).one()
    years = {program.year}
    for day in (low, high, phase_low, phase_high):
        if day is not None:
            years.add(day.year)
    if high is not None:
        years.add((high + timedelta(days=31)).year)
    return list(range(min(years), max(years) + 1))


# -- the calendar -------------------------------------------------------------------------------


def open_obligations(session: Session, unit: str | None = None, program_ids=None) -> list[Obligation]:
    query = select(Obligation).where(Obligation.state.in_(OPEN_STATES))
    if unit is not None:
        query = query.where(Obligation.unit == unit)
    if program_ids is not None:
        query = query.where(Obligation.program_id.in_(program_ids))
    return list(session.exec(query.order_by(Obligation.due, Obligation.unit, Obligation.id)))


def calendar_export(
    session: Session,
    obligations: list[Obligation],
    bundles: Mapping[str, Bundle],
    *,
    domain: str,
    now: datetime,
) -> bytes | None:
    """One VTODO per obligation, with the UIDs and wording of the emails' ``.ics`` parts (None if none).

    The to-dos are built by the dispatcher's own ``DigestBuilder`` and ``build_calendar``, so a
    calendar that imported an email's deadline updates that entry instead of adding a second one.
    """
    builder = DigestBuilder(session, bundles)
    items = [builder.item(_as_item(o, now)) for o in obligations]
    return build_calendar(items, domain=domain, now=now)


def _as_item(obligation: Obligation, now: datetime) -> NotificationItem:
    """A transient (never stored) item about ``obligation``, for the digest builder."""
    return NotificationItem(
        key=f"export/{obligation.key}",
        kind=NoticeKind.TASK_OPENED,
        recipient=obligation.unit,
        program_id=obligation.program_id,
        obligation_id=obligation.id,
        phase=obligation.phase,
        task=obligation.task,
        unit=obligation.unit,
        occurrence=obligation.occurrence,
        due=obligation.due,
        on=obligation.opens,
        send_at=now,
        created_at=now,
    )
