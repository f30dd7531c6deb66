"""What waits to be sent, and when the next email goes: for the operator (``duban status``, the
daemon's start line). Read only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlmodel import Session

from orchestrator.store.models import NotificationItem, OutboxMessage
from orchestrator.store.states import ItemState, OutboxState


@dataclass(frozen=True)
class Waiting:
    notices: int  # notification items not yet grouped into an email (they wait for their send window)
    messages: int  # emails queued, not sent yet
    next_send_at: datetime | None  # when the next of them goes (``now`` if one is due already)

    def as_json(self, iso) -> dict:
        return {"notices": self.notices, "messages": self.messages, "next_send_at": iso(self.next_send_at)}


def waiting(session: Session, now: datetime) -> Waiting:
    """The items and messages still to be sent as of ``now``, and the earliest time one goes out."""
    items, outbox = NotificationItem.__table__.c, OutboxMessage.__table__.c
    connection = session.connection()
    notices, first_item = connection.execute(
        select(func.count(), func.min(items.send_at)).where(items.state == ItemState.PENDING)
    ).one()
    messages, first_message = connection.execute(
        select(func.count(), func.min(outbox.next_attempt_at)).where(
            outbox.state.in_((OutboxState.PENDING, OutboxState.SENDING))
        )
    ).one()
    times = [_aware(t) for t in (first_item, first_message) if t is not None]
    next_at = max(min(times), now) if times else None
    return Waiting(notices, messages, next_at)


def _aware(value: datetime) -> datetime:
    """A stored timestamp as aware UTC (they are stored in UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
