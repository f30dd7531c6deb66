"""The daemon's bookkeeping (synchronous: run in a worker thread, one at a time).

- ``ensure_programs``: start every ``[[programs]]`` entry (idempotent), the new year's program
  when the year turns, and extend the rolling horizon of running programs;
- ``program_ids``, ``warn_undeclared``: the daemon runs the programs ``[[programs]]`` declares (by
  workflow, any year); one started by hand (``duban start``) that config does not declare is not
  run — its timers wait, nothing is sent for it — and is named at every start (``duban status``
  marks it too). Declaring it later catches it up, as after downtime;
- ``release_stale_claims``: messages a dead daemon left ``sending`` go back to ``pending`` (never
  a live one's: on PostgreSQL the standbys send too);
- ``write_heartbeat``: one row per daemon process (role, last tick, status);
- ``record_daemon_event``: daemon lifecycle events in the audit log.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from notifications.labels import EVENT_DETAILS as WORDS
from orchestrator.engine.programs import needs_extension, start_program
from orchestrator.service.config import Settings
from orchestrator.service.runtime import local_today, program_year
from orchestrator.store.audit import DAEMON, record
from orchestrator.store.db import transaction
from orchestrator.store.models import Heartbeat, OutboxMessage, Program
from orchestrator.store.states import OutboxState, ProgramState
from workflows.catalog import Bundle

log = structlog.get_logger("duban.daemon")


@dataclass
class ProgramChanges:
    started: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def ensure_programs(
    engine: Engine,
    settings: Settings,
    bundles: Mapping[str, Bundle],
    now: datetime,
    started: set[tuple[str, int]],
    *,
    reconcile: bool,
) -> ProgramChanges:
    """Start every configured program not yet started by this process (all of them when ``reconcile``).

    Year ``"current"`` is the local year of ``now``: when the year turns, the next call starts the new
    year's program. Then every running program whose rolling horizon has moved is extended.
    ``bundles`` are keyed by the ``[[programs]]`` workflow reference (``load_configured_bundles``).
    """
    changes = ProgramChanges()
    horizon = settings.daemon.horizon_days
    touched: set[tuple[str, int]] = set()
    for entry in settings.programs:
        bundle = bundles[entry.workflow]
        workflow = bundle.definition.workflow
        key = (workflow.id, program_year(entry, local_today(now, workflow.timezone)))
        if key in touched or (key in started and not reconcile):
            continue
        with transaction(engine) as session:
            report = start_program(
                session, bundle, key[1], now, horizon_days=horizon, notify_from=entry.notify_from
            )
        started.add(key)
        touched.add(key)
        summary = f"{key[0]} {key[1]}"
        if report.created:
            changes.started.append(summary)
        if report.added or report.moved or report.cancelled:
            changes.changed.append(summary)
        log.info(
            "program.started" if report.created else "program.reconciled",
            workflow=key[0],
            year=key[1],
            program=report.program_id,
            added=report.added,
            moved=report.moved,
            cancelled=report.cancelled,
            unchanged=report.unchanged,
        )
    by_id = {b.definition.workflow.id: b for b in bundles.values()}
    _extend_horizons(engine, by_id, now, horizon, touched, changes)
    return changes


def _extend_horizons(
    engine: Engine,
    bundles: Mapping[str, Bundle],
    now: datetime,
    horizon: int,
    touched,
    changes: ProgramChanges,
) -> None:
    """Re-run ``start_program`` for each running program whose rolling horizon has moved (about daily)."""
    with Session(engine) as session:
        programs = list(session.exec(select(Program).where(Program.state == ProgramState.RUNNING)))
    for program in programs:
        bundle = bundles.get(program.workflow)
        if bundle is None or (program.workflow, program.year) in touched:
            continue
        if not needs_extension(program, local_today(now, program.timezone), horizon):
            continue
        with transaction(engine) as session:
            report = start_program(session, bundle, program.year, now, horizon_days=horizon)
        if report.added or report.moved or report.cancelled:
            changes.changed.append(f"{program.workflow} {program.year}")
        log.info("program.extended", workflow=program.workflow, year=program.year, added=report.added)


def program_ids(engine: Engine, workflows: Collection[str]) -> list[int]:
    """The ids of the programs of ``workflows`` (any year, any state)."""
    with Session(engine) as session:
        return list(session.exec(select(Program.id).where(Program.workflow.in_(sorted(workflows)))))


def warn_undeclared(engine: Engine, workflows: Collection[str]) -> list[str]:
    """Log each running program whose workflow ``[[programs]]`` does not declare (not run); their names."""
    with Session(engine) as session:
        running = session.exec(
            select(Program).where(
                Program.state == ProgramState.RUNNING, Program.workflow.not_in(sorted(workflows))
            )
        ).all()
    names = [f"{p.workflow} {p.year}" for p in running]
    for program in running:
        log.warning(
            "program.not_run",
            workflow=program.workflow,
            year=program.year,
            program=program.id,
            hint=f'not in config\'s [[programs]]: its timers wait, nothing is sent; add workflow = "{program.workflow}"',
        )
    return names


def release_stale_claims(
    engine: Engine, now: datetime, node: str, gone: Callable[[Collection[str]], set[str]]
) -> list[int]:
    """Messages left ``sending`` by a dead daemon go back to ``pending`` (re-sent with the same Message-ID).

    ``gone`` says which of the other daemons holding claims are dead (``Leadership.gone``: on SQLite
    every other one; on PostgreSQL those whose own lock no session holds). A live daemon's claims
    are never touched: on PostgreSQL the standbys send too. What a dead daemon's claims cannot be
    told apart from (a stuck session) waits for the claims' expiry.
    """
    with transaction(engine) as session:
        sending = OutboxMessage.state == OutboxState.SENDING
        claimers = set(session.exec(select(OutboxMessage.claimed_by).where(sending).distinct()))
        others = {c for c in claimers if c is not None and c != node}
        dead = gone(others) if others else set()
        if not dead and None not in claimers:
            return []
        stale = session.exec(
            select(OutboxMessage.id, OutboxMessage.claimed_by).where(
                sending, OutboxMessage.claimed_by.in_(sorted(dead)) | OutboxMessage.claimed_by.is_(None)
            )
        ).all()
        ids = [outbox_id for outbox_id, _ in stale]
        if not ids:
            return []
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), sending)
            .values(state=OutboxState.PENDING, claimed_by=None, claimed_until=None, next_attempt_at=now)
        )
        record(
            session,
            at=now,
            actor=DAEMON,
            kind="mail.reclaimed",
            subject=node,
            after={"messages": ids, "from": sorted({by or "?" for _, by in stale})},
            detail=f"{WORDS['dead_sender']}；{WORDS['resent']}",
        )
    log.warning("mail.reclaimed", messages=len(ids), dead=sorted(dead))
    return ids


def write_heartbeat(
    engine: Engine, node: str, *, role: str, now: datetime, started_at: datetime, ticked: bool, status: str
) -> None:
    """Upsert this process's heartbeat row (``last_tick_at`` only when a tick was done)."""
    with transaction(engine) as session:
        row = session.exec(select(Heartbeat).where(Heartbeat.node == node)).first()
        if row is None:
            host, _, pid = node.rpartition(":")
            row = Heartbeat(
                node=node, host=host, pid=int(pid), role=role, started_at=started_at, last_seen_at=now
            )
            session.add(row)
        row.role, row.last_seen_at, row.status = role, now, status
        if ticked:
            row.last_tick_at = now


def record_daemon_event(engine: Engine, now: datetime, kind: str, node: str, **fields) -> None:
    with transaction(engine) as session:
        record(session, at=now, actor=DAEMON, kind=kind, subject=node, **fields)
