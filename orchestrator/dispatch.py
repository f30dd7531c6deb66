"""The outbox dispatcher: claim due items → group → render → send → record.

Two steps, each durable before the next acts:

1. ``enqueue``: pending items whose send slot has come are grouped (``digest.group_items``, the
   grouping ``simulate`` uses) into one ``OutboxMessage`` per unit and local day, with a Message-ID
   derived from the item keys; messages, item states and audit events in one transaction.
2. ``deliver``: due messages are claimed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), rendered and
   handed to the transport over one connection; each outcome is committed, with its audit event,
   right after the transport returns. A crash between the server's accept and that commit leaves
   the message claimed; when the claim expires (``CLAIM_SECONDS``) it goes back to pending and is
   sent again with the same Message-ID.

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
from sqlalchemy import String, cast, func, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from notifications import zh
from notifications.model import Digest, digest_message_id
from notifications.render import Renderer
from notifications.transport import SendResult, Transport
from orchestrator.audit import DAEMON, record
from orchestrator.clock import Clock
from orchestrator.config import MailSettings
from orchestrator.db import transaction
from orchestrator.digest import DigestBuilder, Group, Scorecard, group_items
from orchestrator.models import NotificationItem, OutboxMessage, Program
from orchestrator.window import local_day
from workflows.catalog import Bundle
from workflows.errors import TransportError

log = structlog.get_logger("duban.dispatch")

CLAIM_SECONDS = 300  # a claim older than this belongs to a dead process: the message is sent again
BREAKER = 3  # this many temporary failures in a row: the mail system is down, stop the batch
ADMIN_RECIPIENT = "(admin)"  # the recipient of failure reports (not a unit id: units cannot have "()")
DIGEST, FAILURE_REPORT = "digest", "failure_report"
_ENQUEUE_LOCK = 0x6475626F  # "dubo": PostgreSQL advisory lock class serializing ``enqueue``
_CHUNK = 900  # ids per IN (...) list (SQLite's default limit is 999 variables)


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


def _chunks(values: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


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
    with transaction(engine) as session:
        if engine.dialect.name == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(:cls, hashtext(current_schema()))"), {"cls": _ENQUEUE_LOCK}
            )
        items = list(
            session.exec(
                select(NotificationItem)
                .where(NotificationItem.state == "pending", NotificationItem.send_at <= now)
                .order_by(NotificationItem.id)
            )
        )
        if not items:
            return 0
        builder = DigestBuilder(session, bundles)
        builder.prefetch(items)
        groups = group_items(items, _timezones(session, {i.program_id for i in items}))
        keyed = {digest_message_id((i.key for i in g.items), renderer.domain): g for g in groups}
        existing: dict[str, int] = {}
        for chunk in _chunks(list(keyed)):
            rows = session.exec(
                select(OutboxMessage.message_id, OutboxMessage.id).where(OutboxMessage.message_id.in_(chunk))
            )
            existing.update(dict(rows.all()))
        created = [
            _new_message(builder.digest(group), group, message_id, renderer, now)
            for message_id, group in keyed.items()
            if message_id not in existing
        ]
        session.add_all(created)
        session.flush()
        existing.update({m.message_id: m.id for m in created})
        session.execute(
            update(NotificationItem).execution_options(synchronize_session=False),
            [
                {"id": item.id, "state": "queued", "message_id": existing[message_id]}
                for message_id, group in keyed.items()
                for item in group.items
            ],
        )
        for message in created:
            record(
                session,
                at=now,
                actor=DAEMON,
                kind="mail.queued",
                unit=message.recipient,
                subject=message.message_id,
                after={"outbox_id": message.id, "to": message.to, "send_date": str(message.send_date)},
                detail=message.subject,
            )
    if created:
        log.info("mail.queued", messages=len(created), items=len(items))
    return len(created)


def _new_message(digest: Digest, group: Group, message_id: str, renderer: Renderer, now: datetime):
    return OutboxMessage(
        message_id=message_id,
        recipient=group.recipient,
        to=list(digest.recipient.emails),
        subject=renderer.subject(digest),
        send_date=group.send_date,
        next_attempt_at=now,
        created_at=now,
    )


# -- claims -----------------------------------------------------------------------------------


def _claim(
    engine: Engine, now: datetime, node: str, limit: int, kinds: Sequence[str]
) -> tuple[list[int], int]:
    """Take up to ``limit`` due messages for ``node``: ``(ids in send order, expired claims released)``."""
    with transaction(engine) as session:
        reclaimed = _release_expired(session, now)
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


def _release_expired(session: Session, now: datetime) -> int:
    """Claims of a process that died mid-send go back to pending: sent again, same Message-ID."""
    rows = session.execute(
        _outbox(OutboxMessage.state == "sending", OutboxMessage.claimed_until < now)
        .values(state="pending", claimed_by=None, claimed_until=None)
        .returning(OutboxMessage.id, OutboxMessage.message_id, OutboxMessage.recipient)
    ).all()
    for outbox_id, message_id, recipient in rows:
        record(
            session,
            at=now,
            actor=DAEMON,
            kind="mail.reclaimed",
            unit=recipient,
            subject=message_id,
            before={"state": "sending"},
            after={"state": "pending", "outbox_id": outbox_id},
            detail="the claim expired (the sender stopped mid-send): sent again with the same Message-ID",
        )
    if rows:
        log.warning("mail.reclaimed", messages=len(rows))
    return len(rows)


def _renew(engine: Engine, now: datetime, node: str, ids: Sequence[int]) -> None:
    """Extend this node's claims on ``ids`` (a long batch must not look like a dead one)."""
    with transaction(engine) as session:
        for chunk in _chunks(ids):
            session.execute(
                _outbox(
                    OutboxMessage.id.in_(chunk),
                    OutboxMessage.state == "sending",
                    OutboxMessage.claimed_by == node,
                ).values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            )


def _release(engine: Engine, node: str, ids: Sequence[int]) -> None:
    """Give back claims that were not tried (a stop request, an error): pending again, untouched."""
    with transaction(engine) as session:
        for chunk in _chunks(ids):
            session.execute(
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
    """The claimed messages with their digests built, in one session (bulk queries)."""
    with Session(engine, expire_on_commit=False) as session:
        rows: dict[int, OutboxMessage] = {}
        items: dict[int, list[NotificationItem]] = {}
        for chunk in _chunks(ids):
            rows.update(
                {m.id: m for m in session.exec(select(OutboxMessage).where(OutboxMessage.id.in_(chunk)))}
            )
            for item in session.exec(
                select(NotificationItem)
                .where(NotificationItem.message_id.in_(chunk))
                .order_by(NotificationItem.id)
            ):
                items.setdefault(item.message_id, []).append(item)
        builder = DigestBuilder(session, bundles, scorecard)
        builder.prefetch([i for group in items.values() for i in group])
        return [_letter(rows[i], items.get(i, []), builder) for i in ids if i in rows]


def _letter(row: OutboxMessage, items: list[NotificationItem], builder: DigestBuilder) -> _Letter:
    digest = problem = None
    if row.body is None:
        if not items:
            problem = "cannot render: the message has no notification items"
        else:
            try:
                digest = builder.digest(Group(row.recipient, row.send_date, tuple(items)))
            except Exception as exc:  # one broken digest must not stop the batch: it is marked failed
                problem = f"cannot render: {type(exc).__name__}: {exc}"
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
    if message["Message-ID"] != letter.message_id:  # the same keys give the same id; the stored one wins
        del message["Message-ID"]
        message["Message-ID"] = letter.message_id
    return message


class _Unrenderable(Exception):
    """A message that cannot be made (its text says why); it is marked failed."""


def _prepare(letter: _Letter, renderer: Renderer | None, now: datetime) -> EmailMessage | str:
    """The message, or the one-line reason it cannot be made. Runs in a worker thread."""
    try:
        return _make(letter, renderer, now)
    except _Unrenderable as exc:
        return str(exc)
    except Exception as exc:  # a template or data error in one digest must not stop the batch
        return f"cannot render: {type(exc).__name__}: {exc}"


# -- recording outcomes -----------------------------------------------------------------------


def _record_sent(engine: Engine, now: datetime, letter: _Letter, result: SendResult) -> None:
    refused = dict(result.refused)
    with transaction(engine) as session:
        session.execute(
            _outbox(OutboxMessage.id == letter.outbox_id).values(
                state="sent",
                sent_at=now,
                attempts=letter.attempts + 1,
                claimed_by=None,
                claimed_until=None,
                refused=refused,
                last_error=None,
            )
        )
        record(
            session,
            at=now,
            actor=DAEMON,
            kind="mail.sent",
            unit=letter.recipient,
            subject=letter.message_id,
            after={
                "outbox_id": letter.outbox_id,
                "to": list(result.accepted),
                "attempts": letter.attempts + 1,
            },
        )
        if refused:
            record(
                session,
                at=now,
                actor=DAEMON,
                kind="mail.refused",
                unit=letter.recipient,
                subject=letter.message_id,
                after={"outbox_id": letter.outbox_id, "refused": refused},
                detail="refused for good by the mail server; the other recipients got the message",
            )
    log.info(
        "mail.sent",
        message=letter.message_id,
        unit=letter.recipient,
        attempts=letter.attempts + 1,
        refused=sorted(refused) or None,
    )


def _record_failure(
    engine: Engine,
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
    values: dict = {
        "state": "failed" if failed else "pending",
        "attempts": attempts,
        "last_error": error[:1000],
        "claimed_by": None,
        "claimed_until": None,
    }
    if next_attempt is not None:
        values["next_attempt_at"] = next_attempt
    kind = "mail.failed" if failed else "mail.retry"
    with transaction(engine) as session:
        session.execute(_outbox(OutboxMessage.id == letter.outbox_id).values(**values))
        record(
            session,
            at=now,
            actor=DAEMON,
            kind=kind,
            unit=letter.recipient,
            subject=letter.message_id,
            before={"state": "sending"},
            after={
                "outbox_id": letter.outbox_id,
                "state": values["state"],
                "attempts": attempts,
                "next_attempt_at": next_attempt.isoformat() if next_attempt else None,
            },
            detail=error[:1000],
        )
    log.warning(
        kind,
        message=letter.message_id,
        unit=letter.recipient,
        attempts=attempts,
        next_attempt_at=next_attempt.isoformat() if next_attempt else None,
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
    """One batch: claimed letters sent in order over one opened transport, each outcome committed."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        transport: Transport,
        renderer: Renderer | None,
        mail: MailSettings,
        node: str,
        rng: random.Random,
        stop: Callable[[], bool],
    ) -> None:
        self.engine, self.clock, self.transport, self.renderer = engine, clock, transport, renderer
        self.mail, self.node, self.rng, self.stop = mail, node, rng, stop
        self.report = DeliverReport()
        self.pacer = _Pacer(mail.rate_limit)
        self.renewed = time.monotonic()
        self.untried = 0

    async def run(self, letters: list[_Letter]) -> DeliverReport:
        self.untried = 0  # letters[untried:] were not started: given back if the batch ends early
        try:
            try:
                await self.transport.open()
            except TransportError as exc:
                self.untried = len(letters)
                await self._connection_down(letters, f"cannot open the connection: {exc}")
                return self.report
            try:
                await self._send_all(letters)
            finally:
                await self.transport.close()
        finally:
            if self.untried < len(
                letters
            ):  # a stop request or an error; the letter in flight keeps its claim
                ids = [x.outbox_id for x in letters[self.untried :]]
                await asyncio.to_thread(_release, self.engine, self.node, ids)
        return self.report

    async def _send_all(self, letters: list[_Letter]) -> None:
        """Send in order, rendering the next letter in a thread while this one is on the wire."""
        now = self.clock.now()
        upcoming = asyncio.ensure_future(asyncio.to_thread(_prepare, letters[0], self.renderer, now))
        temporary_in_a_row = 0
        try:
            for position, letter in enumerate(letters):
                prepared = await upcoming
                if position + 1 < len(letters):
                    upcoming = asyncio.ensure_future(
                        asyncio.to_thread(_prepare, letters[position + 1], self.renderer, now)
                    )
                if self.stop():
                    return
                await self._keep_claim(letters[position:])
                self.untried = position + 1
                if isinstance(prepared, str):
                    await self._failed(letter, prepared, permanent=True)
                    continue
                await self.pacer.wait()
                try:
                    result = await self.transport.send(prepared, letter.to)
                except TransportError as exc:
                    await self._failed(letter, str(exc), permanent=not exc.temporary)
                    temporary_in_a_row = temporary_in_a_row + 1 if exc.temporary else 0
                    if temporary_in_a_row >= BREAKER:
                        self.untried = len(letters)
                        await self._connection_down(letters[position + 1 :], f"not tried: {exc}")
                        return
                    continue
                temporary_in_a_row = 0
                await asyncio.to_thread(_record_sent, self.engine, self.clock.now(), letter, result)
                self.report.sent += 1
                self.report.refused += len(result.refused)
                self.report.sent_ids.append(letter.outbox_id)
        finally:
            upcoming.cancel()

    async def _failed(self, letter: _Letter, error: str, *, permanent: bool) -> None:
        failed = await asyncio.to_thread(
            _record_failure,
            self.engine,
            self.clock.now(),
            letter,
            error,
            permanent=permanent,
            mail=self.mail,
            rng=self.rng,
        )
        if failed:
            self.report.failed += 1
        else:
            self.report.retried += 1

    async def _connection_down(self, letters: Sequence[_Letter], error: str) -> None:
        """The mail system cannot be reached: a failed, retried attempt for every letter of the batch.

        Even a permanent-looking error here (bad credentials, a rejected certificate) is a problem of
        the configuration, not of the messages: they are retried, and the error is logged loudly.
        """
        log.error("mail.unavailable", error=error, messages=len(letters))
        for letter in letters:
            await self._failed(letter, error, permanent=False)

    async def _keep_claim(self, remaining: Sequence[_Letter]) -> None:
        if time.monotonic() - self.renewed > CLAIM_SECONDS / 3:
            ids = [x.outbox_id for x in remaining]
            await asyncio.to_thread(_renew, self.engine, self.clock.now(), self.node, ids)
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
    """Send up to ``limit`` due messages over one connection; returns what happened.

    ``stop()`` is checked between messages: the message in flight is finished and recorded, the rest
    go back to pending untouched. Database work runs in worker threads, so the event loop stays free.
    """
    return await _deliver(
        engine,
        clock,
        transport,
        renderer,
        bundles,
        mail,
        node,
        limit,
        stop,
        scorecard,
        rng,
        (DIGEST, FAILURE_REPORT),
    )


async def _deliver(
    engine, clock, transport, renderer, bundles, mail, node, limit, stop, scorecard, rng, kinds
) -> DeliverReport:
    ids, reclaimed = await asyncio.to_thread(_claim, engine, clock.now(), node, limit, kinds)
    if not ids:
        return DeliverReport(reclaimed=reclaimed)
    try:
        letters = await asyncio.to_thread(_load, engine, ids, bundles, scorecard)
    except BaseException:
        await asyncio.to_thread(_release, engine, node, ids)
        raise
    runner = _Run(engine, clock, transport, renderer, mail, node, rng or random.Random(), stop)
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
        for chunk in _chunks(ids):
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
    await _deliver(
        engine, clock, transport, None, {}, mail, node, 100, lambda: False, None, None, (FAILURE_REPORT,)
    )
    return len(listed)
