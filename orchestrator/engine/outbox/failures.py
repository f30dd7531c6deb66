"""The admin's daily failure report: what could not be delivered, queued once a day like any email."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import datetime
from email.policy import SMTP
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import String, cast, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from notifications.failures import Undelivered, failure_report
from notifications.transport import Transport
from orchestrator.engine.clock import Clock
from orchestrator.engine.outbox.claims import outbox_update
from orchestrator.engine.outbox.deliver import deliver_batch
from orchestrator.engine.outbox.letters import Letters
from orchestrator.engine.outbox.policy import MailPolicy
from orchestrator.engine.window import local_day
from orchestrator.store.audit import DAEMON, record
from orchestrator.store.db import chunks, transaction
from orchestrator.store.models import OutboxMessage
from orchestrator.store.states import Channel, OutboxKind, OutboxState
from workflows.schema import DEFAULT_TIMEZONE

log = structlog.get_logger("duban.dispatch")

ADMIN_RECIPIENT = "(admin)"  # the recipient of failure reports (not a unit id: units cannot have "()")


def queue_failure_report(engine: Engine, now: datetime, mail: MailPolicy, *, timezone: str) -> list[int]:
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
            select(func.max(OutboxMessage.created_at)).where(OutboxMessage.kind == OutboxKind.FAILURE_REPORT)
        ).one()
        if last is not None and local_day(last, tz) == today:
            return []
        rows = _unreported(session)
        if not rows:
            return []
        assert mail.admin
        message = failure_report(
            undelivered(rows),
            now=now,
            sender=mail.sender,
            admin=mail.admin,
            domain=mail.domain,
            timezone=timezone,
        )
        report = OutboxMessage(
            kind=OutboxKind.FAILURE_REPORT,
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
            session.execute(outbox_update(OutboxMessage.id.in_(chunk)).values(reported_at=now))
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
    unreported = (OutboxMessage.kind == OutboxKind.DIGEST) & OutboxMessage.reported_at.is_(None)
    failed = session.exec(select(OutboxMessage).where(unreported, OutboxMessage.state == OutboxState.FAILED))
    refused = session.exec(
        select(OutboxMessage).where(
            unreported, OutboxMessage.state == OutboxState.SENT, cast(OutboxMessage.refused, String) != "{}"
        )
    )
    rows = {m.id: m for m in [*failed, *refused] if m.state == OutboxState.FAILED or m.refused}
    return [rows[i] for i in sorted(rows)]


def undelivered(rows: Sequence[OutboxMessage]) -> list[Undelivered]:
    """The rows as the plain data the report is rendered from."""
    return [
        Undelivered(
            id=m.id,
            recipient=m.recipient,
            to=tuple(m.to),
            subject=m.subject,
            failed=m.state == OutboxState.FAILED,
            attempts=m.attempts,
            last_error=m.last_error,
            refused=dict(m.refused or {}),
            robot=m.channel.removeprefix(Channel.ROBOT) if m.channel != Channel.EMAIL else None,
        )
        for m in rows
    ]


async def report_failures(
    engine: Engine,
    clock: Clock,
    transport: Transport,
    mail: MailPolicy,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    node: str = DAEMON,
) -> int:
    """Queue today's failure report (``queue_failure_report``) and send every pending one now.

    Returns how many problem messages the newly queued report lists (0: none queued today). A report
    that cannot be sent stays in the outbox and is retried like any message (also by ``deliver``).
    """
    listed = await asyncio.to_thread(queue_failure_report, engine, clock.now(), mail, timezone=timezone)
    making = Letters(bundles={}, scorecard=None, renderer=None)  # reports are rendered when queued
    await deliver_batch(
        engine,
        clock,
        transport,
        mail,
        making,
        node=node,
        limit=100,
        stop=lambda: False,
        rng=random.Random(),
        kinds=(OutboxKind.FAILURE_REPORT,),
    )
    return len(listed)
