"""The notices a submission queues: the unit's word of a decision, the office's 待审核.

Each is one ``NotificationItem`` (a unique key: a double call queues one), sent in the next send
slot of the program's window when ``Desk`` carries the send policy (at once without it).
``tell_unit``: one item per decision; ``tell_office``: one 待审核 item a day for each of the plan's
``contact`` units (the count is taken when the digest is written; an item the dispatcher skipped
because everything had been decided by then is made pending again by the next submission).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, update

from orchestrator.admin.acting import Desk
from orchestrator.engine.programs import insert_ignoring_duplicates
from orchestrator.engine.window import local_day, send_slot
from orchestrator.store.models import NotificationItem, Obligation, Program, Submission
from orchestrator.store.states import Decision, ItemState
from workflows.catalog import Bundle

# -- notices of submissions ------------------------------------------------------------------------


def _slot(session: Session, obligation: Obligation, now: datetime, desk: Desk) -> datetime:
    if desk.policy is None:
        return now
    program = session.get(Program, obligation.program_id)
    calendar = desk.policy.calendar(program.workflow)
    return send_slot(now, ZoneInfo(program.timezone), desk.policy.window, calendar)


def _item(session, obligation: Obligation, kind: str, recipient: str, key: str, now, send_at) -> None:
    program = session.get(Program, obligation.program_id)
    row = {
        "key": key,
        "kind": kind,
        "recipient": recipient,
        "program_id": obligation.program_id,
        "obligation_id": obligation.id if kind != REVIEW_PENDING else None,
        "phase": obligation.phase,
        "task": obligation.task if kind != REVIEW_PENDING else None,
        "unit": obligation.unit if kind != REVIEW_PENDING else None,
        "occurrence": obligation.occurrence if kind != REVIEW_PENDING else None,
        "due": obligation.due if kind != REVIEW_PENDING else None,
        "on": local_day(send_at, ZoneInfo(program.timezone)),
        "send_at": send_at,
        "state": ItemState.PENDING,
        "message_id": None,
        "created_at": now,
        "late": None,
    }
    insert_ignoring_duplicates(session, NotificationItem, [row])


SUBMISSION_APPROVED = "submission_approved"
SUBMISSION_RETURNED = "submission_returned"
REVIEW_PENDING = "review_pending"


def tell_unit(session, submission: Submission, obligation: Obligation, now, desk: Desk) -> None:
    """The unit's next digest says the decision (one item per decision)."""
    kind = SUBMISSION_APPROVED if submission.decision == Decision.APPROVED else SUBMISSION_RETURNED
    key = f"{obligation.key}/{kind}/{submission.id}/{obligation.unit}"
    _item(session, obligation, kind, obligation.unit, key, now, _slot(session, obligation, now, desk))


def office_units(bundle: Bundle | None) -> list[str]:
    """Who hears of 待审核: the plan's ``contact`` units (the office that supervises it)."""
    if bundle is None or not bundle.definition.workflow.contact:
        return []
    return list(bundle.units.directory.expand(bundle.definition.workflow.contact))


def tell_office(session, obligation: Obligation, now, desk: Desk) -> None:
    """One 待审核 notice a day for the office (the count is taken when the digest is written)."""
    program = session.get(Program, obligation.program_id)
    send_at = _slot(session, obligation, now, desk)
    day = local_day(send_at, ZoneInfo(program.timezone))
    for recipient in office_units(desk.bundles.get(program.workflow)):
        key = f"{program.workflow}/{program.year}/{REVIEW_PENDING}/{day}/{recipient}"
        _item(session, obligation, REVIEW_PENDING, recipient, key, now, send_at)
        session.execute(  # skipped today (nothing waited then): something waits again
            update(NotificationItem)
            .where(NotificationItem.key == key, NotificationItem.state == ItemState.SKIPPED)
            .values(state=ItemState.PENDING, send_at=send_at)
            .execution_options(synchronize_session=False)
        )
