"""The daemon's jobs on APScheduler: a DateTrigger at the next timer, a safety tick, the outbox,
the group robots (the leader's, apart from the outbox: a slow robot never holds an email).

APScheduler only drives the clock (its job store stays in memory; the database is the truth). It
sleeps on the wall clock, so "at the next timer" is given as "in N seconds" of the daemon's own
``Clock`` turned into wall time: a shifted test clock (``DUBAN_FAKE_NOW``) works too. Jobs are
tracked, so that a stop waits for the work in flight instead of cancelling it — the robots'
deliveries too, which their job starts and does not wait for (``adopt``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from orchestrator.engine.clock import Clock
from orchestrator.service.config import DaemonSettings

log = structlog.get_logger("duban.daemon")

MIN_DELAY = 0.5  # never re-arm the timer job sooner: a timer that did not fire must not spin

Work = Callable[[], Awaitable[object]]


def outbox_interval(daemon: DaemonSettings, leading: bool) -> float:
    """Seconds between outbox runs: ``dispatch_interval``; a standby looks at least as often as it
    polls for the lead, so it joins a send the leader has just queued within seconds."""
    return daemon.dispatch_interval if leading else min(daemon.dispatch_interval, daemon.standby_poll)


class Jobs:
    """The scheduler and the jobs it runs: ``tick`` (at the next timer and every interval),
    ``dispatch`` and ``robots`` (every ``dispatch_interval``, each apart).

    A standby (PostgreSQL) runs ``dispatch`` alone (``start(…, leading=False)``), as often as it
    polls for the lead (``outbox_interval``); ``lead`` adds the ticks and the robots when it becomes
    the leader.
    """

    def __init__(
        self, clock: Clock, timezone: str, tick: Work, dispatch: Work, robots: Work | None = None
    ) -> None:
        self.clock, self.tz = clock, ZoneInfo(timezone)
        self._tick, self._dispatch, self._robots = tick, dispatch, robots
        self.scheduler: AsyncIOScheduler | None = None
        self.inflight: set[asyncio.Task] = set()
        self.closed = False
        self.leading = False

    def start(self, daemon: DaemonSettings, next_at: datetime | None, *, leading: bool = True) -> None:
        scheduler = AsyncIOScheduler(
            timezone=self.tz, job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1}
        )
        scheduler.add_job(
            self._dispatch_job,
            self._every(outbox_interval(daemon, leading)),
            id="dispatch",
            name="outbox",
            next_run_time=datetime.now(self.tz),
        )
        scheduler.start()
        self.scheduler = scheduler
        if leading:
            self._ticks(daemon, next_at)

    def lead(self, daemon: DaemonSettings, next_at: datetime | None) -> None:
        """A standby became the leader: the outbox at the leader's interval, and the ticks."""
        if self.scheduler is None or self.closed or self.leading:
            return
        self.scheduler.reschedule_job("dispatch", trigger=self._every(daemon.dispatch_interval))
        self.scheduler.modify_job("dispatch", next_run_time=datetime.now(self.tz))  # at once, as a leader
        self._ticks(daemon, next_at)

    def _ticks(self, daemon: DaemonSettings, next_at: datetime | None) -> None:
        """The leader's jobs beside the outbox: the safety tick, the tick at the next timer, the robots."""
        assert self.scheduler is not None
        self.leading = True
        self.scheduler.add_job(
            self._tick_job,
            self._every(daemon.tick_interval),
            id="tick",
            name="safety tick",
            replace_existing=True,
        )
        if self._robots is not None:
            self.scheduler.add_job(
                self._robots_job,
                self._every(daemon.dispatch_interval),
                id="robots",
                name="group robots",
                replace_existing=True,
                next_run_time=datetime.now(self.tz),
            )
        self.arm(next_at)

    def arm(self, next_at: datetime | None) -> None:
        """The DateTrigger job at the next timer's ``fire_at`` (our clock's time, turned into wall time)."""
        scheduler = self.scheduler
        if scheduler is None or self.closed:
            return
        if next_at is None:
            if scheduler.get_job("tick-at") is not None:
                scheduler.remove_job("tick-at")
            return
        delay = max((next_at - self.clock.now()).total_seconds(), MIN_DELAY)
        run_date = datetime.now(UTC) + timedelta(seconds=delay)  # APScheduler sleeps on the wall clock
        scheduler.add_job(
            self._tick_job,
            DateTrigger(run_date=run_date, timezone=self.tz),
            id="tick-at",
            name="tick at the next timer",
            replace_existing=True,
        )

    def reschedule(self, old: DaemonSettings, new: DaemonSettings) -> None:
        """A reload that changed an interval: the interval jobs follow."""
        if self.scheduler is None:
            return
        for job, before, after in (
            ("tick", old.tick_interval, new.tick_interval),
            ("dispatch", outbox_interval(old, self.leading), outbox_interval(new, self.leading)),
            ("robots", old.dispatch_interval, new.dispatch_interval),
        ):
            if before != after and self.scheduler.get_job(job) is not None:
                self.scheduler.reschedule_job(job, trigger=self._every(after))

    async def stop(self, grace: float) -> None:
        """No new runs; wait up to ``grace`` seconds for the jobs in flight; shut the scheduler down."""
        self.closed = True
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()
        current = asyncio.current_task()
        inflight = [t for t in self.inflight if t is not current and not t.done()]
        if inflight:
            _, pending = await asyncio.wait(inflight, timeout=grace)
            if pending:
                log.warning("daemon.stop_timeout", unfinished=len(pending))
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def _every(self, seconds: float) -> IntervalTrigger:
        return IntervalTrigger(seconds=seconds, timezone=self.tz)

    async def _tracked(self, work: Work) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.inflight.add(task)
        try:
            await work()
        finally:
            if task is not None:
                self.inflight.discard(task)

    async def _tick_job(self) -> None:
        await self._tracked(self._tick)

    async def _dispatch_job(self) -> None:
        await self._tracked(self._dispatch)

    async def _robots_job(self) -> None:
        assert self._robots is not None
        await self._tracked(self._robots)

    def adopt(self, tasks: Iterable[asyncio.Task]) -> None:
        """Track work a job started and did not wait for (the robots' deliveries): a stop waits for it."""
        for task in tasks:
            if not task.done():
                self.inflight.add(task)
                task.add_done_callback(self.inflight.discard)
