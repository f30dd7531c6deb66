"""When the evidence folder cannot be written: the portal records it, ``duban status`` says it.

A file a unit uploads that cannot be written (permissions, a full disk, a missing mount) is the
server's fault: the unit gets a 503 ("try again later"), the web log an error line naming the
folder, and the audit log one ``evidence.unwritable`` event (folder and error), which ``duban
status`` shows for a week, or until a file is stored again after it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from orchestrator.admin.evidence import StorageFault
from orchestrator.store.audit import record
from orchestrator.store.models import Event, Evidence, Submission

UNWRITABLE = "evidence.unwritable"
RECENT = timedelta(days=7)


def record_fault(session: Session, fault: StorageFault, now: datetime, actor: str) -> None:
    """One audit event for ``fault`` (the caller commits)."""
    record(session, at=now, actor=actor, kind=UNWRITABLE, subject=str(fault.folder), detail=fault.error)


def open_fault(session: Session, now: datetime) -> dict[str, Any] | None:
    """The last fault of the past ``RECENT``, unless a file was stored after it:
    ``{"at", "folder", "error"}``, or None. (By the ``at`` index: the audit log is millions of rows.)"""
    fault = session.exec(
        select(Event).where(Event.at >= now - RECENT, Event.kind == UNWRITABLE).order_by(Event.at.desc())
    ).first()
    if fault is None:
        return None
    stored = session.exec(
        select(func.max(Submission.submitted_at)).join(Evidence, Evidence.submission_id == Submission.id)
    ).one()
    if stored is not None and stored > fault.at:
        return None
    return {"at": fault.at, "folder": fault.subject, "error": fault.detail}
