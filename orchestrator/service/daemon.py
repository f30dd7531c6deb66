"""``duban run``: the daemon. APScheduler drives the clock; the database is the truth.

Lifecycle (systemd ``Type=notify``):

1. open the database (an out-of-date schema is refused), take the lock — on SQLite a second
   daemon refuses to start; on PostgreSQL it stands by and polls until the leader's session dies;
2. load config, definitions, units and registers; start every ``[[programs]]`` entry
   (idempotent); hand back the claims of a dead predecessor; the first tick; ``READY=1``;
3. jobs: a DateTrigger at the next timer (recomputed after every tick), a safety tick every
   ``daemon.tick_interval`` s, the outbox every ``daemon.dispatch_interval`` s;
4. SIGHUP reloads (``RELOADING=1`` … ``READY=1``; a broken file keeps the old state and every
   problem is logged as ``FILE:LINE: message``); SIGTERM/SIGINT stop: no new work, the message
   in flight is finished and committed, ``STOPPING=1``, exit 0.

Signal handlers only set flags; the main loop acts. Ticks run in a worker thread (the loop stays
free for signals and the watchdog), one at a time. An unexpected error in a tick or a dispatch
is logged with its traceback and the next run retries. The daemon reads the time only through its
``Clock``; APScheduler, which sleeps on the wall clock, is given "in N seconds" converted to wall
time, so a shifted test clock (``DUBAN_FAKE_NOW``) works too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from notifications.render import Renderer
from notifications.transport import MaildirTransport, SmtpTransport, Transport
from orchestrator.engine.clock import Clock, SystemClock
from orchestrator.engine.outbox.dispatch import deliver, enqueue, report_failures
from orchestrator.engine.tick import SendPolicy, TickReport, next_fire_at, tick
from orchestrator.evaluation import scoring_hook
from orchestrator.service.config import Settings, load_settings
from orchestrator.service.leader import AlreadyRunning, Leadership, LeadershipLost, leadership_for
from orchestrator.service.logs import Redactor
from orchestrator.service.runtime import load_configured_bundles, local_today, make_renderer, send_policy
from orchestrator.service.systemd import Notifier
from orchestrator.service.upkeep import (
    ProgramChanges,
    ensure_programs,
    record_daemon_event,
    release_stale_claims,
    write_heartbeat,
)
from orchestrator.store.db import open_database
from workflows.catalog import Bundle
from workflows.errors import DefinitionError, DubanError

log = structlog.get_logger("duban.daemon")
DEFAULT_TIMEZONE = "Asia/Shanghai"
STOP_GRACE = 20.0  # seconds to let the work in flight finish (systemd's TimeoutStopSec is 30)
MIN_DELAY = 0.5  # never re-arm the timer job sooner: a timer that did not fire must not spin


# -- what a (re)load produces -----------------------------------------------------------------


@dataclass(frozen=True)
class Runtime:
    """Everything loaded from files: replaced as a whole by a successful reload, never in part."""

    settings: Settings
    bundles: dict[str, Bundle]  # by the [[programs]] workflow reference
    policy: SendPolicy
    renderer: Renderer
    timezone: str


def load_runtime(settings: Settings, on_assumed: Callable[[int, str], None] | None = None) -> Runtime:
    """Load every configured bundle; raises ``DefinitionError`` with every problem of every file."""
    bundles = load_configured_bundles(settings, on_assumed=on_assumed)
    timezone = next((b.definition.workflow.timezone for b in bundles.values()), DEFAULT_TIMEZONE)
    return Runtime(
        settings, bundles, send_policy(settings, bundles), make_renderer(settings, timezone), timezone
    )


def make_transport(settings: Settings) -> Transport:
    """The configured transport; the SMTP password is read now, from its file or the environment."""
    mail = settings.mail
    if mail.transport == "maildir":
        return MaildirTransport(mail.maildir)
    smtp = mail.smtp
    return SmtpTransport(
        host=smtp.host,
        port=smtp.port,
        security=smtp.security,
        username=smtp.username,
        password=smtp.password(),
        timeout=smtp.timeout,
        verify=smtp.verify,
        ca_file=smtp.ca_file,
    )


def secrets_of(settings: Settings) -> list[str]:
    """The secret values that must never reach a log line (the SMTP password, when it can be read)."""
    try:
        password = settings.mail.smtp.password()
    except DubanError:
        return []
    return [password] if password else []


def node_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def running_status(processed: int, next_at: datetime | None, timezone: str) -> str:
    """``运行中：已处理 N 个定时器，下一次 2026-06-10 00:00`` (local time)."""
    when = next_at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M") if next_at else "无"
    return f"运行中：已处理 {processed} 个定时器，下一次 {when}"


# -- the daemon --------------------------------------------------------------------------------


@dataclass
class TickOutcome:
    report: TickReport
    next_at: datetime | None
    status: str
    programs: ProgramChanges


class Daemon:
    """One daemon process. ``await main()`` returns the exit code (0 after a clean stop)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        redactor: Redactor | None = None,
        once: bool = False,
    ) -> None:
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.redactor = redactor
        self.once = once
        self.node = node_name()
        self.settings = settings
        self.runtime: Runtime | None = None
        self.engine: Engine | None = None
        self.leadership: Leadership | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.leading = False
        self.processed = 0
        self.started_at = self.clock.now()
        self._started_programs: set[tuple[str, int]] = set()
        self._db_lock = asyncio.Lock()
        self._inflight: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._stop_reason: str | None = None
        self._reload_requested = False
        self._stopping = False
        self._exit_code = 0
        self._ready = False
        self._next_at: datetime | None = None
        self._next_ping = 0.0
        self._failures_day = None

    # signals: flags only ------------------------------------------------------------------

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self._reload_requested = True
        else:
            self._stop_reason = self._stop_reason or signal.Signals(signum).name
            self._stopping = True  # read by the work in flight: finish the current message, take no more
        self._wake.set()

    def _request_stop(self, reason: str, exit_code: int = 0) -> None:
        self._stop_reason = self._stop_reason or reason
        self._exit_code = self._exit_code or exit_code
        self._wake.set()

    # the main loop -------------------------------------------------------------------------

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        for signum in handled:
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            await self._open()
            if self.once:
                return await self._run_once()
            while self._stop_reason is None:
                if not self.leading:
                    await self._try_to_lead()
                await self._wait()
                if self._reload_requested and self._stop_reason is None:
                    self._reload_requested = False
                    await self._reload()
            log.info("daemon.stopping", reason=self._stop_reason)
        finally:
            await self._shutdown()
            for signum in handled:
                loop.remove_signal_handler(signum)
        return self._exit_code

    async def _open(self) -> None:
        url = self.settings.database.url
        self.notifier.status("正在启动：打开数据库")
        self.engine = await asyncio.to_thread(open_database, url)
        log.info(
            "daemon.starting",
            node=self.node,
            database=self.engine.url.render_as_string(hide_password=True),
            config=str(self.settings.path) if self.settings.path else None,
        )
        self.leadership = leadership_for(self.engine)
        if not self.leadership.standby_possible:
            self.leadership.try_acquire()  # SQLite: raises AlreadyRunning naming the holder
        self.notifier.status("正在启动：载入配置、方案和单位")
        self.runtime = await asyncio.to_thread(load_runtime, self.settings, self._on_assumed)
        if not self.settings.programs:
            log.warning("daemon.no_programs", hint="add [[programs]] entries to the config")

    def _on_assumed(self, year: int, message: str) -> None:
        log.warning("calendar.assumed", year=year, detail=message)

    async def _wait(self) -> None:
        """Sleep until a signal, the next watchdog ping, or (standing by) the next poll."""
        now = time.monotonic()
        timeouts = []
        interval = self.notifier.watchdog_interval
        if interval:
            timeouts.append(max(self._next_ping - now, 0.0))
        if not self.leading:
            timeouts.append(self.settings.daemon.standby_poll)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=min(timeouts) if timeouts else None)
        self._wake.clear()
        self._ping_watchdog()

    def _ping_watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval and time.monotonic() >= self._next_ping:
            self.notifier.watchdog()
            self._next_ping = time.monotonic() + interval

    # leadership ----------------------------------------------------------------------------

    async def _try_to_lead(self) -> None:
        assert self.leadership is not None and self.engine is not None
        if await asyncio.to_thread(self.leadership.try_acquire):
            self.leading = True
            await self._become_leader()
            return
        status = f"待命：另一个 duban 实例正在处理，每 {self.settings.daemon.standby_poll:g} 秒检查一次"
        try:
            await asyncio.to_thread(self._heartbeat, "standby", False, status)
        except SQLAlchemyError as exc:
            log.warning("heartbeat.failed", error=str(exc).splitlines()[0])
        if not self._ready:
            log.info("daemon.standby", node=self.node)
            self._send_ready(status)
        else:
            self.notifier.status(status)

    async def _become_leader(self) -> None:
        log.info("daemon.leader", node=self.node)
        self.notifier.status("正在启动：启动方案并处理到期的定时器")
        await self._guarded("takeover", self._takeover)
        await self._tick()
        if self._stopping:
            return
        self._start_scheduler()
        status = running_status(self.processed, self._next_at, self._timezone)
        self._send_ready(status)
        log.info("daemon.ready", node=self.node, status=status)

    def _takeover(self) -> None:
        assert self.engine is not None and self.runtime is not None
        now = self.clock.now()
        record_daemon_event(self.engine, now, "daemon.leader", self.node, after={"role": "leader"})
        release_stale_claims(self.engine, now, self.node)
        ensure_programs(
            self.engine,
            self.runtime.settings,
            self.runtime.bundles,
            now,
            self._started_programs,
            reconcile=True,
        )

    def _send_ready(self, status: str) -> None:
        self.notifier.ready(status)
        self._ready = True

    @property
    def _timezone(self) -> str:
        return self.runtime.timezone if self.runtime else DEFAULT_TIMEZONE

    # jobs ----------------------------------------------------------------------------------

    def _start_scheduler(self) -> None:
        tz = ZoneInfo(self._timezone)
        daemon = self.settings.daemon
        scheduler = AsyncIOScheduler(
            timezone=tz, job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1}
        )
        scheduler.add_job(
            self._tick_job,
            IntervalTrigger(seconds=daemon.tick_interval, timezone=tz),
            id="tick",
            name="safety tick",
        )
        scheduler.add_job(
            self._dispatch_job,
            IntervalTrigger(seconds=daemon.dispatch_interval, timezone=tz),
            id="dispatch",
            name="outbox",
            next_run_time=datetime.now(tz),
        )
        scheduler.start()
        self.scheduler = scheduler
        self._arm_timer_job(self._next_at)

    def _arm_timer_job(self, next_at: datetime | None) -> None:
        """The DateTrigger job at the next timer's ``fire_at`` (our clock's time, turned into wall time)."""
        self._next_at = next_at
        scheduler = self.scheduler
        if scheduler is None or self._stopping:
            return
        if next_at is None:
            if scheduler.get_job("tick-at") is not None:
                scheduler.remove_job("tick-at")
            return
        delay = max((next_at - self.clock.now()).total_seconds(), MIN_DELAY)
        run_date = datetime.now(UTC) + timedelta(seconds=delay)  # APScheduler sleeps on the wall clock
        scheduler.add_job(
            self._tick_job,
            DateTrigger(run_date=run_date, timezone=ZoneInfo(self._timezone)),
            id="tick-at",
            name="tick at the next timer",
            replace_existing=True,
        )

    async def _tick(self) -> bool:
        """One tick in a worker thread; errors are logged (with the traceback), never raised."""
        if self._stopping:
            return False
        outcome = await self._guarded("tick", self._tick_sync)
        if outcome is None:
            return False
        report = outcome.report
        programs = {"started": outcome.programs.started, "reconciled": outcome.programs.changed}
        if report.fired or report.skipped or report.items or any(programs.values()):
            log.info(
                "tick.done",
                fired=report.fired,
                skipped=report.skipped,
                items=report.items,
                transitions=report.transitions,
                next=outcome.next_at.isoformat() if outcome.next_at else None,
                **{k: v for k, v in programs.items() if v},
            )
        else:
            log.debug("tick.idle", next=outcome.next_at.isoformat() if outcome.next_at else None)
        self.notifier.status(outcome.status)
        self._arm_timer_job(outcome.next_at)
        return True

    def _tick_sync(self) -> TickOutcome:
        assert self.engine is not None and self.runtime is not None and self.leadership is not None
        self.leadership.check()
        runtime = self.runtime
        now = self.clock.now()
        programs = ensure_programs(
            self.engine, runtime.settings, runtime.bundles, now, self._started_programs, reconcile=False
        )
        report = tick(self.engine, now, runtime.policy)
        next_at = next_fire_at(self.engine)
        self.processed += report.fired + report.skipped
        status = running_status(self.processed, next_at, runtime.timezone)
        self._heartbeat("leader", True, status, now)
        return TickOutcome(report, next_at, status, programs)

    def _heartbeat(self, role: str, ticked: bool, status: str, now: datetime | None = None) -> None:
        assert self.engine is not None
        write_heartbeat(
            self.engine,
            self.node,
            role=role,
            now=now or self.clock.now(),
            started_at=self.started_at,
            ticked=ticked,
            status=status,
        )

    async def _job(self, work: Callable) -> None:
        """A scheduler job: tracked, so that a stop waits for it instead of cancelling it."""
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await work()
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _tick_job(self) -> None:
        await self._job(self._tick)

    async def _dispatch_job(self) -> None:
        await self._job(self._dispatch)

    async def _guarded(self, what: str, work: Callable, *args):
        """Run blocking database work in a thread, one at a time; log failures and return None."""
        try:
            async with self._db_lock:
                if self._stopping:
                    return None
                return await asyncio.to_thread(work, *args)
        except LeadershipLost as exc:
            log.error("leader.lost", error=str(exc))
            self._request_stop("leadership lost", exit_code=1)
        except SQLAlchemyError as exc:
            log.error(f"{what}.failed", error=str(exc).splitlines()[0], exc_info=True)
        except Exception:
            log.exception(f"{what}.failed")
        return None

    async def _dispatch(self) -> bool:
        """Enqueue due items, deliver due messages; finishes the message in flight when asked to stop."""
        if self._stopping or self.runtime is None or self.engine is None:
            return False
        runtime = self.runtime
        try:
            queued = await self._guarded(
                "enqueue", enqueue, self.engine, self.clock.now(), runtime.bundles, runtime.renderer
            )
            if self._stopping:
                return False
            report = await deliver(
                self.engine,
                self.clock,
                make_transport(runtime.settings),
                runtime.renderer,
                runtime.bundles,
                runtime.settings.mail,
                node=self.node,
                stop=lambda: self._stopping,
                scorecard=scoring_hook.scorecard_hook(),
            )
            if queued or report.sent or report.retried or report.failed:
                log.info(
                    "dispatch.done",
                    queued=queued or 0,
                    sent=report.sent,
                    retried=report.retried,
                    failed=report.failed,
                    refused=report.refused,
                )
            await self._daily_failure_report(runtime)
            return True
        except DubanError as exc:  # e.g. an unreadable password file: one line, retried next run
            log.error("dispatch.failed", error=str(exc))
        except SQLAlchemyError as exc:
            log.error("dispatch.failed", error=str(exc).splitlines()[0], exc_info=True)
        except Exception:
            log.exception("dispatch.failed")
        return False

    async def _daily_failure_report(self, runtime: Runtime) -> None:
        now = self.clock.now()
        today = local_today(now, runtime.timezone)
        if self._failures_day == today or not runtime.settings.mail.admin or self._stopping:
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

    # reload --------------------------------------------------------------------------------

    async def _reload(self) -> None:
        """SIGHUP: config, definitions, units, registers; reconcile. A broken file keeps the old state."""
        self.notifier.reloading("正在重新加载配置、方案和单位")
        log.info("reload.started")
        old = self.settings
        path = old.path
        try:
            settings = await asyncio.to_thread(load_settings, path, required=path is not None)
            runtime = await asyncio.to_thread(load_runtime, settings, self._on_assumed)
        except DefinitionError as exc:
            for problem in exc.problems:
                log.error("reload.problem", problem=str(problem))
            log.error("reload.failed", problems=len(exc.problems), kept="the previous configuration")
            self._reload_done(f"重新加载失败（{len(exc.problems)} 个问题，见日志），沿用原配置")
            return
        except DubanError as exc:
            log.error("reload.failed", error=str(exc), kept="the previous configuration")
            self._reload_done("重新加载失败（见日志），沿用原配置")
            return
        if settings.database.url != old.database.url:
            log.warning("reload.database_ignored", hint="a new database.url takes effect on restart")
            settings = settings.model_copy(update={"database": old.database})
            runtime = replace(runtime, settings=settings)
        self.settings, self.runtime = settings, runtime
        if self.redactor is not None:
            self.redactor.update([*self.redactor.secrets, *secrets_of(settings)])
        if self.leading:
            self._reschedule(old, settings)
            changes = await self._guarded("reload", self._reconcile)
            await self._tick()
            if changes is None:  # the files were fine, the database was not: logged by _guarded
                self._reload_done("重新加载后同步方案失败（见日志），下一次定时处理时重试")
                return
        log.info("reload.done", programs=[p.workflow for p in settings.programs])
        self._reload_done(None)

    def _reconcile(self) -> ProgramChanges:
        assert self.engine is not None and self.runtime is not None
        now = self.clock.now()
        self._started_programs.clear()  # should this fail halfway, the next tick reconciles the rest
        changes = ensure_programs(
            self.engine,
            self.runtime.settings,
            self.runtime.bundles,
            now,
            self._started_programs,
            reconcile=True,
        )
        record_daemon_event(
            self.engine,
            now,
            "daemon.reloaded",
            self.node,
            after={
                "config": str(self.settings.path) if self.settings.path else None,
                "changed": changes.changed,
            },
        )
        return changes

    def _reschedule(self, old: Settings, new: Settings) -> None:
        if self.scheduler is None:
            return
        tz = ZoneInfo(self._timezone)
        for job, before, after in (
            ("tick", old.daemon.tick_interval, new.daemon.tick_interval),
            ("dispatch", old.daemon.dispatch_interval, new.daemon.dispatch_interval),
        ):
            if before != after:
                self.scheduler.reschedule_job(job, trigger=IntervalTrigger(seconds=after, timezone=tz))

    def _reload_done(self, problem: str | None) -> None:
        status = running_status(self.processed, self._next_at, self._timezone) if self.leading else "待命"
        self.notifier.ready(f"{status}（{problem}）" if problem else status)

    # --once --------------------------------------------------------------------------------

    async def _run_once(self) -> int:
        assert self.leadership is not None
        if not await asyncio.to_thread(self.leadership.try_acquire):
            raise AlreadyRunning("another duban daemon leads on this database; `run --once` needs the lead")
        self.leading = True
        await self._guarded("takeover", self._takeover)
        ticked = await self._tick()
        dispatched = await self._dispatch()
        return 0 if ticked and dispatched else 1

    # stop ----------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self._stopping = True
        if self._ready:
            self.notifier.stopping("正在停止：完成正在发送的邮件")
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()
        current = asyncio.current_task()
        inflight = [t for t in self._inflight if t is not current and not t.done()]
        if inflight:
            _, pending = await asyncio.wait(inflight, timeout=STOP_GRACE)
            if pending:
                log.warning("daemon.stop_timeout", unfinished=len(pending))
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.engine is not None and self.leading:
            try:
                await asyncio.to_thread(self._heartbeat, "stopped", False, "已停止")
                await asyncio.to_thread(
                    record_daemon_event, self.engine, self.clock.now(), "daemon.stopped", self.node
                )
            except SQLAlchemyError as exc:
                log.warning("heartbeat.failed", error=str(exc).splitlines()[0])
        if self.leadership is not None:
            self.leadership.release()
        if self.engine is not None:
            self.engine.dispose()
        self.notifier.close()
        if self._ready or self.once:
            log.info("daemon.stopped", node=self.node, exit_code=self._exit_code)


def run(
    settings: Settings,
    *,
    clock: Clock | None = None,
    once: bool = False,
    notifier: Notifier | None = None,
    redactor: Redactor | None = None,
) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT; returns the exit code (0 = clean stop).

    Raises ``DubanError`` (one line for the user) when it cannot start: an out-of-date schema
    (``SchemaError``), another daemon on the same SQLite file (``AlreadyRunning``), broken files.
    """
    daemon = Daemon(settings, clock=clock, notifier=notifier, redactor=redactor, once=once)
    return asyncio.run(daemon.main())


__all__ = ["Daemon", "Runtime", "load_runtime", "make_transport", "run", "running_status", "secrets_of"]
