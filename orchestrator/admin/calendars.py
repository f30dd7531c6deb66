"""Calendars of open obligations: ``duban calendar export`` and a unit's subscribable feed.

The entries are built by the dispatcher's own ``DigestBuilder`` and ``build_calendar``, so they
carry the UIDs and wording of the emails' ``.ics`` parts: a calendar that imported an email's
deadline updates that entry instead of adding a second one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlmodel import Session, select

from notifications.ics import build_calendar
from notifications.model import NoticeKind
from orchestrator.engine.digest import DigestBuilder
from orchestrator.store.models import NotificationItem, Obligation, Program
from orchestrator.store.states import OPEN_STATES
from workflows.catalog import Bundle

BundleOf = Callable[[Program], Bundle]


def open_obligations(
    session: Session, unit: str | None = None, program_ids: Sequence[int] | None = None
) -> list[Obligation]:
    query = select(Obligation).where(Obligation.state.in_(OPEN_STATES))
    if unit is not None:
        query = query.where(Obligation.unit == unit)
    if program_ids is not None:
        query = query.where(Obligation.program_id.in_(list(program_ids)))
    return list(session.exec(query.order_by(Obligation.due, Obligation.unit, Obligation.id)))


def calendar_of(
    session: Session,
    obligations: list[Obligation],
    bundle_of: BundleOf,
    *,
    domain: str,
    now: datetime,
    kind: str = "events",
    allow_empty: bool = False,
) -> bytes | None:
    """The calendar of ``obligations`` (None if there are none, unless ``allow_empty``)."""
    programs = {o.program_id for o in obligations}
    bundles = {}
    for program in session.exec(select(Program).where(Program.id.in_(sorted(programs)))):
        bundles[program.workflow] = bundle_of(program)
    builder = DigestBuilder(session, bundles)
    items = [builder.item(_as_item(o, now)) for o in obligations]
    return build_calendar(items, domain=domain, now=now, kind=kind, allow_empty=allow_empty)


def unit_calendar(
    session: Session, unit: str, bundle_of: BundleOf, *, domain: str, now: datetime, kind: str = "events"
) -> bytes:
    """A unit's feed (``/u/{token}/calendar.ics``): every open obligation of every program it owes,
    as ``text/calendar`` bytes; an empty calendar once it has nothing left to do."""
    obligations = open_obligations(session, unit)
    data = calendar_of(session, obligations, bundle_of, domain=domain, now=now, kind=kind, allow_empty=True)
    assert data is not None
    return data


def _as_item(obligation: Obligation, now: datetime) -> NotificationItem:
    """A transient (never stored) item about ``obligation``, for the digest builder."""
    return NotificationItem(
        key=f"export/{obligation.key}",
        kind=NoticeKind.TASK_OPENED,
        recipient=obligation.unit,
        program_id=obligation.program_id,
        obligation_id=obligation.id,
        phase=obligation.phase,
        task=obligation.task,
        unit=obligation.unit,
        occurrence=obligation.occurrence,
        due=obligation.due,
        on=obligation.opens,
        send_at=now,
        created_at=now,
    )
