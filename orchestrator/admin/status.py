"""``duban status`` in one call: programs and their phases, obligations by state, the outbox and
its stuck channels (``stuck``), the daemons' heartbeats (alive or not), and calendar warnings.
Plain rows, no printing."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, select

from orchestrator.admin.mail import outbox_counts
from orchestrator.admin.overview import STATES, display_tz, iso
from orchestrator.admin.storage_faults import open_fault
from orchestrator.admin.stuck import stuck_channels
from orchestrator.engine.outbox.waiting import waiting
from orchestrator.engine.window import SendPolicy
from orchestrator.store.models import Heartbeat, Obligation, PhaseRun, Program
from orchestrator.store.states import ObligationState, ProgramState
from workflows.errors import DubanError

CalendarOf = Callable[[Program], Any]  # a program → its working-day calendar (may raise DubanError)


UnitWarnings = Callable[[list[Program]], list[str]]  # the running programs → what is wrong with the units


def status_report(
    session: Session,
    now: datetime,
    *,
    tick_interval: float,
    calendar_of: CalendarOf,
    unit_warnings: UnitWarnings | None = None,
    send_window: tuple[time, time] | None = None,
    declared: Collection[str] | None = None,
    config_warnings: Collection[str] = (),
) -> dict[str, Any]:
    """Everything ``duban status`` shows, as the one JSON object of ``duban status --json``.

    ``unit_warnings``: the units that owe nothing in any running program (and whether the units
    file has errors), from the loaded files (``service.unit_status``); ``send_window``: the
    configured one, a channel's wait outside it is no sign it is stuck; ``declared``: the workflows
    ``[[programs]]`` declares, the ones the daemon runs; ``config_warnings``: what the configuration
    is about to do (a ``year = "current"`` program rolling over, ``service.rollover``)."""
    tz = display_tz(session)
    daemons = daemon_rows(session, now, tick_interval, tz)
    warnings = calendar_warnings(session, calendar_of)
    if unit_warnings is not None:
        running = list(session.exec(select(Program).where(Program.state == ProgramState.RUNNING)))
        warnings += unit_warnings(running) if running else []
    warnings += list(config_warnings)
    policy = _send_policy(session, calendar_of, send_window) if send_window else None
    return {
        "now": iso(now, tz),
        "programs": program_rows(session, declared),
        "outbox": outbox_counts(session),
        "stuck": stuck_channels(session, now, policy, lambda t: iso(t, tz)),
        # notices and emails for the next window
        "waiting": waiting(session, now).as_json(lambda t: iso(t, tz)),
        "daemons": daemons,
        "daemon_alive": any(d["alive"] for d in daemons),
        "last_tick_at": max((d["last_tick_at"] for d in daemons if d["last_tick_at"]), default=None),
        "warnings": warnings,
        "evidence_fault": _fault(session, now, tz),
    }


def _fault(session: Session, now: datetime, tz: ZoneInfo) -> dict[str, Any] | None:
    fault = open_fault(session, now)
    return None if fault is None else fault | {"at": iso(fault["at"], tz)}


def _send_policy(session: Session, calendar_of: CalendarOf, window: tuple[time, time]) -> SendPolicy | None:
    """The send window on each running program's calendar (None when no calendar can be read)."""
    calendars = {}
    for program in session.exec(select(Program).where(Program.state == ProgramState.RUNNING)):
        try:
            calendars[program.workflow] = calendar_of(program)
        except DubanError:
            continue
    if not calendars:
        return None
    return SendPolicy(window, calendars, next(iter(calendars.values())))


def calendar_warnings(session: Session, calendar_of: CalendarOf) -> list[str]:
    """One line per (running program, year it touches) without official working-day data."""
    found = []
    for program in session.exec(select(Program).where(Program.state == ProgramState.RUNNING)):
        try:
            calendar = calendar_of(program)
        except DubanError as exc:
            found.append(f"{program_name(program)}：未能检查工作日日历（{str(exc).splitlines()[0]}）")
            continue
        for year in years_touched(session, program):
            if not calendar.has_official_data(year):
                found.append(f"{program_name(program)}：{calendar.warning_for(year)}")
    return found


def program_name(program: Program) -> str:
    """``法治政府建设指标体系试点 2026 年度（rule-of-law-pilot）``: a program as a warning names it."""
    return f"{program.title} {program.year} 年度（{program.workflow}）"


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


def program_rows(session: Session, declared: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Programs with their phases and their obligations counted by state; ``run``: whether the
    daemon runs it (its workflow is in ``declared``; None when that is not known)."""
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
                "run": None if declared is None else program.workflow in declared,
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
