"""Starting a program: materialize its phases, obligations and timers; reconcile on change.

Idempotent: starting the same plan twice changes nothing. When a definition, units file or
register changes, the next start (or reload) adds new obligations, moves changed dates, and
cancels obligations that left the plan — each change recorded in the audit log, nothing
duplicated, nothing silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from orchestrator.audit import DAEMON, record
from orchestrator.models import Obligation, PhaseRun, Program, Timer
from orchestrator.window import local_day, local_midnight
from workflows.catalog import Bundle
from workflows.plan import Occurrence, phase_dates, plan
from workflows.schedule import obligation_notices, phase_notices

OPEN_STATES = ("pending", "open", "overdue")
FINAL_STATES = ("done", "waived", "cancelled")


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
        return "pending"
    return "open" if today <= due else "overdue"


def _program(session: Session, bundle: Bundle, year: int, now: datetime, actor: str, report: StartReport):
    wf = bundle.definition.workflow
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
            after={"workflow": wf.id, "year": year, "title": wf.title},
        )
    else:
        program.title, program.timezone = wf.title, wf.timezone
        program.definition_path = bundle.loaded.path
        program.definition_digest, program.units_digest = bundle.loaded.digest, bundle.units.digest
        program.reconciled_at = now
    return program


def _sync_timers(
    session: Session, program: Program, owner: dict, wanted: dict[str, Timer], now: datetime, actor: str
) -> int:
    """Make the unfired timers of one owner (an obligation or a phase) match ``wanted``."""
    query = select(Timer).where(Timer.program_id == program.id, Timer.fired_at.is_(None))
    if "obligation_id" in owner:
        query = query.where(Timer.obligation_id == owner["obligation_id"])
    else:
        query = query.where(Timer.obligation_id.is_(None), Timer.phase == owner["phase"])
    existing = {t.key: t for t in session.exec(query)}
    changed = 0
    for key, timer in existing.items():
        target = wanted.get(key)
        if target is None:
            timer.fired_at, timer.outcome = now, "cancelled"
            changed += 1
        elif (timer.fire_at, timer.on, timer.recipients) != (target.fire_at, target.on, target.recipients):
            timer.fire_at, timer.on, timer.recipients = target.fire_at, target.on, target.recipients
            changed += 1
    fired_keys = set()
    missing = [k for k in wanted if k not in existing]
    if missing:
        fired_keys = set(session.exec(select(Timer.key).where(Timer.key.in_(missing))))
    for key in missing:
        if key not in fired_keys:
            session.add(wanted[key])
            changed += 1
    return changed


def _phase_runs(session, bundle, program, now, actor, report) -> None:
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
            if run.state != "closed" or today <= run.end:
                run.state = "pending" if today < run.start else ("active" if today <= run.end else run.state)
        wanted = {}
        for notice in phase_notices(dates, wf, bundle.calendar):
            kind = {"phase_started": "phase_start", "phase_closed": "phase_end"}.get(notice.kind, notice.kind)
            key = f"{program.workflow}/{program.year}/phase/{phase.id}/{kind}/{notice.on}"
            wanted[key] = Timer(
                key=key,
                fire_at=local_midnight(notice.on, tz),
                kind=kind,
                program_id=program.id,
                phase=phase.id,
                on=notice.on,
                recipients=[],
            )
        report.timers += _sync_timers(session, program, {"phase": phase.id}, wanted, now, actor)
    for run in runs.values():  # a phase that left the definition
        if run.state != "cancelled":
            record(
                session,
                at=now,
                actor=actor,
                kind="phase.cancelled",
                program_id=program.id,
                subject=run.phase,
                before={"state": run.state},
                after={"state": "cancelled"},
            )
            run.state = "cancelled"
            _sync_timers(session, program, {"phase": run.phase}, {}, now, actor)


def _program_timers(session, bundle, program, now, actor, report) -> None:
    """Program-level timers: the scorecard to the supervising office (``[evaluation] send_on``)."""
    evaluation = bundle.definition.evaluation
    tz = ZoneInfo(program.timezone)
    wanted = {}
    if evaluation and evaluation.send_on and evaluation.recipients:
        day = bundle.calendar.next_workday(evaluation.send_on.in_year(program.year))
        recipients = list(bundle.units.directory.expand_all(evaluation.recipients))
        key = f"{program.workflow}/{program.year}/program/scorecard/{day}"
        wanted[key] = Timer(
            key=key,
            fire_at=local_midnight(day, tz),
            kind="scorecard",
            program_id=program.id,
            phase="__program__",
            on=day,
            recipients=recipients,
        )
    report.timers += _sync_timers(session, program, {"phase": "__program__"}, wanted, now, actor)


def _obligation_timers(bundle: Bundle, program: Program, obligation: Obligation, occ: Occurrence) -> dict:
    tz = ZoneInfo(program.timezone)
    task = bundle.definition.task(occ.task)
    assert task is not None
    wanted = {}
    for notice in obligation_notices(
        occ, task, bundle.definition.workflow, bundle.units.directory, bundle.calendar
    ):
        key = f"{obligation.key}/{notice.kind}/{notice.step}/{notice.on}"
        wanted[key] = Timer(
            key=key,
            fire_at=local_midnight(notice.on, tz),
            kind=notice.kind,
            program_id=program.id,
            obligation_id=obligation.id,
            phase=occ.phase,
            step=notice.step,
            on=notice.on,
            recipients=list(notice.to),
        )
    return wanted


def start_program(
    session: Session,
    bundle: Bundle,
    year: int,
    now: datetime,
    *,
    horizon_days: int = 400,
    actor: str = DAEMON,
) -> StartReport:
    """Materialize (or reconcile) the program of ``bundle`` for ``year`` as of ``now``."""
    program = session.exec(
        select(Program).where(Program.workflow == bundle.definition.workflow.id, Program.year == year)
    ).first()
    report = StartReport(program_id=0)
    program = _program(session, bundle, year, now, actor, report)
    report.program_id = program.id
    tz = ZoneInfo(program.timezone)
    today = local_day(now, tz)
    horizon = today + timedelta(days=horizon_days)
    _phase_runs(session, bundle, program, now, actor, report)
    _program_timers(session, bundle, program, now, actor, report)
    occurrences = plan(bundle.definition, bundle.units.directory, year, bundle.calendar, bundle.registers)
    wanted = {obligation_key(program.workflow, year, o): o for o in occurrences}
    existing = {o.key: o for o in session.exec(select(Obligation).where(Obligation.program_id == program.id))}
    for key, occ in wanted.items():
        obligation = existing.get(key)
        if obligation is None:
            if occ.opens > horizon:
                continue
            obligation = Obligation(
                key=key,
                program_id=program.id,
                task=occ.task,
                title=occ.title,
                phase=occ.phase,
                unit=occ.unit,
                lead=list(occ.lead),
                occurrence=occ.occurrence,
                opens=occ.opens,
                due=occ.due,
                updated_at=now,
            )
            session.add(obligation)
            session.flush()
            report.added += 1
            if not report.created:
                record(
                    session,
                    at=now,
                    actor=actor,
                    kind="obligation.added",
                    program_id=program.id,
                    obligation_id=obligation.id,
                    unit=occ.unit,
                    subject=key,
                    after={"opens": str(occ.opens), "due": str(occ.due)},
                )
        else:
            report.moved += _update_obligation(session, obligation, occ, today, now, actor)
        report.timers += _sync_timers(
            session,
            program,
            {"obligation_id": obligation.id},
            _obligation_timers(bundle, program, obligation, occ),
            now,
            actor,
        )
    for key, obligation in existing.items():
        if key not in wanted and obligation.state in OPEN_STATES:
            record(
                session,
                at=now,
                actor=actor,
                kind="obligation.cancelled",
                program_id=program.id,
                obligation_id=obligation.id,
                unit=obligation.unit,
                subject=key,
                before={"state": obligation.state},
                after={"state": "cancelled"},
                detail="no longer in the plan (definition, units or register changed)",
            )
            obligation.state, obligation.updated_at = "cancelled", now
            _sync_timers(session, program, {"obligation_id": obligation.id}, {}, now, actor)
            report.cancelled += 1
    program.materialized_until = horizon
    report.unchanged = len(existing) - report.moved - report.cancelled
    return report


def _update_obligation(
    session, obligation: Obligation, occ: Occurrence, today: date, now: datetime, actor
) -> int:
    fields = {
        "opens": occ.opens,
        "due": occ.due,
        "title": occ.title,
        "phase": occ.phase,
        "lead": list(occ.lead),
    }
    before = {k: getattr(obligation, k) for k in fields}
    revive = obligation.state == "cancelled"
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
