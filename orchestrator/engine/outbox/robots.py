"""Deliver the group robots' messages: the same outbox, claims, retries and audit as email.

A digest's robot rows (``channel`` ``robot:NAME``, queued with its email by ``enqueue``) are
claimed apart from the email rows and sent over a ``RobotTransport``; each outcome is its own
(``robot.sent``, ``robot.retry``, ``robot.failed`` events). The message is rendered when sent,
from the digest of the email it goes with (``notifications.robots``).

Pacing: at most ``PER_MINUTE`` messages per robot in any minute, counted from the rows the
database says were sent (so it holds across batches, restarts and daemons). A message over the
limit is not dropped and costs no attempt: it is given back, due when the minute has passed
(``robot.paced``). A robot that answers "too fast" anyway (DingTalk 130101: throttled for ten
minutes) gets its message retried after that, and the rest of the batch for it waits as long.

Failures are counted per robot: ``BREAKER`` temporary failures in a row of one robot (a timeout, an
answer cut off, HTTP 5xx) and its other messages of the batch are given back untried, due after
``retry_base`` and costing no attempt (``robot.held``); the other robots' messages go on. The
daemon delivers each robot apart (``channel``: one robot's rows only), so one robot's slowness holds
neither another robot nor the email (``service/work.py``).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from notifications.errors import RateLimited, TransportError
from notifications.im import PER_MINUTE, RobotMessage, RobotTransport
from notifications.labels import EVENT_DETAILS as WORDS
from notifications.robots import render_robot
from orchestrator.engine.clock import Clock
from orchestrator.engine.digest import Scorecard
from orchestrator.engine.outbox.claims import outbox_update
from orchestrator.engine.outbox.deliver import BREAKER, DeliverReport, _Pacer, _Run, deliver_batch
from orchestrator.engine.outbox.letters import Letter, Letters, one_line
from orchestrator.engine.outbox.policy import MailPolicy
from orchestrator.engine.window import SendPolicy
from orchestrator.store.audit import DAEMON, event_row
from orchestrator.store.models import Event, OutboxMessage
from orchestrator.store.states import Channel, OutboxKind, OutboxState
from workflows.catalog import Bundle

log = structlog.get_logger("duban.dispatch")

MINUTE = timedelta(minutes=1)
Links = Callable[[str], str | None]  # a unit id → its portal page (None: no portal)


class RobotPace:
    """Each robot's sends of the last minute, and how long a throttled robot must wait."""

    def __init__(self, per_minute: int = PER_MINUTE) -> None:
        self.per_minute = per_minute
        self.sent: dict[str, deque[datetime]] = {}
        self.blocked: dict[str, datetime] = {}

    def seed(self, connection: Connection, channels: Sequence[str], now: datetime) -> None:
        """What the database says each of ``channels`` sent in the minute before ``now``."""
        table = OutboxMessage.__table__
        query = (
            select(table.c.channel, table.c.sent_at)
            .where(table.c.channel.in_(sorted(set(channels))), table.c.sent_at > now - MINUTE)
            .order_by(table.c.sent_at)
        )
        with connection.begin():
            rows = connection.execute(query).all()
        for channel, sent_at in rows:
            self.sent.setdefault(channel, deque()).append(sent_at)

    def until(self, channel: str, now: datetime) -> datetime | None:
        """None if ``channel`` may send now, else when it may."""
        blocked = self.blocked.get(channel)
        if blocked is not None and blocked > now:
            return blocked
        times = self.sent.setdefault(channel, deque())
        while times and times[0] <= now - MINUTE:
            times.popleft()
        if len(times) >= self.per_minute:
            return times[len(times) - self.per_minute] + MINUTE
        return None

    def record(self, channel: str, at: datetime) -> None:
        self.sent.setdefault(channel, deque()).append(at)

    def block(self, channel: str, until: datetime) -> None:
        self.blocked[channel] = max(until, self.blocked.get(channel, until))


class _RobotRun(_Run):
    """A batch of robot messages: rendered from their digests, paced per robot."""

    links: Links | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pacer = _Pacer(0)  # the mail rate limit is the mail server's; robots are paced per robot
        self.pace = RobotPace()
        self.down: dict[str, tuple[datetime, str]] = {}  # robot channel → (tried again at, why)

    async def run(self, letters: list[Letter]) -> DeliverReport:
        self.pace.seed(self.connection, [x.channel for x in letters], self.clock.now())
        return await super().run(letters)

    def prepare(self, letter: Letter, now: datetime) -> Generator[None, None, RobotMessage | str]:
        yield  # one step: a robot's text is short
        return self._message(letter)

    def _message(self, letter: Letter) -> RobotMessage | str:
        if letter.problem is not None:
            return letter.problem
        name = letter.channel.removeprefix(Channel.ROBOT)
        robot = self.transport.robots.get(name)
        if robot is None:
            return WORDS["no_robot"].format(name=name)
        if letter.digest is None:
            return WORDS["no_digest"]
        try:
            link = self.links(letter.recipient) if self.links else None
            text = render_robot(letter.digest, robot.fits, link=link)
        except Exception as exc:  # one broken digest must not stop the batch
            return WORDS["unrenderable"].format(error=f"{type(exc).__name__}: {one_line(exc)}")
        return RobotMessage(robot=name, title=text.title, text=text.text, message_id=letter.message_id)

    def hold(self, letter: Letter) -> bool:
        now = self.clock.now()
        down = self.down.get(letter.channel)
        if down is not None:
            until, why = down
            _give_back(self.connection, self.node, letter, now, until, kind="robot.held", detail=why)
            self.report.held += 1
            return True
        until = self.pace.until(letter.channel, now)
        if until is None:
            return False
        _give_back(self.connection, self.node, letter, now, until)
        self.report.paced += 1
        return True

    def destination(self, letter: Letter) -> str:
        return letter.channel

    def broken(self, letters: Sequence[Letter], position: int, error: TransportError) -> bool:
        """This robot failed ``BREAKER`` times in a row: its other messages wait, the rest go on."""
        letter = letters[position]
        until = self.clock.now() + timedelta(seconds=self.mail.retry_base)
        name = letter.channel.removeprefix(Channel.ROBOT)
        why = WORDS["robot_down"].format(name=name, n=BREAKER, error=error)
        self.down[letter.channel] = (until, why)
        log.warning("robot.down", channel=letter.channel, error=str(error), until=until.isoformat())
        return False

    def delivered(self, letter: Letter, at: datetime) -> None:
        self.pace.record(letter.channel, at)

    def limited(self, letter: Letter, error: RateLimited) -> None:
        self.pace.block(letter.channel, self.clock.now() + timedelta(seconds=error.retry_after))


PACED = WORDS["paced"].format(n=PER_MINUTE)


def _give_back(
    connection: Connection,
    node: str,
    letter: Letter,
    now: datetime,
    until: datetime,
    *,
    kind: str = "robot.paced",
    detail: str = PACED,
) -> None:
    """Pending again, due at ``until``, no attempt counted: a robot's minute is full (``robot.paced``),
    or the robot has just failed too often to try it now (``robot.held``)."""
    with connection.begin():
        connection.execute(
            outbox_update(
                OutboxMessage.id == letter.outbox_id,
                OutboxMessage.state == OutboxState.SENDING,
                OutboxMessage.claimed_by == node,
            ).values(state=OutboxState.PENDING, next_attempt_at=until, claimed_by=None, claimed_until=None)
        )
        connection.execute(
            Event.__table__.insert(),
            [
                event_row(
                    at=now,
                    actor=DAEMON,
                    kind=kind,
                    unit=letter.recipient,
                    subject=letter.message_id,
                    before={"state": OutboxState.SENDING},
                    after={
                        "outbox_id": letter.outbox_id,
                        "state": OutboxState.PENDING,
                        "next_attempt_at": until.isoformat(),
                        "channel": letter.channel,
                    },
                    detail=detail,
                )
            ],
        )
    log.info(kind, message=letter.message_id, channel=letter.channel, until=until.isoformat())


async def deliver_robots(
    engine: Engine,
    clock: Clock,
    transport: RobotTransport,
    bundles: Mapping[str, Bundle],
    mail: MailPolicy,
    *,
    links: Links | None = None,
    node: str = DAEMON,
    limit: int = 1000,
    stop: Callable[[], bool] = lambda: False,
    scorecard: Scorecard | None = None,
    rng: random.Random | None = None,
    window: SendPolicy | None = None,
    channel: str | None = None,
) -> DeliverReport:
    """Send up to ``limit`` due robot messages (retries and backoff as ``mail`` says for email).
    With ``window``, only inside the send window, as email (``claims``); with ``channel``
    (``robot:NAME``), only that robot's.

    ``links`` gives a unit's portal page for the message; without it the message names whom to ask.
    """
    runner = type("RobotRun", (_RobotRun,), {"links": staticmethod(links) if links else None})
    return await deliver_batch(
        engine,
        clock,
        transport,
        mail,
        Letters(bundles, scorecard, renderer=None),
        node=node,
        limit=limit,
        stop=stop,
        rng=rng or random.Random(),
        kinds=(OutboxKind.DIGEST,),
        window=window,
        robots=True,
        channel=channel,
        runner=runner,
        in_batches=False,  # a throttled robot is remembered for one run: keep it one claim
    )
