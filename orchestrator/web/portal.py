"""What every request handler shares: settings, the database, the clock, the key, the defences."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.requests import Request

from orchestrator.admin import links, office_sessions, overview
from orchestrator.admin.submissions import NO_DESK, Desk
from orchestrator.engine.clock import Clock
from orchestrator.service.config import Settings
from orchestrator.web.render import Pages
from orchestrator.web.security import (
    SESSION_COOKIE,
    Csrf,
    LoginRequests,
    OfficeSession,
    RateLimiter,
    Sessions,
    clean_agent,
)
from orchestrator.web.uploads import UploadLimits


@dataclass
class Portal:
    settings: Settings
    engine: Engine
    clock: Clock
    key: bytes = field(repr=False)
    evidence_dir: Path
    limits: UploadLimits
    link_max_age: float
    office_emails: frozenset[str]
    secure_cookies: bool
    desk: Desk = NO_DESK
    posts_per_minute: int = 60  # per link or office session: a clerk's 签收 one by one of a day's list fits
    pages: Pages = field(default_factory=Pages)

    def __post_init__(self) -> None:
        self.csrf = Csrf(self.key)
        self.sessions = Sessions(self.key)
        self.limiter = RateLimiter(self.posts_per_minute, 60.0)
        self.login_requests = LoginRequests()

    def __repr__(self) -> str:  # the key stays out of every repr, traceback and log
        return f"Portal(database={self.engine.url!r})"

    def now(self) -> datetime:
        return self.clock.now()

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def unit_of(self, token: str) -> str | None:
        """The unit a link's token names, or None (tampered, expired, revoked: one answer)."""
        if len(token) > 512:
            return None
        with self.session() as session:
            return links.read_unit_token(self.key, token, session, self.link_max_age, now=self.now())

    def unit_of_feed(self, token: str) -> str | None:
        """The unit a calendar feed token names, or None (the same one answer)."""
        if len(token) > 512:
            return None
        with self.session() as session:
            return links.read_feed_token(self.key, token, session, self.link_max_age, now=self.now())

    def display_zone(self) -> ZoneInfo:
        with self.session() as session:
            return overview.display_tz(session)

    def unit_name(self, unit: str) -> str:
        for bundle in self.desk.bundles.values():
            if unit in bundle.units.directory.by_id:
                return bundle.units.directory.name(unit)
        return unit

    def office_of(self, request: Request) -> OfficeSession | None:
        """The office session of the request's cookie, if it is genuine and still live on the server
        (not expired, not ended by logout or ``duban web sessions --revoke``)."""
        office = self.sessions.read(request.cookies.get(SESSION_COOKIE), self.office_emails)
        if office is None:
            return None
        with self.session() as session:
            live = office_sessions.is_live(session, office.sid, office.email, self.now())
        return office if live else None


def client_of(request: Request) -> tuple[str | None, str | None]:
    """The client address (uvicorn takes it from X-Forwarded-For behind the trusted proxy) and the
    user agent, cleaned of control characters."""
    client = request.client.host if request.client else None
    return client, clean_agent(request.headers.get("user-agent"))
