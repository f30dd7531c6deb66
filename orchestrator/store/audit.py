"""The audit log: every change by the daemon or an operator is one ``Event`` row."""

from __future__ import annotations

import getpass
import os
from datetime import datetime
from typing import Any

from sqlmodel import Session

from orchestrator.store.db import bulk_insert
from orchestrator.store.models import Event

DAEMON = "duban"


def operator() -> str:
    """The OS user behind a CLI change (``SUDO_USER`` where set)."""
    for name in ("SUDO_USER", "DUBAN_ACTOR"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def record(session: Session, **fields: Any) -> Event:
    """One audit event, added to ``session``: the fields of ``event_row`` (``at``, ``actor``, ``kind``
    required)."""
    event = Event(**event_row(**fields))
    session.add(event)
    return event


def event_row(
    *,
    at: datetime,
    actor: str,
    kind: str,
    program_id: int | None = None,
    obligation_id: int | None = None,
    unit: str | None = None,
    subject: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """An ``Event`` as a plain row, for bulk inserts on hot paths (the tick): always the same keys."""
    return {
        "at": at,
        "actor": actor,
        "kind": kind,
        "program_id": program_id,
        "obligation_id": obligation_id,
        "unit": unit,
        "subject": subject,
        "before": before,
        "after": after,
        "detail": detail,
    }


def insert_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """Append many audit events in one executemany."""
    bulk_insert(session.connection(), Event.__table__, rows)
