"""The outbox dispatcher: claim due items → group → render → send → record.

Two steps, each durable before the next acts:

1. ``enqueue``: pending items whose send slot has come are grouped (``digest.group_items``, the
   grouping ``simulate`` uses) into one ``OutboxMessage`` per unit and local day, with a Message-ID
   derived from the item keys; messages, item states and audit events in one transaction.
2. ``deliver``: due messages are claimed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), rendered and
   handed to the transport over one connection; each outcome is committed, with its audit event,
   right after the transport returns. A crash between the server's accept and that commit leaves
   the message claimed; when the claim expires (``CLAIM_SECONDS``) it goes back to pending (the
   interrupted send counting as an attempt) and is sent again with the same Message-ID.

Outcomes: 4xx replies, timeouts and lost connections retry with exponential backoff and jitter
(``backoff``), up to ``mail.max_attempts``; a 5xx refusal of some recipients is recorded
(``OutboxMessage.refused`` and a ``mail.refused`` event) while the others get the message; a
message refused outright, or one that cannot be rendered, is ``failed``. Failed messages and
refused recipients are listed once a day to ``mail.admin`` (``report_failures``), through the
outbox like any other email. Nothing is ever deleted.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import String, bindparam, case, cast, func, text, update
from sqlalchemy.engine import Connection, Engine, Row
from sqlmodel import Session, select

from notifications import zh
from notifications.model import Digest, digest_message_id
from notifications.render import Renderer
from notifications.transport import SendResult, Transport
from notifications.view import subject_line
from orchestrator.engine.clock import Clock
from orchestrator.engine.digest import DigestBuilder, Group, Scorecard, group_items
from orchestrator.engine.window import local_day
from orchestrator.service.config import MailSettings
from orchestrator.store.audit import DAEMON, event_row, insert_events, record
from orchestrator.store.db import bulk_insert, chunks, executemany, memoized, transaction
from orchestrator.store.models import Event, NotificationItem, OutboxMessage, Program
from workflows.catalog import Bundle
from workflows.errors import TransportError

log = structlog.get_logger("duban.dispatch")

CLAIM_SECONDS = 300  # a claim older than this belongs to a dead process: the message is sent again
BREAKER = 3  # this many temporary failures in a row: the mail system is down, stop the batch
ADMIN_RECIPIENT = "(admin)"  # the recipient of failure reports (not a unit id: units cannot have "()")
DIGEST, FAILURE_REPORT = "digest", "failure_report"
_ENQUEUE_LOCK = 0x6475626F  # "dubo": PostgreSQL advisory lock class serializing ``enqueue``


@dataclass
class DeliverReport:
    """What one ``deliver`` run did; ``sent_ids`` are outbox ids in send order."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    refused: int = 0
    reclaimed: int = 0
    sent_ids: list[int] = field(default_factory=list)


def backoff(attempts: int, mail: MailSettings, rng: random.Random) -> timedelta:
    """Exponential backoff with ±20 % jitter: retry_base · 2^(attempts−1), capped at retry_max."""
    seconds = min(mail.retry_max, mail.retry_base * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=seconds * rng.uniform(0.8, 1.2))


def _outbox(*where):
    """An UPDATE of outbox rows (no ORM session synchronization: the sessions here hold none)."""
    return update(OutboxMessage).where(*where).execution_options(synchronize_session=False)


def _timezones(session: Session, program_ids: Iterable[int]) -> dict[int, ZoneInfo]:
    rows = session.exec(select(Program.id, Program.timezone).where(Program.id.in_(set(program_ids))))
    return {pid: ZoneInfo(tz) for pid, tz in rows}


# -- enqueue ----------------------------------------------------------------------------------


def enqueue(engine: Engine, now: datetime, bundles: Mapping[str, Bundle], renderer: Renderer) -> int:
    """Group every pending item with ``send_at <= now`` into outbox messages; returns how many were created.

    One transaction: the messages, the items' ``queued`` state and link, and a ``mail.queued`` event
    per message. Concurrent calls are serialized (an advisory lock on PostgreSQL, the single writer on
    SQLite), so one unit never gets two messages for one day because two processes split its items.
    """
    items_table = NotificationItem.__table__
    with transaction(engine) as session:
        if engine.dialect.name == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(:cls, hashtext(current_schema()))"), {"cls": _ENQUEUE_LOCK}
            )
        connection = session.connection()
        columns = [items_table.c[n] for n in ("id", "key", "kind", "recipient", "program_id", "phase")]
        items = connection.execute(
            select(*columns, memoized(items_table.c.send_at), memoized(items_table.c.late))
            .where(items_table.c.state == "pending", items_table.c.send_at <= now)
            .order_by(items_table.c.send_at, items_table.c.id)  # the partial index's order
        ).all()
        if not items:
            return 0
        builder = DigestBuilder(session, bundles)
        groups = group_items(items, _timezones(session, {i.program_id for i in items}))
        keyed = {digest_message_id((i.key for i in g.items), renderer.domain): g for g in groups}
        ids = _existing_messages(connection, list(keyed))
        rows = [
            _message_row(builder, group, message_id, now)
            for message_id, group in keyed.items()
            if message_id not in ids
        ]
        if rows:
            bulk_insert(connection, OutboxMessage.__table__, rows)
            ids.update(_existing_messages(connection, [row["message_id"] for row in rows]))
            insert_events(session, [_queued_event(row, ids[row["message_id"]], now) for row in rows])
        executemany(
            connection,
            "UPDATE notification_item SET state = 'queued', message_id = ? WHERE id = ?",
            [(ids[message_id], item.id) for message_id, group in keyed.items() for item in group.items],
        )
    if rows:
        log.info("mail.queued", messages=len(rows), items=len(items))
    return len(rows)


def _existing_messages(connection, message_ids: list[str]) -> dict[str, int]:
    """Message-ID → outbox id of those already queued (the same items queued again: not a new email)."""
    outbox = OutboxMessage.__table__
    found: dict[str, int] = {}
    for chunk in chunks(message_ids):
        query = select(outbox.c.message_id, outbox.c.id).where(outbox.c.message_id.in_(chunk))
        found.update({message_id: outbox_id for message_id, outbox_id in connection.execute(query)})
    return found


def _message_row(builder: DigestBuilder, group: Group, message_id: str, now) -> dict:
    """The outbox row of one group. A digest that cannot be built is queued all the same (it fails,
    with its reason, when it is sent): one broken item must not keep every other email back."""
    try:
        to, subject = list(builder.addressee(group).emails), subject_line(builder.summary(group))
    except Exception as exc:  # any error of one digest: the others are queued all the same
        log.error("mail.digest_failed", unit=group.recipient, error=_one_line(exc))
        to, subject = [], f"【督办】（{len(group.items)}项通知，无法生成邮件）"
    return {
        "message_id": message_id,
        "recipient": group.recipient,
        "to": to,
        "subject": subject,
        "send_date": group.send_date,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "refused": {},
        "created_at": now,
        "kind": DIGEST,
    }


def _queued_event(row: dict, outbox_id: int, now: datetime) -> dict:
    return event_row(
        at=now,
        actor=DAEMON,
        kind="mail.queued",
        unit=row["recipient"],
        subject=row["message_id"],
        after={"outbox_id": outbox_id, "to": row["to"], "send_date": str(row["send_date"])},
        detail=row["subject"],
    )


# -- claims -----------------------------------------------------------------------------------


def _claim(
    engine: Engine, now: datetime, node: str, limit: int, kinds: Sequence[str], max_attempts: int
) -> tuple[list[int], int]:
    """Take up to ``limit`` due messages for ``node``: ``(ids in send order, expired claims released)``."""
    with transaction(engine) as session:
        reclaimed = _release_expired(session, now, max_attempts)
        due = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.state == "pending",
                OutboxMessage.next_attempt_at <= now,
                OutboxMessage.kind.in_(kinds),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
        if engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        claimed = session.execute(
            _outbox(OutboxMessage.id.in_(due.scalar_subquery()), OutboxMessage.state == "pending")
            .values(state="sending", claimed_by=node, claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            .returning(OutboxMessage.id, OutboxMessage.next_attempt_at)
        ).all()
    return [i for i, _ in sorted(claimed, key=lambda row: (row[1], row[0]))], reclaimed


def _release_expired(session: Session, now: datetime, max_attempts: int) -> int:
    """Claims of a process that died mid-send go back to pending: sent again, with the same Message-ID.

    The interrupted send counts as an attempt (its outcome is unknown), so a message that kills its
    sender every time ends ``failed`` after ``max_attempts`` instead of blocking the outbox forever.
    """
    attempts = OutboxMessage.attempts + 1
    rows = session.execute(
        _outbox(OutboxMessage.state == "sending", OutboxMessage.claimed_until < now)
        .values(
            state=case((attempts >= max_attempts, "failed"), else_="pending"),
            attempts=attempts,
            last_error=_INTERRUPTED,
            claimed_by=None,
            claimed_until=None,
        )
        .returning(OutboxMessage.id, OutboxMessage.message_id, OutboxMessage.recipient, OutboxMessage.state)
    ).all()
    for outbox_id, message_id, recipient, state in rows:
        record(
            session,
            at=now,
            actor=DAEMON,
            kind="mail.reclaimed",
            unit=recipient,
            subject=message_id,
            before={"state": "sending"},
            after={"state": state, "outbox_id": outbox_id},
            detail=_INTERRUPTED + ("; sent again with the same Message-ID" if state == "pending" else ""),
        )
    if rows:
        log.warning("mail.reclaimed", messages=len(rows), failed=sum(r[3] == "failed" for r in rows))
    return len(rows)


_INTERRUPTED = "the sender stopped while sending (its claim expired): the server may have the message"


def _renew(connection: Connection, now: datetime, node: str, ids: Sequence[int]) -> None:
    """Extend this node's claims on ``ids`` (a long batch must not look like a dead one)."""
    with connection.begin():
        for chunk in chunks(ids):
            connection.execute(
                _outbox(
                    OutboxMessage.id.in_(chunk),
                    OutboxMessage.state == "sending",
                    OutboxMessage.claimed_by == node,
                ).values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            )


def _release(connection: Connection, node: str, ids: Sequence[int]) -> None:
    """Give back claims that were not tried (a stop request, an error): pending again, untouched."""
    with connection.begin():
        for chunk in chunks(ids):
            connection.execute(
                _outbox(
                    OutboxMessage.id.in_(chunk),
                    OutboxMessage.state == "sending",
                    OutboxMessage.claimed_by == node,
                ).values(state="pending", claimed_by=None, claimed_until=None)
            )


# -- loading and rendering --------------------------------------------------------------------


@dataclass(frozen=True)
class _Letter:
    """A claimed message, detached from the database: what to send, to whom, or why it cannot be."""

    outbox_id: int
    message_id: str
    recipient: str
    to: tuple[str, ...]
    attempts: int
    kind: str
    body: bytes | None
    digest: Digest | None
    problem: str | None  # set when no message can be made (e.g. the digest cannot be built)


def _load(
    engine: Engine, ids: Sequence[int], bundles: Mapping[str, Bundle], scorecard: Scorecard | None
) -> list[_Letter]:
    """The claimed messages with their digests built, in one session (bulk queries on plain rows)."""
    outbox, items_table = OutboxMessage.__table__, NotificationItem.__table__
    with Session(engine) as session:
        connection = session.connection()
        rows: dict[int, Row] = {}
        items: dict[int, list[Row]] = {}
        for chunk in chunks(ids):
            rows.update(
                {row.id: row for row in connection.execute(select(outbox).where(outbox.c.id.in_(chunk)))}
            )
            query = select(items_table).where(items_table.c.message_id.in_(chunk)).order_by(items_table.c.id)
            for item in connection.execute(query):
                items.setdefault(item.message_id, []).append(item)
        builder = DigestBuilder(session, bundles, scorecard)
        builder.prefetch([i for group in items.values() for i in group])
        return [_letter(rows[i], items.get(i, []), builder) for i in ids if i in rows]


def _letter(row: Row, items: list[Row], builder: DigestBuilder) -> _Letter:
    digest = problem = None
    if row.body is None:
        if not items:
            problem = "cannot render: the message has no notification items"
        else:
            try:
                digest = builder.digest(Group(row.recipient, row.send_date, tuple(items)))
            except Exception as exc:  # one broken digest must not stop the batch: it is marked failed
                problem = f"cannot render: {type(exc).__name__}: {_one_line(exc)}"
    return _Letter(
        outbox_id=row.id,
        message_id=row.message_id,
        recipient=row.recipient,
        to=tuple(row.to),
        attempts=row.attempts,
        kind=row.kind,
        body=row.body,
        digest=digest,
        problem=problem,
    )


def _make(letter: _Letter, renderer: Renderer | None, now: datetime) -> EmailMessage:
    """The email of ``letter``: its stored body, or its digest rendered now. Raises on failure."""
    if letter.problem is not None:
        raise _Unrenderable(letter.problem)
    if letter.body is not None:
        return message_from_bytes(letter.body, policy=SMTP)  # type: ignore[return-value]
    if renderer is None or letter.digest is None:
        raise _Unrenderable("cannot render: no renderer for a digest")
    message = renderer.render(letter.digest, now=now)
    if renderer.message_id(letter.digest) != letter.message_id:  # the same keys give the same id
        del message["Message-ID"]  # (a domain changed in config since queueing): the stored one wins
        message["Message-ID"] = letter.message_id
    return message


class _Unrenderable(Exception):
    """A message that cannot be made (its text says why); it is marked failed."""


def _prepare(letter: _Letter, renderer: Renderer | None, now: datetime) -> EmailMessage | str:
    """The message, or the one-line reason it cannot be made."""
    try:
        return _make(letter, renderer, now)
    except _Unrenderable as exc:
        return str(exc)
    except Exception as exc:  # a template or data error in one digest must not stop the batch
        return f"cannot render: {type(exc).__name__}: {_one_line(exc)}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# -- recording outcomes -----------------------------------------------------------------------


_SET_OUTCOME = OutboxMessage.__table__.update().where(
    OutboxMessage.__table__.c.id == bindparam("outbox_id")
)  # the SET clause comes from the parameters given with it


def _commit_outcome(connection: Connection, outbox_id: int, values: dict, events: list[dict]) -> None:
    """One short transaction: the message's new state and its audit events.

    Core statements built once, on the batch's connection: this runs once per message, and pool
    checkouts, statement building and the ORM's unit of work cost more than the send itself.
    """
    with connection.begin():
        connection.execute(_SET_OUTCOME, {"outbox_id": outbox_id, **values})
        connection.execute(Event.__table__.insert(), events)


def _record_sent(connection: Connection, now: datetime, letter: _Letter, result: SendResult) -> None:
    refused = dict(result.refused)
    attempts = letter.attempts + 1
    about = {"at": now, "actor": DAEMON, "unit": letter.recipient, "subject": letter.message_id}
    events = [
        event_row(
            kind="mail.sent",
            after={"outbox_id": letter.outbox_id, "to": list(result.accepted), "attempts": attempts},
            **about,
        )
    ]
    if refused:
        events.append(
            event_row(
                kind="mail.refused",
                after={"outbox_id": letter.outbox_id, "refused": refused},
                detail="refused for good by the mail server; the other recipients got the message",
                **about,
            )
        )
    values = {"state": "sent", "sent_at": now, "attempts": attempts, "refused": refused, "last_error": None}
    _commit_outcome(
        connection, letter.outbox_id, values | {"claimed_by": None, "claimed_until": None}, events
    )
    log.info(
        "mail.sent",
        message=letter.message_id,
        unit=letter.recipient,
        attempts=attempts,
        refused=sorted(refused) or None,
    )


def _record_failure(
    connection: Connection,
    now: datetime,
    letter: _Letter,
    error: str,
    *,
    permanent: bool,
    mail: MailSettings,
    rng: random.Random,
) -> bool:
    """Count a failed attempt: pending again after a backoff, or ``failed``. Returns True when failed."""
    attempts = letter.attempts + 1
    failed = permanent or attempts >= mail.max_attempts
    next_attempt = None if failed else now + backoff(attempts, mail, rng)
    state = "failed" if failed else "pending"
    values: dict = {"state": state, "attempts": attempts, "last_error": error[:1000]}
    values |= {"claimed_by": None, "claimed_until": None}
    if next_attempt is not None:
        values["next_attempt_at"] = next_attempt
    kind = "mail.failed" if failed else "mail.retry"
    shown = next_attempt.isoformat() if next_attempt else None
    event = event_row(
        at=now,
        actor=DAEMON,
        kind=kind,
        unit=letter.recipient,
        subject=letter.message_id,
        before={"state": "sending"},
        after={"outbox_id": letter.outbox_id, "state": state, "attempts": attempts, "next_attempt_at": shown},
        detail=error[:1000],
    )
    _commit_outcome(connection, letter.outbox_id, values, [event])
    log.warning(
        kind,
        message=letter.message_id,
        unit=letter.recipient,
        attempts=attempts,
        next_attempt_at=shown,
        error=error,
    )
    return failed


# -- delivering -------------------------------------------------------------------------------


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


class _Run:
    """One batch: claimed letters rendered, sent in order over one opened transport, each outcome committed.

    Everything here runs on the event loop, between awaits on the mail server: rendering takes about
    a millisecond a message and each commit is a short transaction on a connection held for the batch.
    In worker threads they only contended with the SMTP conversation for the GIL and cost more.
    """

    def __init__(
        self,
        connection: Connection,
        clock: Clock,
        transport: Transport,
        renderer: Renderer | None,
        mail: MailSettings,
        node: str,
        rng: random.Random,
        stop: Callable[[], bool],
    ) -> None:
        self.connection, self.clock, self.transport, self.renderer = connection, clock, transport, renderer
        self.mail, self.node, self.rng, self.stop = mail, node, rng, stop
        self.report = DeliverReport()
        self.pacer = _Pacer(mail.rate_limit)
        self.renewed = time.monotonic()
        self.untried = 0  # letters[untried:] were not started: given back if the batch ends early

    async def run(self, letters: list[_Letter]) -> DeliverReport:
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
            # After a stop request or an error: give back what was not tried (the letter in flight, if
            # any, keeps its claim: the server may have it; it is sent again when the claim expires).
            if self.untried < len(letters):
                _release(self.connection, self.node, [x.outbox_id for x in letters[self.untried :]])
        return self.report

    async def _send_all(self, letters: list[_Letter]) -> None:
        """Render, send, record, one letter after the other; stops early on ``stop()`` or a dead server."""
        now = self.clock.now()
        temporary_in_a_row = 0
        for position, letter in enumerate(letters):
            if self.stop():
                return
            self._keep_claim(letters[position:])
            self.untried = position + 1
            prepared = _prepare(letter, self.renderer, now)
            if isinstance(prepared, str):
                self._failed(letter, prepared, permanent=True)
                continue
            await self.pacer.wait()
            try:
                result = await self.transport.send(prepared, letter.to)
            except TransportError as exc:
                self._failed(letter, str(exc), permanent=not exc.temporary)
                temporary_in_a_row = temporary_in_a_row + 1 if exc.temporary else 0
                if temporary_in_a_row >= BREAKER:
                    self.untried = len(letters)
                    self._connection_down(letters[position + 1 :], f"not tried: {exc}")
                    return
                continue
            temporary_in_a_row = 0
            _record_sent(self.connection, self.clock.now(), letter, result)
            self.report.sent += 1
            self.report.refused += len(result.refused)
            self.report.sent_ids.append(letter.outbox_id)

    def _failed(self, letter: _Letter, error: str, *, permanent: bool) -> None:
        now = self.clock.now()
        if _record_failure(
            self.connection, now, letter, error, permanent=permanent, mail=self.mail, rng=self.rng
        ):
            self.report.failed += 1
        else:
            self.report.retried += 1

    def _connection_down(self, letters: Sequence[_Letter], error: str) -> None:
        """The mail system cannot be reached: a failed, retried attempt for every letter of the batch.

        Even a permanent-looking error here (bad credentials, a rejected certificate) is a problem of
        the configuration, not of the messages: they are retried, and the error is logged loudly.
        """
        log.error("mail.unavailable", error=error, messages=len(letters))
        for letter in letters:
            self._failed(letter, error, permanent=False)

    def _keep_claim(self, remaining: Sequence[_Letter]) -> None:
        if time.monotonic() - self.renewed > CLAIM_SECONDS / 3:
            _renew(self.connection, self.clock.now(), self.node, [x.outbox_id for x in remaining])
            self.renewed = time.monotonic()


async def deliver(
    engine: Engine,
    clock: Clock,
    transport: Transport,
    renderer: Renderer,
    bundles: Mapping[str, Bundle],
    mail: MailSettings,
    *,
    node: str = DAEMON,
    limit: int = 1000,
    stop: Callable[[], bool] = lambda: False,
    scorecard: Scorecard | None = None,
    rng: random.Random | None = None,
) -> DeliverReport:
    """Send up to ``limit`` due messages (digests and failure reports) over one connection.

    ``stop()`` is checked between messages: the message in flight is finished and recorded, the rest
    go back to pending untouched. The claim and the loading of the batch run in worker threads; each
    message's commit is a short transaction on the event loop, between two SMTP conversations.
    """
    return await _deliver(
        engine,
        clock,
        transport,
        mail,
        _Letters(bundles, scorecard, renderer),
        node=node,
        limit=limit,
        stop=stop,
        rng=rng or random.Random(),
        kinds=(DIGEST, FAILURE_REPORT),
    )


@dataclass(frozen=True)
class _Letters:
    """What turns claimed rows into emails: the loaded plans, the scorecard hook, the renderer."""

    bundles: Mapping[str, Bundle]
    scorecard: Scorecard | None
    renderer: Renderer | None


async def _deliver(
    engine: Engine,
    clock: Clock,
    transport: Transport,
    mail: MailSettings,
    making: _Letters,
    *,
    node: str,
    limit: int,
    stop: Callable[[], bool],
    rng: random.Random,
    kinds: Sequence[str],
) -> DeliverReport:
    claim = (engine, clock.now(), node, limit, kinds, mail.max_attempts)
    ids, reclaimed = await asyncio.to_thread(_claim, *claim)
    if not ids:
        return DeliverReport(reclaimed=reclaimed)
    with engine.connect() as connection:
        try:
            letters = await asyncio.to_thread(_load, engine, ids, making.bundles, making.scorecard)
        except BaseException:
            _release(connection, node, ids)
            raise
        runner = _Run(connection, clock, transport, making.renderer, mail, node, rng, stop)
        report = await runner.run(letters)
    report.reclaimed = reclaimed
    return report


# -- the admin's daily failure report ---------------------------------------------------------


def queue_failure_report(engine: Engine, now: datetime, mail: MailSettings, *, timezone: str) -> list[int]:
    """Queue one email to ``mail.admin`` listing what could not be delivered and was not reported yet.

    At most one report per local day (in ``timezone``). Listed: digests that ``failed``, and sent
    digests with refused recipients. They are marked ``reported_at`` in the same transaction as the
    report is queued, so each is reported once. Returns the outbox ids listed (empty: nothing queued).
    """
    if not mail.admin:
        return []
    tz = ZoneInfo(timezone)
    today = local_day(now, tz)
    with transaction(engine) as session:
        last = session.exec(
            select(func.max(OutboxMessage.created_at)).where(OutboxMessage.kind == FAILURE_REPORT)
        ).one()
        if last is not None and local_day(last, tz) == today:
            return []
        rows = _unreported(session)
        if not rows:
            return []
        message = failure_message(rows, now, mail, tz)
        report = OutboxMessage(
            kind=FAILURE_REPORT,
            message_id=message["Message-ID"],
            recipient=ADMIN_RECIPIENT,
            to=[mail.admin],
            subject=str(message["Subject"]),
            send_date=today,
            next_attempt_at=now,
            created_at=now,
            body=message.as_bytes(policy=SMTP),
        )
        session.add(report)
        ids = [m.id for m in rows]
        for chunk in chunks(ids):
            session.execute(_outbox(OutboxMessage.id.in_(chunk)).values(reported_at=now))
        session.flush()
        record(
            session,
            at=now,
            actor=DAEMON,
            kind="mail.failures_reported",
            subject=report.message_id,
            after={"outbox_id": report.id, "to": mail.admin, "messages": ids},
        )
    log.warning("mail.failure_report_queued", messages=len(ids), to=mail.admin)
    return ids


def _unreported(session: Session) -> list[OutboxMessage]:
    unreported = (OutboxMessage.kind == DIGEST) & OutboxMessage.reported_at.is_(None)
    failed = session.exec(select(OutboxMessage).where(unreported, OutboxMessage.state == "failed"))
    refused = session.exec(
        select(OutboxMessage).where(
            unreported, OutboxMessage.state == "sent", cast(OutboxMessage.refused, String) != "{}"
        )
    )
    rows = {m.id: m for m in [*failed, *refused] if m.state == "failed" or m.refused}
    return [rows[i] for i in sorted(rows)]


def failure_message(
    rows: Sequence[OutboxMessage], now: datetime, mail: MailSettings, tz: ZoneInfo
) -> EmailMessage:
    """The report's email (plain text, zh-CN): each message, its recipients, and what went wrong."""
    assert mail.admin
    local = now.astimezone(tz)
    failed = [m for m in rows if m.state == "failed"]
    refused = [m for m in rows if m.state != "failed"]
    lines = [f"截至{zh.day(local.date())} {local:%H:%M}，以下督办邮件未能投递，请核查：", ""]
    if failed:
        lines += [f"一、投递失败的邮件（{len(failed)}封）", ""]
        for m in failed:
            lines += [
                f"#{m.id} 致 {m.recipient}（{', '.join(m.to) or '无地址'}）",
                f"    主题：{m.subject}",
                f"    尝试：{m.attempts}次；原因：{m.last_error or '未知'}",
                "",
            ]
    if refused:
        lines += [f"{'二' if failed else '一'}、已投递但有收件人被拒收的邮件（{len(refused)}封）", ""]
        for m in refused:
            lines += [f"#{m.id} 致 {m.recipient}，主题：{m.subject}"]
            lines += [f"    {address}：{reply}" for address, reply in sorted(m.refused.items())]
            lines += [""]
    lines += [
        "处理办法：",
        "- 查看：duban outbox --state failed",
        "- 排除原因（如核对单位文件中的电子邮箱、邮件服务器设置）后重发：",
        "  duban outbox retry 编号，或 duban outbox retry --all-failed",
        "",
        "--",
        "本邮件由督办系统每日自动发送一次，仅列出此前未报告的问题。",
    ]
    digest = hashlib.sha256(",".join(str(m.id) for m in rows).encode()).hexdigest()[:16]
    message = EmailMessage(policy=SMTP)
    message["From"] = mail.sender
    message["To"] = mail.admin
    message["Subject"] = f"【督办系统】{len(rows)}封邮件投递失败或被拒收"
    message["Date"] = format_datetime(local)
    message["Message-ID"] = f"<failures-{local:%Y%m%d}-{digest}@{mail.domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join(lines) + "\n", charset="utf-8", cte="base64")
    return message


async def report_failures(
    engine: Engine,
    clock: Clock,
    transport: Transport,
    mail: MailSettings,
    *,
    timezone: str = "Asia/Shanghai",
    node: str = DAEMON,
) -> int:
    """Queue today's failure report (``queue_failure_report``) and send every pending one now.

    Returns how many problem messages the newly queued report lists (0: none queued today). A report
    that cannot be sent stays in the outbox and is retried like any message (also by ``deliver``).
    """
    listed = await asyncio.to_thread(queue_failure_report, engine, clock.now(), mail, timezone=timezone)
    making = _Letters(bundles={}, scorecard=None, renderer=None)  # reports are rendered when queued
    await _deliver(
        engine,
        clock,
        transport,
        mail,
        making,
        node=node,
        limit=100,
        stop=lambda: False,
        rng=random.Random(),
        kinds=(FAILURE_REPORT,),
    )
    return len(listed)
