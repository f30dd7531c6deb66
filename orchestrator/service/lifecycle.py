"""The daemon's lifecycle toward systemd and signals: flags set by handlers, acted on by the loop.

Signal handlers only set flags and wake the main loop (``Lifecycle.on_signal``); the loop sleeps in
``wait`` until a signal, the next watchdog ping or the next standby poll. ``READY=1``,
``RELOADING=1`` and ``STOPPING=1`` go to systemd through the ``Notifier``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator

from orchestrator.service.systemd import Notifier

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Lifecycle:
    """What the signals asked for, whether systemd was told READY, and the watchdog's rhythm."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.wake = asyncio.Event()
        self.stop_reason: str | None = None
        self.reload_requested = False
        self.stopping = False  # read by the work in flight: finish the current message, take no more
        self.exit_code = 0
        self.ready = False
        self._next_ping = 0.0

    @contextlib.contextmanager
    def signals(self) -> Iterator[None]:
        """SIGTERM/SIGINT stop, SIGHUP reloads, while the block runs."""
        loop = asyncio.get_running_loop()
        for signum in HANDLED:
            loop.add_signal_handler(signum, self.on_signal, signum)
        try:
            yield
        finally:
            for signum in HANDLED:
                loop.remove_signal_handler(signum)

    def on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self.reload_requested = True
        else:
            self.stop_reason = self.stop_reason or signal.Signals(signum).name
            self.stopping = True
        self.wake.set()

    def request_stop(self, reason: str, exit_code: int = 0) -> None:
        self.stop_reason = self.stop_reason or reason
        self.exit_code = self.exit_code or exit_code
        self.wake.set()

    def take_reload(self) -> bool:
        """True once per SIGHUP (and never while stopping)."""
        wanted = self.reload_requested and self.stop_reason is None
        self.reload_requested = False
        return wanted

    async def wait(self, poll: float | None) -> None:
        """Sleep until a signal, the next watchdog ping, or ``poll`` seconds (standing by)."""
        timeouts = [] if poll is None else [poll]
        if self.notifier.watchdog_interval:
            timeouts.append(max(self._next_ping - time.monotonic(), 0.0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=min(timeouts) if timeouts else None)
        self.wake.clear()
        self.ping_watchdog()

    def ping_watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval and time.monotonic() >= self._next_ping:
            self.notifier.watchdog()
            self._next_ping = time.monotonic() + interval

    def send_ready(self, status: str) -> None:
        self.notifier.ready(status)
        self.ready = True
