"""Channels whose messages do not leave (``duban status``): the email, or one group robot.

A daemon can be alive and ticking while a channel is stuck — before issue 26 a robot trickling its
answer held every email back while ``status`` said all was well. A channel (``email``,
``robot:NAME``) is stuck when, for longer than ``STUCK_AFTER``:

- a message of it has been ``sending`` (claimed, its claim not renewed: no answer, no progress), or
- messages of it have been due — inside their send window, so the night's wait is not counted —
  and none of that channel was sent meanwhile (a big day that is being sent is not stuck).

Read only; the daemon's own state is not consulted: what the outbox rows say is what counts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from orchestrator.engine.outbox.claims import CLAIM, in_window_only
from orchestrator.engine.window import SendPolicy
from orchestrator.store.models import OutboxMessage
from orchestrator.store.states import OutboxState

STUCK_AFTER = timedelta(minutes=5)


def stuck_channels(
    session: Session,
    now: datetime,
    window: SendPolicy | None,
    iso: Callable[[datetime | None], str | None],
    after: timedelta = STUCK_AFTER,
) -> list[dict[str, Any]]:
    """One row per stuck channel: how many messages wait and since when, how many are being sent
    and since when, and when that channel last sent one (``iso`` formats the times)."""
    table = OutboxMessage.__table__.c
    since = now - after
    sending = {
        channel: (n, oldest - CLAIM)
        for channel, n, oldest in session.execute(
            select(table.channel, func.count(), func.min(table.claimed_until))
            .where(table.state == OutboxState.SENDING)
            .group_by(table.channel)
        )
        if oldest is not None and _aware(oldest) - CLAIM <= since
    }
    due_query = select(OutboxMessage.id).where(
        OutboxMessage.state == OutboxState.PENDING, OutboxMessage.next_attempt_at <= since
    )
    if window is not None:
        due_query = in_window_only(session, due_query, now, window)
    waiting = {
        channel: (n, oldest)
        for channel, n, oldest in session.execute(
            select(table.channel, func.count(), func.min(table.next_attempt_at))
            .where(table.id.in_(due_query.scalar_subquery()))
            .group_by(table.channel)
        )
    }
    last_sent = dict(
        session.execute(
            select(table.channel, func.max(table.sent_at))
            .where(table.channel.in_(sorted({*sending, *waiting})))
            .group_by(table.channel)
        ).all()
    )
    rows = []
    for channel in sorted({*sending, *waiting}):
        sent_at = _aware(last_sent[channel]) if last_sent.get(channel) else None
        due, due_since = waiting.get(channel, (0, None))
        if channel not in sending and sent_at is not None and sent_at > since:
            continue  # due for long, but the channel is sending: a big day, not a stuck one
        in_flight, sending_since = sending.get(channel, (0, None))
        rows.append(
            {
                "channel": channel,
                "due": due,
                "due_since": iso(_aware(due_since)) if due_since else None,
                "sending": in_flight,
                "sending_since": iso(_aware(sending_since)) if sending_since else None,
                "last_sent_at": iso(sent_at) if sent_at else None,
            }
        )
    return rows


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
