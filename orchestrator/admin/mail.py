"""What operators read about emails: the outbox listing, its counts, and one message in full."""

from __future__ import annotations

from collections.abc import Mapping
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, select

from orchestrator.admin.overview import iso
from orchestrator.store.models import Event, OutboxMessage
from orchestrator.store.states import Channel, OutboxKind, OutboxState
from workflows.errors import NotFound

OUTBOX_STATES = tuple(OutboxState)


def outbox_row(message: OutboxMessage, names: Mapping[str, str], tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": message.id,
        "kind": getattr(message, "kind", OutboxKind.DIGEST),  # or failure_report (the admin's daily list)
        "state": message.state,
        "recipient": message.recipient,
        "recipient_name": names.get(message.recipient, message.recipient),
        "to": list(message.to),
        "subject": message.subject,
        "send_date": str(message.send_date),
        "attempts": message.attempts,
        "next_attempt_at": iso(message.next_attempt_at, tz) if message.state == OutboxState.PENDING else None,
        "sent_at": iso(message.sent_at, tz),
        "last_error": message.last_error,
        "refused": dict(message.refused or {}),
        "message_id": message.message_id,
        "channel": message.channel,  # email | robot:NAME
    }


def outbox_rows(
    session: Session, names: Mapping[str, str], tz: ZoneInfo, state: str | None = None
) -> list[dict[str, Any]]:
    query = select(OutboxMessage)
    if state is not None:
        query = query.where(OutboxMessage.state == state)
    return [outbox_row(m, names, tz) for m in session.exec(query.order_by(OutboxMessage.id))]


def outbox_counts(session: Session) -> dict[str, Any]:
    """Rows by state (every channel), and ``channels``: by state for ``email``, for ``robot`` (all
    group robots) and for each ``robot:NAME``."""
    counts: dict[str, Any] = {state: 0 for state in OUTBOX_STATES}
    channels: dict[str, dict[str, int]] = {"email": {state: 0 for state in OUTBOX_STATES}}
    query = select(OutboxMessage.channel, OutboxMessage.state, func.count()).group_by(
        OutboxMessage.channel, OutboxMessage.state
    )
    for channel, state, n in session.exec(query):
        counts[state] = counts.get(state, 0) + n
        families = [channel] if channel == Channel.EMAIL else ["robot", channel]
        for family in families:
            by_state = channels.setdefault(family, {s: 0 for s in OUTBOX_STATES})
            by_state[state] = by_state.get(state, 0) + n
    refused = session.exec(select(OutboxMessage.refused).where(OutboxMessage.state == OutboxState.SENT)).all()
    counts["refused_recipients"] = sum(len(r or {}) for r in refused)
    counts["total"] = sum(counts[s] for s in OUTBOX_STATES)
    counts["channels"] = channels
    return counts


def outbox_detail(
    session: Session, message_id: int, names: Mapping[str, str], tz: ZoneInfo, *, maildir: Path | None
) -> dict[str, Any]:
    """``duban outbox show ID``: the row, its headers, its audit events (attempts and the server's
    replies), and in maildir mode the ``.eml`` file it was written to."""
    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise NotFound(f"no outbox message #{message_id} (`duban outbox` lists them)")
    events = session.exec(
        select(Event)
        .where(Event.kind.startswith("mail.", autoescape=True), Event.subject == message.message_id)
        .order_by(Event.at, Event.id)
    ).all()
    attempts = [
        {
            "at": iso(e.at, tz),
            "kind": e.kind,
            "actor": e.actor,
            "reply": _reply(e),
            "after": e.after,
        }
        for e in events
    ]
    replies = [a["reply"] for a in attempts if a["reply"]]
    row = outbox_row(message, names, tz)
    eml = _eml_path(maildir, message.message_id) if maildir else None
    return row | {
        "headers": _headers(message, eml),
        "eml": str(eml) if eml else None,
        "events": attempts,
        "last_reply": replies[-1] if replies else message.last_error,
    }


def _reply(event: Event) -> str | None:
    """What the mail server answered, where the event recorded it: a failed attempt's error, or
    the addresses it refused with their replies. (A successful send records no reply text.)"""
    if event.kind in ("mail.failed", "mail.retry"):
        return event.detail
    refused = (event.after or {}).get("refused") if event.kind == "mail.refused" else None
    return "; ".join(f"{address} {reply}" for address, reply in refused.items()) if refused else None


def _eml_path(maildir: Path, message_id: str) -> Path | None:
    """The maildir file of a Message-ID (its name is derived from the ID), if it exists."""
    from notifications.transport import maildir_file_name

    for folder in ("new", "cur"):
        path = maildir / folder / f"{maildir_file_name(message_id)}.eml"
        if path.is_file():
            return path
    return None


def _headers(message: OutboxMessage, eml: Path | None) -> dict[str, str]:
    """The headers as sent: from the ``.eml`` or the stored body when there is one, else the row's."""
    data = eml.read_bytes() if eml else message.body
    if data:
        parsed = message_from_bytes(data, policy=policy.default)
        return {k: str(v) for k, v in parsed.items()}
    return {"Message-ID": message.message_id, "To": ", ".join(message.to), "Subject": message.subject}
