"""Signed links: a unit's personal link (revocable) and the office's one-time login link.

A unit link is ``{base_url}/u/{token}``; the token is ``URLSafeTimedSerializer(secret,
salt="unit-link")`` over ``[unit, version]``. It is good while it is younger than ``max_age`` and
its version is the unit's current one (``unit_key``; no row means version 1): ``revoke`` bumps
the version, so every earlier link of that unit stops working at once. Reading a token never says
why it failed — tampered, expired, revoked and unknown all give ``None`` (the web answers each with
the same 404).

A calendar feed token (salt ``"unit-calendar-feed"``) names the same ``[unit, version]``: it opens
only the unit's ``.ics`` feed (a calendar service it is given can read, never act) and is revoked
with the unit's links.

An office login token (salt ``"office-login"``) names an email and a stored nonce; it is good for
``OFFICE_LOGIN_SECONDS`` and once: ``use_office_login`` consumes the nonce (``peek_office_login``
only looks: opening the link shows a page whose button logs in).

Time is a parameter: ``now`` (aware) signs and checks the timestamps (itsdangerous reads the
system clock otherwise). The secret is never logged, stored or shown.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import update
from sqlmodel import Session, select

from orchestrator.store.audit import record
from orchestrator.store.models import OfficeLogin, UnitKey
from workflows.errors import DubanError

UNIT_SALT = "unit-link"
FEED_SALT = "unit-calendar-feed"
OFFICE_SALT = "office-login"
OFFICE_LOGIN_SECONDS = 15 * 60
MIN_SECRET_BYTES = 32


class WeakSecret(DubanError):
    """The signing key is missing or too short (exit 2); the message never shows it."""


def _check(secret: str | bytes) -> None:
    if len(secret.encode() if isinstance(secret, str) else secret) < MIN_SECRET_BYTES:
        raise WeakSecret(f"the web signing key must be at least {MIN_SECRET_BYTES} bytes long")


def _serializer(secret: str | bytes, salt: str, now: datetime | None) -> URLSafeTimedSerializer:
    _check(secret)
    if now is None:
        return URLSafeTimedSerializer(secret, salt=salt)
    stamp = int(now.timestamp())

    class _At(TimestampSigner):
        def get_timestamp(self) -> int:
            return stamp

    return URLSafeTimedSerializer(secret, salt=salt, signer=_At)


def _loads(secret: str | bytes, salt: str, token: str, max_age: float, now: datetime | None):
    """The payload of a good token younger than ``max_age`` at ``now``, else None."""
    try:
        payload, signed_at = _serializer(secret, salt, None).loads(token, return_timestamp=True)
    except (BadData, UnicodeError, ValueError, TypeError):
        return None
    age = (now.timestamp() if now else time.time()) - signed_at.timestamp()
    if age > max_age or age < -300:  # (signed "in the future" beyond clock skew: forged or bogus)
        return None
    return payload


# -- unit links --------------------------------------------------------------------------------


def current_version(session: Session, unit: str) -> int:
    """The unit's link key version (1 until its first revocation)."""
    row = session.exec(select(UnitKey).where(UnitKey.unit == unit)).first()
    return row.version if row else 1


def make_unit_token(secret: str | bytes, unit: str, version: int, *, now: datetime | None = None) -> str:
    """A token naming ``unit`` and its key ``version``, signed at ``now`` (default: the system clock)."""
    return _serializer(secret, UNIT_SALT, now).dumps([unit, int(version)])


def read_unit_token(
    secret: str | bytes, token: str, session: Session, max_age: float, *, now: datetime | None = None
) -> str | None:
    """The unit a good token names; None when tampered, expired or revoked (never saying which)."""
    return _unit_of(_loads(secret, UNIT_SALT, token, max_age, now), session)


def _unit_of(payload, session: Session) -> str | None:
    """The unit of a ``[unit, version]`` payload whose version is the unit's current one."""
    if not (isinstance(payload, list) and len(payload) == 2):
        return None
    unit, version = payload
    if not isinstance(unit, str) or not isinstance(version, int) or isinstance(version, bool):
        return None
    return unit if version == current_version(session, unit) else None


def make_feed_token(secret: str | bytes, unit: str, version: int, *, now: datetime | None = None) -> str:
    """A read-only token for the unit's calendar feed (its own salt: it opens the feed and nothing
    else, and no unit link is good as a feed token); revoked with the unit's links (the version)."""
    return _serializer(secret, FEED_SALT, now).dumps([unit, int(version)])


def read_feed_token(
    secret: str | bytes, token: str, session: Session, max_age: float, *, now: datetime | None = None
) -> str | None:
    """The unit a good feed token names; None when tampered, expired or revoked."""
    return _unit_of(_loads(secret, FEED_SALT, token, max_age, now), session)


def feed_link(
    secret: str | bytes, base_url: str, session: Session, unit: str, *, now: datetime | None = None
) -> str:
    """``{base_url}/calendar/{token}.ics``: the URL a calendar service may be given (it can only read)."""
    token = make_feed_token(secret, unit, current_version(session, unit), now=now)
    return f"{base_url.rstrip('/')}/calendar/{token}.ics"


def unit_link(base_url: str, token: str) -> str:
    """``{base_url}/u/{token}``."""
    return f"{base_url.rstrip('/')}/u/{token}"


def link_for_unit(
    secret: str | bytes, base_url: str, session: Session, unit: str, *, now: datetime | None = None
) -> str:
    """The unit's current personal link (what its digests carry and ``duban unit link`` prints)."""
    return unit_link(base_url, make_unit_token(secret, unit, current_version(session, unit), now=now))


def revoke(session: Session, unit: str, now: datetime, actor: str) -> int:
    """Make every earlier link of ``unit`` stop working: bumps its key version (audited); returns
    the new version."""
    row = session.exec(select(UnitKey).where(UnitKey.unit == unit)).first()
    if row is None:
        row = UnitKey(unit=unit, version=1)
        session.add(row)
    before = row.version
    row.version, row.revoked_at, row.revoked_by = before + 1, now, actor
    record(
        session,
        at=now,
        actor=actor,
        kind="unit.link_revoked",
        unit=unit,
        subject=unit,
        before={"version": before},
        after={"version": row.version},
    )
    session.flush()
    return row.version


# -- office one-time login -------------------------------------------------------------------------


def make_office_login(secret: str | bytes, email: str, session: Session, now: datetime) -> str:
    """A one-time login token for ``email`` (good for 15 minutes; its nonce stored, audited)."""
    nonce = secrets.token_urlsafe(24)
    session.add(OfficeLogin(nonce=nonce, email=email, created_at=now))
    record(session, at=now, actor=f"office:{email}", kind="office.login_link", subject=email)
    session.flush()
    return _serializer(secret, OFFICE_SALT, now).dumps([email, nonce])


def _office_login(secret: str | bytes, token: str, now: datetime) -> tuple[str, str] | None:
    payload = _loads(secret, OFFICE_SALT, token, OFFICE_LOGIN_SECONDS, now)
    if not (isinstance(payload, list) and len(payload) == 2 and all(isinstance(p, str) for p in payload)):
        return None
    return payload[0], payload[1]


def peek_office_login(secret: str | bytes, token: str, session: Session, now: datetime) -> str | None:
    """The email of a good, unexpired, unused login token, leaving it unused (the page a GET shows:
    a mail scanner or a link preview that opens the link does not use it up); None otherwise."""
    found = _office_login(secret, token, now)
    if found is None:
        return None
    email, nonce = found
    row = session.exec(
        select(OfficeLogin).where(OfficeLogin.nonce == nonce, OfficeLogin.email == email)
    ).first()
    return email if row is not None and row.used_at is None else None


def use_office_login(secret: str | bytes, token: str, session: Session, now: datetime) -> str | None:
    """The email of a good, unexpired, unused login token, consuming it; None otherwise."""
    found = _office_login(secret, token, now)
    if found is None:
        return None
    email, nonce = found
    table = OfficeLogin.__table__
    consumed = session.connection().execute(  # one UPDATE: two requests cannot both use it
        update(table)
        .where(table.c.nonce == nonce, table.c.email == email, table.c.used_at.is_(None))
        .values(used_at=now)
    )
    if consumed.rowcount != 1:
        return None
    record(session, at=now, actor=f"office:{email}", kind="office.login", subject=email)
    session.flush()
    return email
