"""PostgreSQL sessions run with JIT off (``store.db.POSTGRES_OPTIONS``), unless the URL sets its own
``options``; an administrator's ``PGOPTIONS`` still applies, and wins where it says otherwise."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from support import PG_URL

from orchestrator.store.db import make_engine

pytestmark = pytest.mark.postgres


def _settings(url: str, *names: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [connection.execute(text(f"SHOW {name}")).scalar_one() for name in names]
    finally:
        engine.dispose()


def test_a_session_runs_without_jit(monkeypatch):
    monkeypatch.delenv("PGOPTIONS", raising=False)
    assert _settings(PG_URL, "jit") == ["off"]


def test_the_urls_own_options_stand_as_they_are(monkeypatch):
    monkeypatch.delenv("PGOPTIONS", raising=False)
    plain = create_engine(PG_URL)  # the server's own setting, with no options at all
    with plain.connect() as connection:
        server_jit = connection.execute(text("SHOW jit")).scalar_one()
    plain.dispose()
    assert _settings(f"{PG_URL}?options=-cwork_mem%3D7MB", "jit", "work_mem") == [server_jit, "7MB"]


def test_pgoptions_apply_beside_ours_and_win_where_they_differ(monkeypatch):
    monkeypatch.setenv("PGOPTIONS", "-c work_mem=9MB")
    assert _settings(PG_URL, "jit", "work_mem") == ["off", "9MB"]
    monkeypatch.setenv("PGOPTIONS", "-c jit=on")
    assert _settings(PG_URL, "jit") == ["on"]
