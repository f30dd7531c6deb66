"""Deliver: claimed messages sent in order over one opened transport, their outcomes committed by group.

A batch is sent in groups of ``GROUP_SIZE`` messages (fewer when ``GROUP_SECONDS`` pass first).
Before a group is sent, one transaction commits the outcomes so far with their audit events and
confirms the group's claims (the fence, claims.py): a sender whose claims were taken over stops
within one group. Inside a batch that transaction runs in a worker thread while the previous
group's last message is on the wire; that message's outcome goes with the next commit, so such a
group is one message smaller and at most ``GROUP_SIZE`` sends are ever uncommitted. Every way out
of a batch (its end, a stop request, the breaker, an error, a cancellation) commits the outcomes
recorded so far. So a crash (SIGKILL) can leave at most one group's sends uncommitted: those messages keep their claims and are sent again, with the
same Message-IDs, when the claims expire.

4xx replies, timeouts and lost connections retry with exponential backoff and jitter, up to
``mail.max_attempts``; a 5xx refusal of some recipients is recorded while the others get the
message, a 4xx refusal of some recipients is retried for them alone (same Message-ID, same
backoff); a message refused outright, or one that cannot be rendered, is ``failed``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.engine import Connection, Engine

from notifications.errors import RateLimited, TransportError
from notifications.render import Renderer
from notifications.render_pool import AHEAD, CHUNK, RenderPool
from notifications.transport import Transport
from orchestrator.engine.clock import Clock
from orchestrator.engine.digest import Scorecard
from orchestrator.engine.outbox.claims import CLAIM_SECONDS, claim, confirm, release, renew
from orchestrator.engine.outbox.letters import Letter, Letters, load_letters, prepare
from orchestrator.engine.outbox.outcomes import Outcomes, record_failure, record_sent
from orchestrator.engine.outbox.policy import MailPolicy
from orchestrator.engine.window import SendPolicy
from orchestrator.store.audit import DAEMON
from orchestrator.store.states import OutboxKind
from workflows.catalog import Bundle

log = structlog.get_logger("duban.dispatch")

BREAKER = 3  # this many temporary failures in a row of one destination: it is down (email: stop the batch)
GROUP_SIZE = 20  # messages whose outcomes commit together: a crash re-sends at most this many
GROUP_SECONDS = 1.0  # a group closes after this long even if smaller (a slow server, a paced robot)
FIRST_BATCH = 10  # a delivery's first claim: small, so that another daemon finds work too
MAX_BATCH = 500  # the most one claim takes, however fast the mail server
BATCH_SECONDS = 1.0  # each later claim: about this much sending, at the rate just seen
RENDER_PROCESS_AFTER = 40  # a delivery this big starts the render process (if it has one): a big day


@dataclass
class DeliverReport:
    """What one ``deliver`` run did; ``sent_ids`` are outbox ids in send order."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    refused: int = 0
    deferred: int = 0  # recipients refused for now (4xx at RCPT): tried again later
    lost: int = 0  # claims found taken by another node right before sending (the batch stopped)
    reclaimed: int = 0
    paced: int = 0  # given back, due later, to keep a robot within its messages a minute
    held: int = 0  # given back untried, due later: their robot had just failed BREAKER times in a row
    sent_ids: list[int] = field(default_factory=list)

    def add(self, other: DeliverReport) -> None:
        """Count ``other`` (a later batch of the same delivery) in."""
        for name in (
            "sent",
            "retried",
            "failed",
            "refused",
            "deferred",
            "lost",
            "reclaimed",
            "paced",
            "held",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.sent_ids.extend(other.sent_ids)


class _Pacer:
    """At most ``rate`` sends per second (0: no limit), measured on the monotonic clock."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.last: float | None = None

    async def wait(self) -> None:
        if self.interval and self.last is not None:
            delay = self.last + self.interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        self.last = time.monotonic()


@dataclass(frozen=True)
class _Fence:
    """A group's commit running in a worker thread (``_Run._fence_ahead``)."""

    job: asyncio.Future[set[int]]  # the ids of the group still ours
    outcomes: Outcomes  # what it writes (put back if it fails)
    position: int  # where the group starts in the batch
    group: Sequence[Letter]


class _Run:
    """One batch: claimed letters rendered and sent in order over one opened transport, by groups.

    Everything here runs on the event loop, between awaits on the mail server: a group's commit is
    one short transaction on a connection held for the batch (in a worker thread it only contended
    with the SMTP conversation for the GIL). The digests are rendered ``AHEAD`` messages ahead in
    the render process when there is one (``pool``), else each while the one before it is sent.
    """

    def __init__(
        self,
        connection: Connection,
        clock: Clock,
        transport: Transport,
        renderer: Renderer | None,
        mail: MailPolicy,
        node: str,
        rng: random.Random,
        stop: Callable[[], bool],
        pool: RenderPool | None = None,
        rendering: dict[int, tuple[asyncio.Future, int]] | None = None,
        upcoming: Callable[[], Sequence[Letter]] = tuple,
    ) -> None:
        self.connection, self.clock, self.transport, self.renderer = connection, clock, transport, renderer
        self.mail, self.node, self.rng, self.stop = mail, node, rng, stop
        self.report = DeliverReport()
        self.pacer = _Pacer(mail.rate_limit)
        self.renewed = time.monotonic()
        self.untried = 0  # letters[untried:] were not started: given back if the batch ends early
        self.outcomes = Outcomes()  # recorded, not yet committed: at most one group's
        self.fenced = 0  # letters[:fenced] had their claims confirmed: the next one starts a group
        self.grouped = time.monotonic()  # when the current group began
        self.fencing: _Fence | None = None  # the next group's commit, running beside the last send
        self.ahead: tuple[int, Any] | None = None  # (outbox id, message) made while the last one was sent
        self.pool = pool if pool is not None and renderer is not None and pool.usable else None
        # outbox id → (its job's messages, which): shared by the batches of a delivery, so that the
        # next batch's first digests are rendered while this batch's last ones are sent
        self.rendering = rendering if rendering is not None else {}
        self.upcoming = upcoming  # the next batch's letters once it is claimed and loaded, else ()
        self.submitted = 0  # letters[:submitted] were handed to the render process (or need not be)
        self.submitted_next = 0  # upcoming()[:submitted_next] too

    async def run(self, letters: list[Letter]) -> DeliverReport:
        try:
            try:
                await self.transport.open()
            except TransportError as exc:
                self.untried = len(letters)
                self._connection_down(letters, f"cannot open the connection: {exc}")
                return self.report
            try:
                await self._send_all(letters)
            finally:
                await self.transport.close()
        finally:
            try:
                await self._settle()
            finally:
                self._finish(letters)
        return self.report

    async def _send_all(self, letters: list[Letter]) -> None:
        """Render, send, record, one letter after the other; stops early on ``stop()``, a lost claim or
        a dead server."""
        now = self.clock.now()
        temporary_in_a_row: dict[str, int] = {}  # by destination (``destination``)
        for position, letter in enumerate(letters):
            if self.stop():
                return
            if not await self._fenced(letters, position):
                return
            self._keepclaim(letters[position:])
            self.untried = position + 1
            if self.hold(letter):
                continue
            prepared = await self._made(letters, position, now)
            if isinstance(prepared, str):
                self._failed(letter, prepared, permanent=True)
                continue
            await self.pacer.wait()
            if position + 1 == self.fenced < len(letters):
                self._fence_ahead(letters, position + 1)
            try:
                following = letters[position + 1] if position + 1 < len(letters) else None
                result = await self._send(letter, prepared, following, now)
            except RateLimited as exc:  # this destination only: not a sign the system is down
                self._failed(letter, str(exc), permanent=False, wait=exc.retry_after)
                self.limited(letter, exc)
                continue
            except TransportError as exc:
                self._failed(letter, str(exc), permanent=not exc.temporary)
                where = self.destination(letter)
                temporary_in_a_row[where] = temporary_in_a_row.get(where, 0) + 1 if exc.temporary else 0
                if temporary_in_a_row[where] >= BREAKER and self.broken(letters, position, exc):
                    return
                continue
            temporary_in_a_row[self.destination(letter)] = 0
            sent_at = self.clock.now()
            done = record_sent(self.outcomes, sent_at, letter, result, mail=self.mail, rng=self.rng)
            self.delivered(letter, sent_at)
            self.report.sent += 1
            self.report.refused += len(result.refused)
            self.report.deferred += len(result.deferred) if not done else 0
            self.report.sent_ids.append(letter.outbox_id)

    async def _made(self, letters: Sequence[Letter], position: int, now: datetime) -> Any:
        """``letters[position]``'s message: from the render process, made while the previous one was
        being sent, or now."""
        letter = letters[position]
        if self.pool is not None:
            self._render_ahead(letters, position, now)
            rendering = self.rendering.pop(letter.outbox_id, None)
            if rendering is not None:
                try:
                    return (await rendering[0])[rendering[1]]
                except Exception as exc:  # the process died (BrokenProcessPool): render here from now on
                    self._pool_lost(exc)
        made, self.ahead = self.ahead, None
        if made is not None and made[0] == letter.outbox_id:
            return made[1]
        return _at_once(self.prepare(letter, now))

    def _render_ahead(self, letters: Sequence[Letter], position: int, now: datetime) -> None:
        """Hand the digests of the ``AHEAD`` letters from ``position`` on to the render process, those
        not handed yet, ``CHUNK`` at a time; near the batch's end, the next batch's first ones (once it
        is loaded: it is claimed while this one is sent). The first job, with nothing in flight, is
        one digest: the first send waits for one render, not for ``CHUNK``. Stored bodies and
        unrenderable rows are made here: they cost nothing."""
        assert self.pool is not None and self.renderer is not None
        end = position + AHEAD
        while self.submitted < min(len(letters), end):
            size = CHUNK if self.rendering else 1
            chunk = letters[self.submitted : self.submitted + size]
            self.submitted += len(chunk)
            if not self._submit(chunk, now):
                return
        if end > len(letters):
            upcoming = self.upcoming()
            while self.submitted_next < min(len(upcoming), end - len(letters)):
                chunk = upcoming[self.submitted_next : self.submitted_next + CHUNK]
                self.submitted_next += len(chunk)
                if not self._submit(chunk, now):
                    return

    def _submit(self, letters: Sequence[Letter], now: datetime) -> bool:
        """One job for the digests among ``letters`` not handed over yet; False if the process is gone."""
        assert self.pool is not None and self.renderer is not None
        chunk = [
            x
            for x in letters
            if x.digest is not None and x.body is None and x.outbox_id not in self.rendering
        ]
        if not chunk:
            return True
        try:
            job = self.pool.render(self.renderer, [(x.digest, x.message_id) for x in chunk], now)
        except Exception as exc:  # it could not take the job: it died meanwhile
            self._pool_lost(exc)
            return False
        self.rendering.update((x.outbox_id, (job, i)) for i, x in enumerate(chunk))
        return True

    def _pool_lost(self, error: BaseException) -> None:
        """The render process is gone: what it was making is made here, in order, as it comes."""
        if self.pool is not None:
            self.pool.broken(error)
        self.pool = None
        self._cancel_rendering()

    def _cancel_rendering(self, letters: Sequence[Letter] | None = None) -> None:
        """Cancel the render jobs of ``letters`` (all of them: None); a job that also renders others
        still running is only dropped from the table once none of its letters is waiting."""
        _cancel(self.rendering, None if letters is None else [x.outbox_id for x in letters])

    async def _send(self, letter: Letter, prepared: Any, following: Letter | None, now: datetime) -> Any:
        """Send ``prepared``; meanwhile, without a render process, the following letter's message is
        made between the server's replies (a message that is then not sent — a stop, a lost claim —
        was only rendered)."""
        sending = asyncio.ensure_future(self.transport.send(prepared, letter.to))
        try:
            if following is not None and self.pool is None:
                self.ahead = (following.outbox_id, await _between_replies(self.prepare(following, now)))
            return await sending
        finally:
            if not sending.done():  # cancelled meanwhile: the send goes with it
                sending.cancel()

    async def _fenced(self, letters: Sequence[Letter], position: int) -> bool:
        """True when ``letters[position]`` may be sent: its group's claims are confirmed (the group it is
        in, or the one that begins with it when the last one is full or ``GROUP_SECONDS`` old)."""
        fence = self.fencing
        if fence is not None:  # the group that begins here, confirmed while the last one was sent
            return self._confirmed(fence.group, fence.position, await self._settle())
        if position < self.fenced and time.monotonic() - self.grouped < GROUP_SECONDS:
            return True
        return self._next_group(letters, position)

    def _next_group(self, letters: Sequence[Letter], position: int) -> bool:
        """Commit the outcomes so far and confirm the claims of the group starting at ``position``, in
        one transaction; False (and the batch stops) if any of them is no longer ours: another node has
        it now (our lead was lost, or our claims expired). What is still ours is given back; the rest
        is not ours to touch."""
        group = letters[position : position + GROUP_SIZE]
        ours = self._commit(self.outcomes, [x.outbox_id for x in group])
        self.outcomes.clear()
        return self._confirmed(group, position, ours)

    def _fence_ahead(self, letters: Sequence[Letter], position: int) -> None:
        """Start the commit of the outcomes so far and the confirmation of the group starting at
        ``position`` in a worker thread, while the message before it is sent (the driver waits for the
        database without the GIL): the group's first send then seldom waits for the commit. That
        message's outcome goes with the next commit, so the group is one smaller: a crash still leaves
        at most ``GROUP_SIZE`` sends uncommitted. Nothing else uses the connection until ``_settle``."""
        group = letters[position : position + GROUP_SIZE - 1]
        outcomes, self.outcomes = self.outcomes, Outcomes()
        job = asyncio.ensure_future(asyncio.to_thread(self._commit, outcomes, [x.outbox_id for x in group]))
        self.fencing = _Fence(job, outcomes, position, group)

    async def _settle(self) -> set[int]:
        """Wait for the commit started by ``_fence_ahead`` and return the ids it confirmed (none if
        there was none). Cancelled meanwhile, it still waits: the thread holds the connection until it
        ends. If the commit failed, its outcomes are put back, to be committed with the rest."""
        if self.fencing is None:
            return set()
        job, outcomes = self.fencing.job, self.fencing.outcomes
        self.fencing = None
        cancelled = False
        while not job.done():
            try:
                await asyncio.wait([job])
            except asyncio.CancelledError:
                cancelled = True
        error = job.exception()
        if error is not None:
            outcomes.extend(self.outcomes)
            self.outcomes = outcomes
        if cancelled:
            raise asyncio.CancelledError
        if error is not None:
            raise error
        return job.result()

    def _commit(self, outcomes: Outcomes, ids: list[int]) -> set[int]:
        """One transaction: ``outcomes`` written and the claims of ``ids`` confirmed (those still ours)."""
        with self.connection.begin():
            outcomes.write(self.connection)
            return confirm(self.connection, self.clock.now(), self.node, ids)

    def _confirmed(self, group: Sequence[Letter], position: int, ours: set[int]) -> bool:
        self.grouped = time.monotonic()
        lost = [x.message_id for x in group if x.outbox_id not in ours]
        if lost:
            log.warning("mail.claim_lost", messages=lost, node=self.node)
            self.report.lost += len(lost)
            self.untried = position
            return False
        self.fenced = position + len(group)
        return True

    def _finish(self, letters: Sequence[Letter]) -> None:
        """However the batch ends: commit the outcomes recorded, give back what was not tried.

        The letter in flight when an error or a cancellation stopped the batch, if any, keeps its
        claim: the server may have it; it is sent again when the claim expires.
        """
        self._cancel_rendering(letters)  # the next batch's, handed over already, are kept for it
        if self.outcomes:
            with self.connection.begin():
                self.outcomes.write(self.connection)
            self.outcomes.clear()
        if self.untried < len(letters):
            release(self.connection, self.node, [x.outbox_id for x in letters[self.untried :]])

    # What a channel may change (the robots' runner does: robots.py).

    def prepare(self, letter: Letter, now: datetime) -> Generator[None, None, Any]:
        """The message to hand to the transport, or the one-line reason it cannot be made: a
        generator that yields between costly steps (see ``_send``) and returns it."""
        return prepare(letter, self.renderer, now)

    def hold(self, letter: Letter) -> bool:
        """True when ``letter`` must wait (it has been given back, due later): not sent now."""
        return False

    def delivered(self, letter: Letter, at: datetime) -> None:
        """``letter`` was accepted at ``at``."""

    def limited(self, letter: Letter, error: RateLimited) -> None:
        """The destination of ``letter`` asked to slow down."""

    def destination(self, letter: Letter) -> str:
        """Where ``letter`` goes, as far as failures are counted (``BREAKER``): email has one, the
        mail system."""
        return ""

    def broken(self, letters: Sequence[Letter], position: int, error: TransportError) -> bool:
        """``letters[position]``'s destination failed ``BREAKER`` times in a row; True stops the batch.
        Email: the mail system is down — every letter left gets a failed, retried attempt."""
        self.untried = len(letters)
        self._connection_down(letters[position + 1 :], f"not tried: {error}")
        return True

    def _failed(self, letter: Letter, error: str, *, permanent: bool, wait: float | None = None) -> None:
        now = self.clock.now()
        if record_failure(
            self.outcomes, now, letter, error, permanent=permanent, mail=self.mail, rng=self.rng, wait=wait
        ):
            self.report.failed += 1
        else:
            self.report.retried += 1

    def _connection_down(self, letters: Sequence[Letter], error: str) -> None:
        """The mail system cannot be reached: a failed, retried attempt for every letter of the batch.

        Even a permanent-looking error here (bad credentials, a rejected certificate) is a problem of
        the configuration, not of the messages: they are retried, and the error is logged loudly.
        """
        log.error("mail.unavailable", error=error, messages=len(letters))
        for letter in letters:
            self._failed(letter, error, permanent=False)

    def _keepclaim(self, remaining: Sequence[Letter]) -> None:
        if time.monotonic() - self.renewed > CLAIM_SECONDS / 3:
            renew(self.connection, self.clock.now(), self.node, [x.outbox_id for x in remaining])
            self.renewed = time.monotonic()


def _cancel(rendering: dict[int, tuple[asyncio.Future, int]], ids: Sequence[int] | None = None) -> None:
    """Drop ``ids`` (all: None) from the render jobs' table; cancel the jobs none of whose letters is
    left in it (a job renders several letters: one of another batch may still wait for it)."""
    dropped = {rendering.pop(i)[0] for i in (list(rendering) if ids is None else ids) if i in rendering}
    waiting = {job for job, _ in rendering.values()}
    for job in dropped - waiting:
        job.cancel()


def _at_once(steps: Generator[None, None, Any]) -> Any:
    """What a generator of steps returns, run to its end without a pause."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


async def _between_replies(steps: Generator[None, None, Any]) -> Any:
    """What a generator of steps returns, one step each time the event loop comes round: the replies
    of the mail server to the message on the wire are handled in between (each step is a fraction
    of a millisecond), so rendering the next message fills the waits instead of adding to them."""
    while True:
        await asyncio.sleep(0)
        try:
            next(steps)
        except StopIteration as done:
            return done.value


async def deliver(
    engine: Engine,
    clock: Clock,
    transport: Transport,
    renderer: Renderer,
    bundles: Mapping[str, Bundle],
    mail: MailPolicy,
    *,
    node: str = DAEMON,
    limit: int = 1000,
    stop: Callable[[], bool] = lambda: False,
    scorecard: Scorecard | None = None,
    rng: random.Random | None = None,
    window: SendPolicy | None = None,
    kinds: Sequence[str] = (OutboxKind.DIGEST, OutboxKind.FAILURE_REPORT),
    pool: RenderPool | None = None,
) -> DeliverReport:
    """Send up to ``limit`` due messages (digests and failure reports) over one connection.

    ``stop()`` is checked between messages: the message in flight is finished and the outcomes so far
    committed, the rest go back to pending untouched. The claims and the loading of each batch run
    in worker threads; each group's commit is a short transaction on the event loop, between two
    SMTP conversations.
    With ``window`` (the daemon's send policy) digests leave only inside a send window; with
    ``pool`` (the daemon's render process, once it is up) digests are rendered there.
    """
    return await deliver_batch(
        engine,
        clock,
        transport,
        mail,
        Letters(bundles, scorecard, renderer, pool),
        node=node,
        limit=limit,
        stop=stop,
        rng=rng or random.Random(),
        kinds=kinds,
        window=window,
    )


class _KeptOpen:
    """The transport of a whole delivery: opened by the first batch, closed once at the end.

    Each batch's runner opens and closes what it is given; this keeps one SMTP connection for all
    of them (a claim per small batch is cheap, a new connection per batch would not be).
    """

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.opened = False

    async def open(self) -> None:
        if not self.opened:
            await self.inner.open()  # a failure here is the first batch's (the delivery then stops)
            self.opened = True

    def __getattr__(self, name: str):
        return getattr(self.inner, name)  # what a runner reads of its transport (robots: ``.robots``)

    async def send(self, message, recipients):
        return await self.inner.send(message, recipients)

    async def close(self) -> None:
        return None

    async def finish(self) -> None:
        if self.opened:
            await self.inner.close()


async def deliver_batch(
    engine: Engine,
    clock: Clock,
    transport: Transport,
    mail: MailPolicy,
    making: Letters,
    *,
    node: str,
    limit: int,
    stop: Callable[[], bool],
    rng: random.Random,
    kinds: Sequence[str],
    window: SendPolicy | None = None,
    robots: bool = False,
    channel: str | None = None,
    runner: type[_Run] = _Run,
    in_batches: bool = True,
) -> DeliverReport:
    """Claim due rows of one channel family (email, or ``robots``) in small batches and send each
    with ``runner``, over one opened transport, until none is due, ``limit`` were claimed, or the
    delivery must stop. ``in_batches=False``: one claim of up to ``limit``; ``channel``: only its rows.

    Small batches are what lets several daemons share an outbox (PostgreSQL): each claims about
    ``BATCH_SECONDS`` of sending at the rate it has just seen, so a second daemon finds work too and
    the last batches end close together. Only rows due when the delivery began are taken: a retry
    it schedules waits for the next delivery.
    """
    began = clock.now()
    total = DeliverReport()
    kept = _KeptOpen(transport)
    pool = None if robots else making.pool
    rendering: dict[int, tuple[asyncio.Future, int]] = {}  # the render jobs, across the batches

    def upcoming() -> Sequence[Letter]:
        """The next batch's letters, once claimed and loaded (its first digests are then rendered
        while the current batch's last ones are sent); else nothing."""
        ready = fetching
        if ready is None or not ready.done() or ready.cancelled() or ready.exception() is not None:
            return ()
        return ready.result().letters

    async def fetch(size: int) -> _Batch:
        wanted = (engine, clock.now(), node, size, kinds, mail.max_attempts, window)
        ids, reclaimed = await asyncio.to_thread(claim, *wanted, robots=robots, channel=channel, due_by=began)
        return await _loaded(engine, making, node, ids, reclaimed)

    size = min(FIRST_BATCH, limit) if in_batches else limit
    fetching: asyncio.Future[_Batch] | None = asyncio.ensure_future(fetch(size))
    claimed = 0
    try:
        while fetching is not None:
            batch, fetching = await fetching, None
            total.reclaimed += batch.reclaimed
            if not batch.ids:
                break
            claimed += len(batch.ids)
            started = time.monotonic()
            if pool is not None and claimed >= RENDER_PROCESS_AFTER:
                pool.start()  # (once: it is used from the batch after it answered)
            if in_batches and claimed < limit:  # the next batch is claimed and loaded while this one is sent
                fetching = asyncio.ensure_future(fetch(min(size, limit - claimed)))
            with engine.connect() as connection:
                run = runner(
                    connection, clock, kept, making.renderer, mail, node, rng, stop, pool, rendering, upcoming
                )
                report = await run.run(batch.letters)
            total.add(report)
            if stop() or report.lost or (report.retried and not report.sent):
                break  # asked to stop, our claims were taken, or the mail system takes nothing now
            size = _next_size(len(batch.ids), time.monotonic() - started)
    finally:
        _cancel(rendering)  # what was rendered ahead for a batch not sent (a stop, a lost claim)
        if fetching is not None:  # claimed for nothing: given back untouched
            await _give_back(engine, node, fetching)
        await kept.finish()
    return total


@dataclass
class _Batch:
    ids: list[int]
    reclaimed: int
    letters: list[Letter]


async def _loaded(engine: Engine, making: Letters, node: str, ids: list[int], reclaimed: int) -> _Batch:
    """The claimed ``ids`` loaded (given back untouched if they cannot be)."""
    if not ids:
        return _Batch(ids, reclaimed, [])
    try:
        letters = await asyncio.to_thread(load_letters, engine, ids, making.bundles, making.scorecard)
    except BaseException:
        with engine.connect() as connection:
            release(connection, node, ids)
        raise
    return _Batch(ids, reclaimed, letters)


async def _give_back(engine: Engine, node: str, fetching: asyncio.Future[_Batch]) -> None:
    """Release the batch being fetched once it is (the claim runs in a thread: it cannot be cancelled,
    and a claim left behind would wait ``CLAIM_SECONDS`` and count as an interrupted send)."""
    try:
        batch = await asyncio.shield(fetching)
    except asyncio.CancelledError:
        batch = await fetching
    except Exception:
        return  # it failed: what it had claimed was given back (``_loaded``), or never claimed
    if batch.ids:
        with engine.connect() as connection:
            release(connection, node, batch.ids)


def _next_size(batch: int, seconds: float) -> int:
    """About ``BATCH_SECONDS`` of sending at the rate of the batch just sent (``FIRST_BATCH`` at least)."""
    rate = batch / seconds if seconds > 0 else float("inf")
    return max(FIRST_BATCH, min(MAX_BATCH, int(rate * BATCH_SECONDS)))
