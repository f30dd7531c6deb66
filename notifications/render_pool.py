"""The render process: digests rendered and flattened in a second process while the daemon sends.

Making a digest's email (templates, calendar, attachments, the flattening) costs the sender about
as much CPU as the SMTP conversation itself; in one process the two take turns. A second process
renders a few messages ahead (``AHEAD``) while the daemon talks to the server, and hands each back
as its wire bytes (``wire.WireMessage``): the daemon only sends them. Nothing it does is stored:
the daemon keeps every claim and every outcome, so a render process that dies loses nothing — the
batch goes on rendering in the daemon (``usable`` is then False until a new process is up).

The process is started with ``spawn`` (the daemon has threads: no fork), once, and leaves by
itself when the daemon is gone, even after a SIGKILL of the daemon.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any

import structlog

from notifications.model import Digest
from notifications.render import Renderer
from notifications.wire import Made, WireMessage, flat

log = structlog.get_logger("duban.render")

AHEAD = 8  # messages rendered ahead of the one being sent (a stop wastes at most this many renders)
CHUNK = 4  # messages rendered in one job (one trip to the render process and back)
NICE = 10  # the render process's niceness, above the daemon's
RESTART_SECONDS = 60.0  # after the process died: the daemon renders alone this long, then a new one


class RenderPool:
    """One render process, started on demand; ``render`` returns a future of the message (or of
    the one-line reason it cannot be made)."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self._warm: Future | None = None
        self._failed_at: float | None = None
        self._announced = False

    def start(self) -> None:
        """Start the process (in the background: ``usable`` says when it has answered); not within
        ``RESTART_SECONDS`` of the last one's death (a process that cannot start is not retried at
        every batch)."""
        if self._executor is not None:
            return
        if self._failed_at is not None:
            if time.monotonic() - self._failed_at < RESTART_SECONDS:
                return
            self._failed_at = None
        self._executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(os.getpid(),),
        )
        self._warm = self._executor.submit(os.getpid)
        self._warm.add_done_callback(functools.partial(_drop_our_writer, self._executor))
        self._announced = False

    @property
    def usable(self) -> bool:
        """True when the process is up and answering; a dead one is replaced after ``RESTART_SECONDS``."""
        if self._executor is None:
            if self._failed_at is not None:
                self.start()  # a dead one's replacement, once RESTART_SECONDS have passed
            return False
        warm = self._warm
        if warm is None or not warm.done():
            return False
        if warm.exception() is not None:
            self.broken(warm.exception())
            return False
        if not self._announced:
            self._announced = True
            log.info("render.process_ready", pid=warm.result())
        return True

    @property
    def pid(self) -> int | None:
        """The render process's pid once it has answered (for the logs, and the tests)."""
        warm = self._warm
        return warm.result() if warm is not None and warm.done() and not warm.exception() else None

    def render(
        self, renderer: Renderer, letters: Sequence[tuple[Digest, str]], now: datetime
    ) -> asyncio.Future[list[WireMessage | str]]:
        """The emails of ``letters`` (digest, stored Message-ID) rendered with ``renderer``'s settings
        in the render process, in one job; links are made here first (they need the daemon's key
        and database)."""
        assert self._executor is not None
        jobs = [(renderer.linked(digest), message_id) for digest, message_id in letters]
        return asyncio.ensure_future(_unwrapped(self._executor.submit(_render, renderer.settings, jobs, now)))

    def broken(self, error: BaseException | None) -> None:
        """The process died (or would not start): shut it down; the daemon renders alone meanwhile."""
        log.warning("render.process_lost", error=f"{type(error).__name__}: {error}" if error else None)
        self.close()
        self._failed_at = time.monotonic()

    def close(self) -> None:
        executor, self._executor, self._warm = self._executor, None, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _drop_our_writer(executor: ProcessPoolExecutor, _warm: Future) -> None:
    """Once the process is up, close the daemon's copy of the pipe its results come back on: the
    process then holds the only write end, and its death is an end of file there. CPython's executor
    keeps both ends in the parent, so a process killed halfway through writing a result (a job's
    result is tens of KiB: more than one write) left the executor's thread reading the rest forever,
    and every job waiting (a delivery hung, and the daemon could not exit: the interpreter joins that
    thread). With the end of file the executor breaks: its jobs fail with BrokenProcessPool, and
    the batch goes on rendering in the daemon."""
    queue = getattr(executor, "_result_queue", None)  # private to CPython's executor (checked on 3.11)
    writer = getattr(queue, "_writer", None)
    if writer is not None:
        writer.close()


async def _unwrapped(job: Future) -> list[WireMessage | str]:
    return [
        made if isinstance(made, str) else WireMessage.made(*made) for made in await asyncio.wrap_future(job)
    ]


# -- in the render process ----------------------------------------------------------------------

_renderers: dict[tuple, Renderer] = {}


def _render(
    settings: tuple[tuple[str, Any], ...], jobs: list[tuple[Digest, str]], now: datetime
) -> list[Made | str]:
    """Each job's email in its wire form (``wire.flat``), or the one-line reason it cannot be made."""
    renderer = _renderers.get(settings)
    if renderer is None:
        _renderers.clear()  # a reload changed the settings: only the current renderer is kept
        renderer = _renderers[settings] = Renderer(**dict(settings))
    return [_one(renderer, digest, message_id, now) for digest, message_id in jobs]


def _one(renderer: Renderer, digest: Digest, message_id: str, now: datetime) -> Made | str:
    try:
        return flat(renderer.render(digest, now=now, message_id=message_id))
    except Exception as exc:  # one broken digest must not stop the batch: it is marked failed
        return f"cannot render: {type(exc).__name__}: {' '.join(str(exc).split())}"


def _start(parent: int) -> None:
    """The render process's start: a lower priority (it works ahead: the daemon's conversation with
    the mail server, and the server itself when it runs here, go first), and a watch on the daemon."""
    os.nice(NICE)
    _watch_parent(parent)


def _watch_parent(parent: int) -> None:
    """Leave when the daemon is gone (its pid is no longer our parent): a SIGKILLed daemon leaves
    no render process behind."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="duban-parent-watch", daemon=True).start()


__all__ = ["AHEAD", "CHUNK", "BrokenProcessPool", "RenderPool"]
