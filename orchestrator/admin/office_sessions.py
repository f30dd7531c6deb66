"""The office's sessions, known on the server: opened by a one-time login, ended by logout or by
``duban web sessions --revoke EMAIL``, listed by ``duban web sessions``.

The cookie carries a random session id (256 bits, signed besides); the database keeps only its
SHA-256 (``office_session.sid_hash``), so a copy of the database opens no session. A session is
good while it is younger than ``SESSION_SECONDS`` and not ended: logging out ends it on the server,
so a copied cookie stops working at once. Ending is one conditional UPDATE (two logouts end it
once) and is in the audit log (``office.logout``, ``office.sessions_revoked``).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from orchestrator.store.audit import record
from orchestrator.store.models import OfficeLogin, OfficeSessionRecord

SESSION_SECONDS = 8 * 3600


def sid_digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def open_session(
    session: Session, email: str, now: datetime, *, client: str | None = None, user_agent: str | None = None
) -> str:
    """A new session for ``email`` (its row added to ``session``); returns its id, for the cookie only."""
    sid = secrets.token_urlsafe(32)
    session.add(
        OfficeSessionRecord(
            sid_hash=sid_digest(sid),
            email=email.lower(),
            created_at=now,
            expires_at=now + timedelta(seconds=SESSION_SECONDS),
            client=client,
            user_agent=(user_agent or "")[:400] or None,
        )
    )
    session.flush()
    return sid


def is_live(session: Session, sid: str, email: str, now: datetime) -> bool:
    """Whether ``sid`` is a session of ``email`` that has neither expired nor been ended."""
    row = session.exec(
        select(OfficeSessionRecord).where(OfficeSessionRecord.sid_hash == sid_digest(sid))
    ).first()
    return row is not None and row.ended_at is None and row.expires_at > now and row.email == email.lower()


def end_session(session: Session, sid: str, now: datetime, actor: str) -> bool:
    """Logout: end the session ``sid`` (audited); False if it had already ended."""
    table = OfficeSessionRecord.__table__
    ended = session.connection().execute(
        update(table)
        .where(table.c.sid_hash == sid_digest(sid), table.c.ended_at.is_(None))
        .values(ended_at=now, ended_by=actor)
    )
    if ended.rowcount != 1:
        return False
    record(session, at=now, actor=actor, kind="office.logout", subject=actor.removeprefix("office:"))
    session.flush()
    return True


def revoke(session: Session, email: str, now: datetime, actor: str) -> int:
    """End every live session of ``email`` and void its unused login links (audited); returns how
    many sessions were ended."""
    wanted = email.strip().lower()
    table = OfficeSessionRecord.__table__
    ended = session.connection().execute(
        update(table)
        .where(table.c.email == wanted, table.c.ended_at.is_(None), table.c.expires_at > now)
        .values(ended_at=now, ended_by=actor)
    )
    logins = OfficeLogin.__table__
    voided = session.connection().execute(
        update(logins).where(logins.c.email == wanted, logins.c.used_at.is_(None)).values(used_at=now)
    )
    record(
        session,
        at=now,
        actor=actor,
        kind="office.sessions_revoked",
        subject=wanted,
        after={"sessions": ended.rowcount, "login_links": voided.rowcount},
    )
    session.flush()
    return ended.rowcount


def live_sessions(session: Session, now: datetime) -> list[OfficeSessionRecord]:
    """The sessions neither expired nor ended, oldest first."""
    query = (
        select(OfficeSessionRecord)
        .where(col(OfficeSessionRecord.ended_at).is_(None), OfficeSessionRecord.expires_at > now)
        .order_by(col(OfficeSessionRecord.created_at), col(OfficeSessionRecord.id))
    )
    return list(session.exec(query))


def known_clients(session: Session, email: str, since: datetime) -> set[str]:
    """The client addresses that opened a session of ``email`` since ``since`` (the office's own)."""
    query = select(OfficeSessionRecord.client).where(
        OfficeSessionRecord.email == email.lower(), OfficeSessionRecord.created_at >= since
    )
    return {client for client in session.exec(query) if client}
