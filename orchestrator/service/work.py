"""A daemon's work on the database. The leader's: take over, tick, dispatch, the group robots, the
daily failure report, reconcile. A standby's (PostgreSQL): its share of the due emails (``share``),
nothing else.

The group robots are delivered apart from the email (``robots``, their own scheduler job): one
delivery per robot with due messages, each its own task, at most ``ROBOT_SENDERS`` at once, a robot
never twice at once. So a robot that answers slowly, or never, holds neither the emails (whose
retries go out on time) nor another robot; its own requests end at their deadline (``[im] timeout``).

Blocking database work runs in a worker thread, one piece at a time (``guarded``): the event loop
stays free for signals and the watchdog. An unexpected error is logged with its traceback and the
next run retries; a lost PostgreSQL lead stops the daemon (exit 1).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from notifications.render_pool import RenderPool
from orchestrator.engine.clock import Clock, wall_time
from orchestrator.engine.outbox import (
    DeliverReport,
    deliver,
    deliver_robots,
    due_robot_channels,
    enqueue,
    report_failures,
)
from orchestrator.engine.outbox.waiting import waiting
from orchestrator.engine.tick import TickReport, next_fire_at, tick
from orchestrator.evaluation.scoring import scorecard_attachment
from orchestrator.service.leader import Leadership, LeadershipLost
from orchestrator.service.lifecycle import Lifecycle
from orchestrator.service.runtime import (
    Runtime,
    local_today,
    mail_destination,
    make_robot_transport,
    make_transport,
)
from orchestrator.service.upkeep import (
    ProgramChanges,
    ensure_programs,
    program_ids,
    record_daemon_event,
    release_stale_claims,
    warn_undeclared,
    write_heartbeat,
)
from orchestrator.store.states import OutboxKind
from workflows.errors import DubanError

log = structlog.get_logger("duban.daemon")
T = TypeVar("T")
ROBOT_SENDERS = 4  # robots delivered at once (each its own connection to the database and the platform)


def _logged(event: str, report: DeliverReport, **counts: int) -> bool:
    """Log what an outbox run did under ``event`` (nothing when it did nothing); False when every
    delivery it tried failed (nothing sent, some retried or failed)."""
    if any(counts.values()) or report.sent or report.retried or report.failed:
        log.info(
            event,
            **counts,
            sent=report.sent,
            retried=report.retried,
            failed=report.failed,
            refused=report.refused,
        )
    return bool(report.sent) or not (report.retried or report.failed)


def node_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def running_status(processed: int, next_at: datetime | None, timezone: str) -> str:
    """``运行中：已处理 N 个定时器，下一次 2026-06-10 00:00`` (local time)."""
    when = wall_time(next_at, ZoneInfo(timezone)) if next_at else "无"
    return f"运行中：已处理 {processed} 个定时器，下一次 {when}"


@dataclass
class TickOutcome:
    report: TickReport
    next_at: datetime | None
    status: str
    programs: ProgramChanges


class Work:
    """One daemon's database work; ``runtime`` is swapped whole by a reload."""

    def __init__(
        self, engine: Engine, runtime: Runtime, clock: Clock, leadership: Leadership, life: Lifecycle
    ) -> None:
        self.engine, self.runtime, self.clock = engine, runtime, clock
        self.leadership, self.life = leadership, life
        self.node = node_name()
        self.started_at = clock.now()
        self.processed = 0
        self.shared = 0  # messages sent as a standby
        self.started_programs: set[tuple[str, int]] = set()
        self._db_lock = asyncio.Lock()
        self._failures_day: date | None = None
        # the render process: started by the first big delivery (a day of tens of messages never needs it)
        self.render_pool = RenderPool() if (os.cpu_count() or 1) > 1 else None
        self.robot_runs: dict[str, asyncio.Task] = {}  # robot channel → its delivery in flight
        self._robot_slots = asyncio.Semaphore(ROBOT_SENDERS)

    async def guarded(self, what: str, work: Callable, *args):
        """Run blocking database work in a thread, one at a time; log failures and return None."""
        try:
            async with self._db_lock:
                if self.life.stopping:
                    return None
                return await asyncio.to_thread(work, *args)
        except LeadershipLost as exc:
            log.error("leader.lost", error=str(exc))
            self.life.request_stop("leadership lost", exit_code=1)
        except SQLAlchemyError as exc:
            log.error(f"{what}.failed", error=str(exc).splitlines()[0], exc_info=True)
        except Exception:
            log.exception(f"{what}.failed")
        return None

    def takeover(self) -> None:
        """Just became the leader: record it, hand back a dead predecessor's claims, start programs."""
        now = self.clock.now()
        record_daemon_event(self.engine, now, "daemon.leader", self.node, after={"role": "leader"})
        release_stale_claims(self.engine, now, self.node, self.leadership.gone)
        self._ensure_programs(now, reconcile=True)
        warn_undeclared(self.engine, self.runtime.workflows)

    def release_dead_claims(self) -> None:
        """The leader, before each dispatch: hand back what daemons that died had claimed (never a
        live one's), so their messages go out now rather than when the claims expire."""
        release_stale_claims(self.engine, self.clock.now(), self.node, self.leadership.gone)

    def tick(self) -> TickOutcome:
        """Start what config declares, then fire the due timers of the programs it declares (a program
        started by hand and not in ``[[programs]]`` is not run: its timers wait, ``status`` says so)."""
        self.leadership.check()
        now = self.clock.now()
        programs = self._ensure_programs(now, reconcile=False)
        run = self.run_programs()
        report = tick(self.engine, now, self.runtime.policy, programs=run)
        next_at = next_fire_at(self.engine, run)
        self.processed += report.fired + report.skipped
        status = running_status(self.processed, next_at, self.runtime.timezone)
        self.heartbeat("leader", True, status, now)
        return TickOutcome(report, next_at, status, programs)

    def run_programs(self) -> list[int]:
        """The ids of the programs this daemon runs: those whose workflow ``[[programs]]`` declares."""
        return program_ids(self.engine, self.runtime.workflows)

    def enqueue(self, runtime: Runtime) -> int:
        return enqueue(self.engine, self.clock.now(), runtime.bundles, runtime.renderer, self.run_programs())

    def reconcile(self) -> ProgramChanges:
        """After a reload: every program reconciled with the new files, and a ``daemon.reloaded`` event."""
        now = self.clock.now()
        self.started_programs.clear()  # should this fail halfway, the next tick reconciles the rest
        changes = self._ensure_programs(now, reconcile=True)
        settings = self.runtime.settings
        after = {"config": str(settings.path) if settings.path else None, "changed": changes.changed}
        record_daemon_event(self.engine, now, "daemon.reloaded", self.node, after=after)
        return changes

    def heartbeat(self, role: str, ticked: bool, status: str, now: datetime | None = None) -> None:
        write_heartbeat(
            self.engine,
            self.node,
            role=role,
            now=now or self.clock.now(),
            started_at=self.started_at,
            ticked=ticked,
            status=status,
        )

    def outlook(self) -> dict:
        """What happens next, for the start line of the log: where emails go (never a password),
        the send window, the next send time and how many notices and emails wait for it."""
        now = self.clock.now()
        settings = self.runtime.settings
        with Session(self.engine) as session:
            pending = waiting(session, now)
        tz = ZoneInfo(self.runtime.timezone)
        next_at = (
            pending.next_send_at.astimezone(tz).isoformat(timespec="minutes")
            if pending.next_send_at
            else None
        )
        return {
            **mail_destination(settings),
            "send_window": settings.mail.send_window,
            "next_send_at": next_at,
            "notices_waiting": pending.notices,
            "messages_waiting": pending.messages,
        }

    def _ensure_programs(self, now: datetime, *, reconcile: bool) -> ProgramChanges:
        runtime = self.runtime
        return ensure_programs(
            self.engine, runtime.settings, runtime.bundles, now, self.started_programs, reconcile=reconcile
        )

    async def dispatch(self) -> bool:
        """The leader's outbox run: hand back dead daemons' claims, enqueue due items, deliver due
        emails, the daily failure report (the robots are their own job: ``robots``). Finishes the
        message in flight when asked to stop.

        False when it failed, or when every delivery it tried failed (nothing sent, some retried or
        failed): ``run --once`` exits 1 then.
        """
        if self.life.stopping:
            return False
        return bool(await self._caught("dispatch", self._lead_dispatch(self.runtime)))

    async def _lead_dispatch(self, runtime: Runtime) -> bool:
        await self.guarded("reclaim", self.release_dead_claims)
        queued = await self.guarded("enqueue", self.enqueue, runtime)
        if self.life.stopping:
            return False
        report = await self._deliver(runtime, (OutboxKind.DIGEST, OutboxKind.FAILURE_REPORT))
        delivered = _logged("dispatch.done", report, queued=queued or 0)
        await self._daily_failure_report(runtime)
        return delivered

    async def share(self) -> bool:
        """A standby's outbox run (PostgreSQL): due digests claimed in small batches and sent, beside
        the leader's. Never a tick, an enqueue (only the leader makes outbox rows), a group robot
        (their pacing is one run's) or the failure report. Only while the others can see this daemon
        alive (``Leadership.present``): otherwise they could hand its claims back mid-send.
        """
        if self.life.stopping or not self.leadership.present():
            return False
        report = await self._caught("share", self._deliver(self.runtime, (OutboxKind.DIGEST,)))
        if report is None:
            return False
        self.shared += report.sent
        return _logged("dispatch.shared", report)

    @staticmethod
    async def _caught(what: str, work: Awaitable[T]) -> T | None:
        """``await work``; a failure is logged as ``{what}.failed`` and gives None (the next run retries)."""
        try:
            return await work
        except DubanError as exc:  # e.g. an unreadable password file: one line
            log.error(f"{what}.failed", error=str(exc))
        except SQLAlchemyError as exc:
            log.error(f"{what}.failed", error=str(exc).splitlines()[0], exc_info=True)
        except Exception:
            log.exception(f"{what}.failed")
        return None

    async def _deliver(self, runtime: Runtime, kinds: tuple[str, ...]) -> DeliverReport:
        return await deliver(
            self.engine,
            self.clock,
            make_transport(runtime.settings),
            runtime.renderer,
            runtime.bundles,
            runtime.settings.mail,
            node=self.node,
            stop=lambda: self.life.stopping,
            scorecard=scorecard_attachment,
            window=runtime.policy,
            kinds=kinds,
            pool=self.render_pool if runtime.settings.mail.render_process else None,
        )

    async def robots(self) -> list[asyncio.Task]:
        """The leader's robot run: a delivery for each robot with due messages that has none in
        flight, each its own task (at most ``ROBOT_SENDERS`` sending at once); the tasks started.
        The caller does not wait for them: a slow robot holds only itself."""
        runtime = self.runtime
        if not runtime.robots or self.life.stopping:
            return []
        channels = await self.guarded(
            "robots", due_robot_channels, self.engine, self.clock.now(), runtime.policy
        )
        started = []
        for channel in channels or ():
            if channel in self.robot_runs:
                continue
            task = asyncio.create_task(self._robot(runtime, channel), name=f"robot {channel}")
            self.robot_runs[channel] = task
            task.add_done_callback(lambda _, c=channel: self.robot_runs.pop(c, None))
            started.append(task)
        return started

    async def _robot(self, runtime: Runtime, channel: str) -> DeliverReport | None:
        """One robot's due messages: their own claims and outcomes."""
        async with self._robot_slots:
            if self.life.stopping:
                return None
            report = await self._caught(
                "robots",
                deliver_robots(
                    self.engine,
                    self.clock,
                    make_robot_transport(runtime.settings, runtime.robots),
                    runtime.bundles,
                    runtime.settings.mail,
                    links=runtime.renderer.link_for,  # the unit's portal page (None: the office's contact)
                    node=self.node,
                    stop=lambda: self.life.stopping,
                    window=runtime.policy,
                    channel=channel,
                ),
            )
        if report is not None and (
            report.sent or report.retried or report.failed or report.paced or report.held
        ):
            log.info(
                "dispatch.robots",
                channel=channel,
                sent=report.sent,
                retried=report.retried,
                failed=report.failed,
                paced=report.paced,
                held=report.held,
            )
        return report

    async def _daily_failure_report(self, runtime: Runtime) -> None:
        today = local_today(self.clock.now(), runtime.timezone)
        if self._failures_day == today or not runtime.settings.mail.admin or self.life.stopping:
            return
        self._failures_day = today
        listed = await report_failures(
            self.engine,
            self.clock,
            make_transport(runtime.settings),
            runtime.settings.mail,
            timezone=runtime.timezone,
            node=self.node,
        )
        if listed:
            log.warning("mail.failures_reported", messages=listed, to=runtime.settings.mail.admin)
