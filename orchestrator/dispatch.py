"""The outbox dispatcher: claim due items → group → render → send → record.

Two steps, each durable before the next acts:
1. ``enqueue``: due items are grouped (``digest.group_items``) into ``OutboxMessage`` rows with a
   Message-ID derived from the item keys, in one transaction.
2. ``deliver``: pending messages are claimed, rendered and handed to the transport; the outcome is
   committed per message. A crash between the server's accept and the commit leaves the message
   claimed; when the claim expires it is sent again with the same Message-ID.

4xx, timeouts and dropped connections retry with exponential backoff and jitter; a 5xx refusal of
one recipient is recorded while the others still get the message; a message refused outright is
``failed``, kept, and reported to the admin address once a day. Nothing is deleted.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from notifications.model import digest_message_id
from notifications.render import Renderer
from notifications.transport import Transport
from orchestrator.audit import DAEMON, record
from orchestrator.clock import Clock
from orchestrator.config import MailSettings
from orchestrator.db import transaction
from orchestrator.digest import DigestBuilder, Scorecard, group_items
from orchestrator.models import NotificationItem, OutboxMessage, Program
from workflows.catalog import Bundle
from workflows.errors import PermanentFailure, TransportError

log = structlog.get_logger("duban.dispatch")
CLAIM_SECONDS = 300


@dataclass
class DeliverReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    refused: int = 0
    sent_ids: list[int] = field(default_factory=list)


def backoff(attempts: int, mail: MailSettings, rng: random.Random) -> timedelta:
    """Exponential backoff with ±20 % jitter: retry_base · 2^(attempts−1), capped at retry_max."""
    seconds = min(mail.retry_max, mail.retry_base * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=seconds * rng.uniform(0.8, 1.2))


def _timezones(session: Session, program_ids) -> dict[int, ZoneInfo]:
    rows = session.exec(select(Program.id, Program.timezone).where(Program.id.in_(set(program_ids))))
    return {pid: ZoneInfo(tz) for pid, tz in rows}


def enqueue(engine: Engine, now: datetime, bundles: Mapping[str, Bundle], renderer: Renderer) -> int:
    """Group every pending item with ``send_at <= now`` into outbox messages; returns how many."""
    with transaction(engine) as session:
        query = select(NotificationItem).where(
            NotificationItem.state == "pending", NotificationItem.send_at <= now
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        items = list(session.exec(query))
        if not items:
            return 0
        builder = DigestBuilder(session, bundles)
        builder.prefetch(items)
        created = 0
        for group in group_items(items, _timezones(session, {i.program_id for i in items})):
            digest = builder.digest(group)
            message_id = digest_message_id((i.key for i in group.items), renderer.domain)
            existing = session.exec(
                select(OutboxMessage).where(OutboxMessage.message_id == message_id)
            ).first()
            if existing is None:
                existing = OutboxMessage(
                    message_id=message_id,
                    recipient=group.recipient,
                    to=list(digest.recipient.emails),
                    subject=renderer.subject(digest),
                    send_date=group.send_date,
                    next_attempt_at=now,
                    created_at=now,
                )
                session.add(existing)
                session.flush()
                created += 1
            ids = [i.id for i in group.items]
            session.execute(
                update(NotificationItem)
                .where(NotificationItem.id.in_(ids))
                .values(state="queued", message_id=existing.id)
                .execution_options(synchronize_session=False)
            )
        return created


def _claim(engine: Engine, clock: Clock, node: str, limit: int) -> list[int]:
    now = clock.now()
    with transaction(engine) as session:
        session.execute(  # claims of a process that died: back to pending (re-sent with the same Message-ID)
            update(OutboxMessage)
            .where(OutboxMessage.state == "sending", OutboxMessage.claimed_until < now)
            .values(state="pending", claimed_by=None, claimed_until=None)
        )
        query = (
            select(OutboxMessage.id)
            .where(OutboxMessage.state == "pending", OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(session.exec(query))
        if ids:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), OutboxMessage.state == "pending")
                .values(
                    state="sending", claimed_by=node, claimed_until=now + timedelta(seconds=CLAIM_SECONDS)
                )
            )
        return ids


def _render(engine: Engine, message_id: int, bundles, renderer: Renderer, now: datetime, scorecard):
    with Session(engine, expire_on_commit=False) as session:
        outbox = session.get(OutboxMessage, message_id)
        items = list(session.exec(select(NotificationItem).where(NotificationItem.message_id == message_id)))
        groups = group_items(items, _timezones(session, {i.program_id for i in items}))
        builder = DigestBuilder(session, bundles, scorecard)
        digest = builder.digest(groups[0]) if len(groups) == 1 else None
        if digest is None:  # items of one message always share recipient and day; guard anyway
            merged = [i for g in groups for i in g.items]
            digest = builder.digest(groups[0].__class__(outbox.recipient, outbox.send_date, tuple(merged)))
        message = renderer.render(digest, now=now)
        del message["Message-ID"]
        message["Message-ID"] = outbox.message_id
        return outbox, message


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
    """Send every pending message that is due; returns counts. Stops between messages when ``stop()``."""
    report = DeliverReport()
    ids = _claim(engine, clock, node, limit)
    if not ids:
        return report
    rng = rng or random.Random()
    interval = 1.0 / mail.rate_limit if mail.rate_limit else 0.0
    opened = False
    try:
        for position, message_id in enumerate(ids):
            if stop():
                _release(engine, ids[position:])
                break
            if interval and position:
                await asyncio.sleep(interval)
            outbox, message = _render(engine, message_id, bundles, renderer, clock.now(), scorecard)
            try:
                if not opened:
                    await transport.open()
                    opened = True
                result = await transport.send(message, outbox.to)
            except TransportError as exc:
                _record_failure(engine, clock.now(), outbox, exc, mail, rng, report)
                if not exc.temporary or not opened:
                    continue
                continue
            _record_sent(engine, clock.now(), outbox, result.refused, report)
    finally:
        if opened:
            await transport.close()
    return report


def _release(engine: Engine, ids: list[int]) -> None:
    with transaction(engine) as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.state == "sending")
            .values(state="pending", claimed_by=None, claimed_until=None)
        )


def _record_sent(
    engine: Engine, now: datetime, outbox: OutboxMessage, refused: dict[str, str], report
) -> None:
    with transaction(engine) as session:
        row = session.get(OutboxMessage, outbox.id)
        row.state, row.sent_at, row.attempts = "sent", now, row.attempts + 1
        row.claimed_by = row.claimed_until = None
        row.refused = dict(refused)
        row.last_error = None
        record(
            session,
            at=now,
            actor=DAEMON,
            kind="mail.sent",
            unit=row.recipient,
            subject=row.message_id,
            after={"to": row.to, "subject": row.subject, "refused": row.refused or None},
        )
        if refused:
            record(
                session,
                at=now,
                actor=DAEMON,
                kind="mail.refused",
                unit=row.recipient,
                subject=row.message_id,
                after={"refused": dict(refused)},
                detail="some recipients were refused permanently",
            )
    log.info("mail.sent", message=outbox.message_id, unit=outbox.recipient, refused=len(refused) or None)
    report.sent += 1
    report.refused += len(refused)
    report.sent_ids.append(outbox.id)


def _record_failure(
    engine, now, outbox: OutboxMessage, exc: TransportError, mail: MailSettings, rng, report
) -> None:
    with transaction(engine) as session:
        row = session.get(OutboxMessage, outbox.id)
        row.attempts += 1
        row.last_error = str(exc)[:1000]
        row.claimed_by = row.claimed_until = None
        permanent = isinstance(exc, PermanentFailure) or not exc.temporary
        if permanent or row.attempts >= mail.max_attempts:
            row.state = "failed"
            kind = "mail.failed"
            report.failed += 1
        else:
            row.state = "pending"
            row.next_attempt_at = now + backoff(row.attempts, mail, rng)
            kind = "mail.retry"
            report.retried += 1
        record(
            session,
            at=now,
            actor=DAEMON,
            kind=kind,
            unit=row.recipient,
            subject=row.message_id,
            after={"attempts": row.attempts, "next_attempt_at": format_datetime(row.next_attempt_at)},
            detail=row.last_error,
        )
    log.warning(kind, message=outbox.message_id, unit=outbox.recipient, attempts=row.attempts, error=str(exc))


def failure_report(
    engine: Engine, now: datetime, mail: MailSettings
) -> tuple[EmailMessage, list[int]] | None:
    """The once-a-day email to the admin address listing messages that failed for good (not yet reported)."""
    if not mail.admin:
        return None
    with Session(engine) as session:
        failed = list(
            session.exec(
                select(OutboxMessage).where(
                    OutboxMessage.state == "failed", OutboxMessage.reported_at.is_(None)
                )
            )
        )
        refused = list(
            session.exec(
                select(OutboxMessage).where(
                    OutboxMessage.state == "sent",
                    OutboxMessage.reported_at.is_(None),
                    OutboxMessage.refused != {},
                )
            )
        )
    rows = [m for m in [*failed, *refused] if m.state == "failed" or m.refused]
    if not rows:
        return None
    lines = ["以下邮件未能投递（duban outbox --state failed 可查看，duban outbox retry 可重发）：", ""]
    for m in rows:
        problem = (
            m.last_error if m.state == "failed" else "; ".join(f"{a}: {c}" for a, c in m.refused.items())
        )
        lines.append(f"#{m.id} 致 {m.recipient}（{', '.join(m.to)}）《{m.subject}》：{problem}")
    message = EmailMessage()
    message["From"] = mail.sender
    message["To"] = mail.admin
    message["Subject"] = f"【督办系统】{len(rows)}封邮件投递失败"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<failures-{now:%Y%m%d}-{'-'.join(str(m.id) for m in rows[:20])}@{mail.domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join(lines) + "\n")
    return message, [m.id for m in rows]


async def report_failures(engine: Engine, clock: Clock, transport: Transport, mail: MailSettings) -> int:
    """Send the failure report at most once a day; marks the messages reported. Returns how many were listed."""
    now = clock.now()
    with Session(engine) as session:
        last = session.exec(
            select(OutboxMessage.reported_at)
            .where(OutboxMessage.reported_at.is_not(None))
            .order_by(OutboxMessage.reported_at.desc())
        ).first()
    if last is not None and now - last < timedelta(days=1):
        return 0
    built = failure_report(engine, now, mail)
    if built is None:
        return 0
    message, ids = built
    try:
        await transport.open()
        try:
            await transport.send(message, [mail.admin])
        finally:
            await transport.close()
    except TransportError as exc:
        log.warning("mail.failure_report_failed", error=str(exc))
        return 0
    with transaction(engine) as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(reported_at=now))
        record(
            session,
            at=now,
            actor=DAEMON,
            kind="mail.failures_reported",
            subject=mail.admin,
            after={"messages": ids},
        )
    return len(ids)
