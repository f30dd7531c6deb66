"""The render process (notifications/render_pool.py): digests rendered and flattened beside the sender.

Real components: a real SQLite file, a real aiosmtpd server, a real spawned render process (killed
for real in one test). What is checked: the bytes on the wire are the ones the daemon would make
itself; a render process that dies loses and repeats nothing; a digest it cannot render is failed
with its reason.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
import signal
import struct
import time
from collections import Counter
from datetime import date
from multiprocessing.queues import SimpleQueue

import pytest
from smtp_server import SmtpServer
from test_dispatch import NINE, make_env, many_units, plain

from notifications import render_pool
from notifications.model import Digest, Recipient
from notifications.render_pool import BrokenProcessPool, RenderPool
from notifications.wire import WireMessage, to_wire
from orchestrator.engine.outbox.letters import load_letters

UNITS = many_units(30)
BROKEN = Digest(Recipient("county-x", "县某局", ()), date(2026, 6, 1), items=())  # no items: cannot render


@pytest.fixture(scope="module")
def pool():
    started = RenderPool()
    started.start()
    wait_for(lambda: started.usable, "the render process to answer")
    yield started
    started.close()


def wait_for(condition, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


class Watching:
    """The real SMTP transport; records what it was handed, and may act before a given send."""

    def __init__(self, inner, before=None) -> None:
        self.inner, self.before, self.handed = inner, before, []

    async def open(self) -> None:
        await self.inner.open()

    async def send(self, message, recipients):
        self.handed.append(message)
        if self.before is not None:
            self.before(len(self.handed))
        return await self.inner.send(message, recipients)

    async def close(self) -> None:
        await self.inner.close()


async def test_the_render_process_puts_on_the_wire_the_bytes_the_daemon_would_make(store, tmp_path, pool):
    env = make_env(store, tmp_path / "plan", units=UNITS)
    queued = env.queue()
    assert queued > 2 * render_pool.AHEAD
    with SmtpServer() as server:
        transport = Watching(plain(server))
        report = await env.deliver(transport, pool=pool)
    assert report.sent == queued and report.failed == 0
    assert all(isinstance(m, WireMessage) for m in transport.handed)  # every digest was made there
    # made here instead: byte for byte the same message (the same `now`, the same Message-ID)
    ids = [row.id for row in env.outbox()]
    letters = {x.message_id: x for x in load_letters(store, ids, env.bundles, None)}
    received = {r.message["Message-ID"]: r.data for r in server.received}
    assert set(received) == set(letters) and len(received) == queued
    for message_id, data in received.items():
        here = to_wire(env.renderer.render(letters[message_id].digest, now=NINE, message_id=message_id))
        assert data.replace(b"\r\n", b"\n") == here.replace(b"\r\n", b"\n"), message_id


async def test_a_render_process_killed_mid_delivery_loses_and_repeats_nothing(store, tmp_path, monkeypatch):
    monkeypatch.setattr(render_pool, "RESTART_SECONDS", 0.0)
    pool = RenderPool()
    pool.start()
    pid = wait_for(lambda: pool.usable and pool.pid, "the render process to answer")
    env = make_env(store, tmp_path / "plan", units=UNITS)
    queued = env.queue()

    def kill_at_the_fifth(count: int) -> None:
        if count == 5:
            os.kill(pid, signal.SIGKILL)

    try:
        with SmtpServer() as server:
            transport = Watching(plain(server), kill_at_the_fifth)
            report = await env.deliver(transport, pool=pool)
        received = Counter(r.message["Message-ID"] for r in server.received)
        assert report.sent == queued and report.failed == report.retried == 0
        assert len(received) == queued and set(received.values()) == {1}  # each once, none lost
        made_there = [isinstance(m, WireMessage) for m in transport.handed]
        assert made_there[:4] == [True] * 4 and not all(made_there)  # then the rest were made here
        assert Counter(row.state for row in env.outbox()) == {"sent": queued}
        # a new render process replaces the dead one, after RESTART_SECONDS (0 here: maybe already)
        wait_for(lambda: pool.usable, "a new render process")
        assert pool.pid not in (None, pid)
    finally:
        pool.close()


async def test_a_dead_render_process_is_replaced_only_after_restart_seconds(store, tmp_path, monkeypatch):
    env = make_env(store, tmp_path / "plan")
    pool = RenderPool()
    pool.start()
    pid = wait_for(lambda: pool.usable and pool.pid, "the render process to answer")
    try:
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):  # its next job finds it dead, as a delivery's would…
            await pool.render(env.renderer, [(BROKEN, "<x@duban.test>")], NINE)
        pool.broken(None)  # …which then gives it up (deliver.py: _pool_lost)
        pool.start()  # a big delivery asks for it again at once: not yet
        assert pool.usable is False and pool.pid is None
        monkeypatch.setattr(render_pool, "RESTART_SECONDS", 0.0)
        wait_for(lambda: pool.usable, "the replacement")
        assert pool.pid not in (None, pid)
    finally:
        pool.close()


def die_halfway_through_a_result() -> None:
    """Run in the render process: what a SIGKILL halfway through writing a result leaves behind — a
    result's length on the result pipe, and none of its bytes."""
    (results,) = [o for o in gc.get_objects() if isinstance(o, SimpleQueue)]  # the executor's results
    os.write(results._writer.fileno(), struct.pack("!i", 60_000))
    os._exit(9)


async def test_a_render_process_killed_halfway_through_a_result_fails_its_jobs_instead_of_hanging():
    pool = RenderPool()
    pool.start()
    wait_for(lambda: pool.usable, "the render process to answer")
    executor = pool._executor
    results = executor._result_queue
    try:
        dying = asyncio.wrap_future(executor.submit(die_halfway_through_a_result))
        queued = asyncio.wrap_future(executor.submit(os.getpid))  # a job waiting behind it
        for job in (dying, queued):  # each fails (the delivery renders here), none waits forever
            with pytest.raises(BrokenProcessPool):
                await asyncio.wait_for(job, 60)
    finally:
        pool.close()
        results._writer.close()  # (without the fix: frees the executor's thread)


async def test_a_digest_the_render_process_cannot_render_comes_back_as_its_reason(store, tmp_path, pool):
    env = make_env(store, tmp_path / "plan")
    (made,) = await pool.render(env.renderer, [(BROKEN, "<x@duban.test>")], NINE)
    assert made == "cannot render: ValueError: digest for 'county-x' has no items"
    assert pool.usable  # one bad digest does not take the process down


async def test_the_next_batchs_first_digests_are_rendered_while_this_batch_is_sent(
    store, tmp_path, pool, monkeypatch
):
    deliver_module = importlib.import_module("orchestrator.engine.outbox.deliver")
    loads: list[int] = []
    load = deliver_module.load_letters

    def counted(*args, **kwargs):
        letters = load(*args, **kwargs)
        loads.append(len(letters))
        return letters

    monkeypatch.setattr(deliver_module, "load_letters", counted)
    env = make_env(store, tmp_path / "plan", units=UNITS)
    queued = env.queue()
    first = deliver_module.FIRST_BATCH
    assert queued > first + render_pool.AHEAD
    handed_over: dict[str, int] = {}  # Message-ID → messages handed to the transport by then
    render = pool.render

    def watched(renderer, letters, now):
        handed_over.update((message_id, len(transport.handed)) for _, message_id in letters)
        return render(renderer, letters, now)

    monkeypatch.setattr(pool, "render", watched)

    class Waiting(Watching):
        async def send(self, message, recipients):
            if len(self.handed) == 1:  # let the next batch's claim and load end (worker threads)
                await asyncio.to_thread(wait_for, lambda: len(loads) == 2, "the next batch")
            return await super().send(message, recipients)

    with SmtpServer() as server:
        transport = Waiting(plain(server))
        report = await env.deliver(transport, pool=pool)
    assert report.sent == queued and all(isinstance(m, WireMessage) for m in transport.handed)
    second = transport.handed[first]["Message-ID"]  # the next batch's first message
    # handed to the render process while the first batch was still being sent (with the AHEAD
    # messages that follow the one about to be sent, as within a batch: not earlier)
    assert first - render_pool.AHEAD + 1 <= handed_over[second] < first
    assert handed_over[transport.handed[0]["Message-ID"]] == 0
