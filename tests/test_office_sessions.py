"""The office's sessions on the server (``admin.office_sessions``) and the calendar feed token
(``admin.links``), on SQLite and PostgreSQL; time is a parameter."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from orchestrator.admin import links, office_sessions
from orchestrator.store.models import Event, OfficeSessionRecord

NOW = datetime(2026, 6, 10, 1, 30, tzinfo=UTC)
KEY = "k" * 48
EMAIL = "office@example.gov.cn"


def test_a_session_lives_until_it_ends_or_expires(store):
    with Session(store) as session:
        sid = office_sessions.open_session(session, "Office@Example.gov.cn", NOW, client="198.51.100.7")
        other = office_sessions.open_session(session, EMAIL, NOW, client="198.51.100.8")
        session.commit()
        (row, _) = session.exec(select(OfficeSessionRecord).order_by(OfficeSessionRecord.id)).all()
        assert row.sid_hash == hashlib.sha256(sid.encode()).hexdigest() and row.email == EMAIL
        assert office_sessions.is_live(session, sid, EMAIL, NOW + timedelta(hours=7, minutes=59))
        assert not office_sessions.is_live(session, sid, EMAIL, NOW + timedelta(hours=8))
        assert not office_sessions.is_live(session, sid, "someone@example.gov.cn", NOW)
        assert not office_sessions.is_live(session, "made-up", EMAIL, NOW)
        # two logouts of one session: it ends once (one audit event)
        assert office_sessions.end_session(session, sid, NOW, f"office:{EMAIL}")
        assert not office_sessions.end_session(session, sid, NOW, f"office:{EMAIL}")
        session.commit()
        assert not office_sessions.is_live(session, sid, EMAIL, NOW)
        assert office_sessions.is_live(session, other, EMAIL, NOW)
        assert [r.client for r in office_sessions.live_sessions(session, NOW)] == ["198.51.100.8"]
        assert office_sessions.known_clients(session, EMAIL, NOW - timedelta(days=30)) == {
            "198.51.100.7",
            "198.51.100.8",
        }
        kinds = [e.kind for e in session.exec(select(Event).order_by(Event.id))]
        assert kinds == ["office.logout"]


def test_revoking_an_address_ends_its_sessions_and_voids_its_login_links(store):
    with Session(store) as session:
        first = office_sessions.open_session(session, EMAIL, NOW)
        second = office_sessions.open_session(session, EMAIL, NOW)
        kept = office_sessions.open_session(session, "other@example.gov.cn", NOW)
        token = links.make_office_login(KEY, EMAIL, session, NOW)
        session.commit()
        assert office_sessions.revoke(session, EMAIL.upper(), NOW, "admin") == 2
        session.commit()
        assert not any(office_sessions.is_live(session, sid, EMAIL, NOW) for sid in (first, second))
        assert office_sessions.is_live(session, kept, "other@example.gov.cn", NOW)
        assert links.use_office_login(KEY, token, session, NOW) is None
        assert office_sessions.revoke(session, EMAIL, NOW, "admin") == 0  # nothing left: nothing ended


def test_a_feed_token_opens_only_the_feed_and_is_revoked_with_the_links(store):
    with Session(store) as session:
        feed = links.make_feed_token(KEY, "town-a", 1, now=NOW)
        unit = links.make_unit_token(KEY, "town-a", 1, now=NOW)
        year = 400 * 86400.0
        assert links.read_feed_token(KEY, feed, session, year, now=NOW) == "town-a"
        assert links.read_unit_token(KEY, feed, session, year, now=NOW) is None  # not a unit link
        assert links.read_feed_token(KEY, unit, session, year, now=NOW) is None  # nor a link a feed
        url = links.feed_link(KEY, "https://duban.example.gov.cn/", session, "town-a", now=NOW)
        assert url.startswith("https://duban.example.gov.cn/calendar/") and url.endswith(".ics")
        links.revoke(session, "town-a", NOW, "admin")
        session.commit()
        assert links.read_feed_token(KEY, feed, session, year, now=NOW) is None
