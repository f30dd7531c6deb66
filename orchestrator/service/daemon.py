"""``duban run``: the daemon. APScheduler drives the clock; the database is the truth.

Lifecycle (systemd ``Type=notify``):

1. open the database (an out-of-date schema is refused), take the lock — on SQLite a second
   daemon refuses to start; on PostgreSQL it stands by, sends its share of the due emails (never
   a tick, never an enqueue: ``Work.share``), and polls every ``daemon.standby_poll`` s until the
   leader's session dies;
2. load config, definitions, units and registers; start every ``[[programs]]`` entry
   (idempotent); hand back the claims of a dead predecessor; the first tick; ``READY=1``;
3. jobs (scheduling.py): a DateTrigger at the next timer (recomputed after every tick), a safety
   tick every ``daemon.tick_interval`` s, the outbox every ``daemon.dispatch_interval`` s, and as
   often, apart from it, the group robots (each robot its own delivery: ``Work.robots``);
4. SIGHUP reloads (reload.py: ``RELOADING=1`` … ``READY=1``; a broken file keeps the old state
   and every problem is logged as ``FILE:LINE: message``); SIGTERM/SIGINT stop: no new work, the
   message in flight is finished and committed, ``STOPPING=1``, exit 0.

The pieces: ``Lifecycle`` (signals as flags, systemd, the watchdog), ``Leadership`` (leader.py),
``Jobs`` (the scheduler), ``Work`` (what the leader, or a standby, does on the database), and this
loop that ties them together. The daemon reads the time only through its ``Clock``.
"""

from __future__ import annotations

import asyncio
import zoneinfo

import structlog
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.engine.clock import Clock, SystemClock
from orchestrator.service import reload
from orchestrator.service.config import Settings
from orchestrator.service.leader import AlreadyRunning, Leadership, leadership_for
from orchestrator.service.lifecycle import Lifecycle
from orchestrator.service.logs import Redactor
from orchestrator.service.runtime import (
    load_runtime,
    log_unit_warnings,
    make_transport,
    program_calendar_warnings,
    require_link_key,
    secrets_of,
)
from orchestrator.service.scheduling import Jobs
from orchestrator.service.systemd import Notifier
from orchestrator.service.upkeep import record_daemon_event
from orchestrator.service.work import Work, node_name, running_status
from orchestrator.store.db import open_database
from workflows.errors import DubanError

log = structlog.get_logger("duban.daemon")
STOP_GRACE = 20.0  # seconds to let the work in flight finish (systemd's TimeoutStopSec is 30)


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
        self.settings, self.redactor, self.once = settings, redactor, once
        self.life = Lifecycle(notifier or Notifier())
        self.leadership: Leadership | None = None
        self.work: Work | None = None
        self.jobs: Jobs | None = None
        self.leading = False
        self._next_at = None

    async def main(self) -> int:
        with self.life.signals():
            try:
                try:
                    await self._open()
                except DubanError as exc:  # e.g. AlreadyRunning: daemon.stopped logs the real code
                    self.life.exit_code = exc.exit_code
                    raise
                if self.once:
                    return await self._run_once()
                while self.life.stop_reason is None:
                    if not self.leading:
                        await self._try_to_lead()
                    await self.life.wait(None if self.leading else self.settings.daemon.standby_poll)
                    if self.life.take_reload():
                        await self._reload()
                log.info("daemon.stopping", reason=self.life.stop_reason)
            finally:
                await self._shutdown()
        return self.life.exit_code

    async def _open(self) -> None:
        require_link_key(self.settings)  # before anything: no email goes out without its link
        self.life.notifier.status("正在启动：打开数据库")
        engine = await asyncio.to_thread(open_database, self.settings.database.url)
        log.info(
            "daemon.starting",
            node=node_name(),
            database=engine.url.render_as_string(hide_password=True),
            config=str(self.settings.path) if self.settings.path else None,
        )
        self.leadership = leadership_for(engine, node_name())
        if not self.leadership.standby_possible:
            self.leadership.try_acquire()  # SQLite: raises AlreadyRunning naming the holder
        self.life.notifier.status("正在启动：载入配置、方案和单位")
        runtime = await asyncio.to_thread(load_runtime, self.settings, _on_assumed)
        log_unit_warnings(runtime)
        self.work = Work(engine, runtime, self.clock, self.leadership, self.life)
        if not self.settings.programs:
            log.warning("daemon.no_programs", hint="add [[programs]] entries to the config")

    # leadership ----------------------------------------------------------------------------

    async def _try_to_lead(self) -> None:
        assert self.leadership is not None and self.work is not None
        if await asyncio.to_thread(self.leadership.try_acquire):
            self.leading = True
            await self._become_leader()
            return
        status = self._standby_status()
        try:
            await asyncio.to_thread(self.work.heartbeat, "standby", False, status)
        except SQLAlchemyError as exc:
            log.warning("heartbeat.failed", error=str(exc).splitlines()[0])
        if not self.life.ready:
            log.info("daemon.standby", node=self.work.node)
            self._start_jobs(leading=False)  # a standby sends too: the outbox job alone
            self.life.send_ready(status)
        else:
            self.life.notifier.status(status)

    def _standby_status(self) -> str:
        assert self.work is not None
        poll = self.settings.daemon.standby_poll
        return (
            f"待命：另一个 duban 实例负责定时处理，本实例协助发送邮件（已发送 {self.work.shared} 封），"
            f"每 {poll:g} 秒检查一次是否接替"
        )

    def _start_jobs(self, *, leading: bool) -> None:
        assert self.work is not None
        self.jobs = Jobs(self.clock, self.work.runtime.timezone, self._tick, self._dispatch, self._robots)
        self.jobs.start(self.settings.daemon, self._next_at, leading=leading)

    async def _dispatch(self) -> bool:
        """The outbox job: the leader's whole run, or a standby's share of the emails."""
        assert self.work is not None
        return await (self.work.dispatch() if self.leading else self.work.share())

    async def _robots(self) -> None:
        """The robots job (the leader's): start the robots' deliveries; a stop waits for them."""
        assert self.work is not None
        started = await self.work.robots()
        if self.jobs is not None:
            self.jobs.adopt(started)

    async def _become_leader(self) -> None:
        assert self.work is not None
        log.info("daemon.leader", node=self.work.node)
        self.life.notifier.status("正在启动：启动方案并处理到期的定时器")
        await self.work.guarded("takeover", self.work.takeover)
        await self._tick()
        if self.life.stopping:
            return
        if self.jobs is None:
            self._start_jobs(leading=True)
        else:  # it was a standby: its outbox job goes on, the ticks join it
            self.jobs.lead(self.settings.daemon, self._next_at)
        status = self._status()
        self.life.send_ready(status)
        log.info("daemon.ready", node=self.work.node, status=status)
        await self._say_what_happens_next()

    async def _say_what_happens_next(self) -> None:
        """One line: where emails go, the send window, the next send time, what waits for it; and the
        years whose make-up working days are unknown, again (loudly, at every start)."""
        assert self.work is not None
        try:
            outlook = await asyncio.to_thread(self.work.outlook)
        except SQLAlchemyError as exc:
            log.warning("daemon.outlook_failed", error=str(exc).splitlines()[0])
            return
        log.info("mail.outlook", **outlook)
        warnings = await asyncio.to_thread(program_calendar_warnings, self.settings, self.clock.now())
        for message in warnings:
            log.warning("calendar.assumed", detail=message)

    def _status(self) -> str:
        assert self.work is not None
        return running_status(self.work.processed, self._next_at, self.work.runtime.timezone)

    # the tick ------------------------------------------------------------------------------

    async def _tick(self) -> bool:
        """One tick in a worker thread; errors are logged (with the traceback), never raised."""
        assert self.work is not None
        if self.life.stopping:
            return False
        outcome = await self.work.guarded("tick", self.work.tick)
        if outcome is None:
            return False
        report, next_at = outcome.report, outcome.next_at
        programs = {"started": outcome.programs.started, "reconciled": outcome.programs.changed}
        zone = zoneinfo.ZoneInfo(self.work.runtime.timezone)  # the plan's, as every time a person reads
        shown = next_at.astimezone(zone).isoformat(timespec="seconds") if next_at else None
        if report.fired or report.skipped or report.items or any(programs.values()):
            log.info(
                "tick.done",
                fired=report.fired,
                skipped=report.skipped,
                items=report.items,
                transitions=report.transitions,
                next=shown,
                **{k: v for k, v in programs.items() if v},
            )
        else:
            log.debug("tick.idle", next=shown)
        self.life.notifier.status(outcome.status)
        self._next_at = next_at
        if self.jobs is not None and not self.life.stopping:
            self.jobs.arm(next_at)
        return True

    # reload --------------------------------------------------------------------------------

    async def _reload(self) -> None:
        """SIGHUP: config, definitions, units, registers; reconcile. A broken file keeps the old state."""
        assert self.work is not None
        self.life.notifier.reloading("正在重新加载配置、方案和单位")
        log.info("reload.started")
        old = self.settings
        runtime, problem = await reload.load_new(old, _on_assumed)
        if runtime is None:
            self._reload_done(problem)
            return
        self.settings, self.work.runtime = runtime.settings, runtime
        log_unit_warnings(runtime)
        if self.redactor is not None:
            self.redactor.update([*self.redactor.secrets, *secrets_of(runtime.settings)])
        if self.jobs is not None:
            self.jobs.reschedule(old.daemon, runtime.settings.daemon)
        if self.leading:
            changes = await self.work.guarded("reload", self.work.reconcile)
            await self._tick()
            if changes is None:  # the files were fine, the database was not: logged by guarded
                self._reload_done("重新加载后同步方案失败（见日志），下一次定时处理时重试")
                return
        log.info("reload.done", programs=[p.workflow for p in runtime.settings.programs])
        self._reload_done(None)

    def _reload_done(self, problem: str | None) -> None:
        status = self._status() if self.leading else self._standby_status()
        self.life.notifier.ready(f"{status}（{problem}）" if problem else status)

    # --once --------------------------------------------------------------------------------

    async def _run_once(self) -> int:
        assert self.leadership is not None and self.work is not None
        if not await asyncio.to_thread(self.leadership.try_acquire):
            self.life.exit_code = AlreadyRunning.exit_code  # what daemon.stopped logs is what it exits with
            raise AlreadyRunning("another duban daemon leads on this database; `run --once` needs the lead")
        self.leading = True
        await self.work.guarded("takeover", self.work.takeover)
        ticked = await self._tick()
        dispatched = await self.work.dispatch()
        await asyncio.gather(*await self.work.robots())  # (their failures are logged, as the daemon's)
        self.life.exit_code = 0 if ticked and dispatched else 1
        return self.life.exit_code

    # stop ----------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self.life.stopping = True
        if self.life.ready:
            self.life.notifier.stopping("正在停止：完成正在发送的邮件")
        if self.jobs is not None:
            await self.jobs.stop(STOP_GRACE)
        work = self.work
        if work is not None and (self.leading or self.jobs is not None):  # it ticked, or it sent
            try:
                await asyncio.to_thread(work.heartbeat, "stopped", False, "已停止")
                if self.leading:
                    await asyncio.to_thread(
                        record_daemon_event, work.engine, self.clock.now(), "daemon.stopped", work.node
                    )
            except SQLAlchemyError as exc:
                log.warning("heartbeat.failed", error=str(exc).splitlines()[0])
        if self.leadership is not None:
            self.leadership.release()
        if work is not None:
            if work.render_pool is not None:
                work.render_pool.close()
            work.engine.dispose()
        self.life.notifier.close()
        if self.life.ready or self.once:
            log.info("daemon.stopped", node=node_name(), exit_code=self.life.exit_code)


def _on_assumed(year: int, message: str) -> None:
    log.warning("calendar.assumed", year=year, detail=message)


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


__all__ = ["Daemon", "make_transport", "run", "running_status", "secrets_of"]
