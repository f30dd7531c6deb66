"""A unit's actions through its link: 签收 (one obligation, or 全部签收), 反馈, 办结申请, 延期申请.

Each stores one ``Submission`` row (with its ``Evidence`` files) and one audit ``Event`` with actor
``unit:<id>``; a double submit (the same ``nonce``, or the same request again) returns the row
stored the first time. A completion puts the obligation in review (``submitted``) and withdraws
its waiting notices; a completion or an extension request queues the office's 待审核 notice.

Each action locks its obligation's row before it reads it (``own_obligation(lock=True)``): requests
sent at once for one obligation — a double tap, the same form three times, three forms — run one
after the other, and each later one finds what the first stored (one row, and the same answer).
签收 and 反馈 are for an obligation still owed (``FinishedObligation`` once it is done or waived).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlmodel import Session, select

from notifications.labels import EVENT_DETAILS as WORDS
from orchestrator.admin.acting import (
    NO_DESK,
    Actor,
    BadRequest,
    Desk,
    audit_submission,
    by_nonce,
    check_requested_date,
    clean_text,
    files_of,
    last_of,
    local_today,
    own_obligation,
    same_files,
    store_submission,
)
from orchestrator.admin.evidence import StoredFile
from orchestrator.admin.operations import InvalidTransition, withdraw_notices
from orchestrator.admin.portal_views import running_programs
from orchestrator.admin.submission_notices import tell_office
from orchestrator.store.models import Obligation, Submission
from orchestrator.store.states import (
    ACTIVE_STATES,
    OPEN_STATES,
    OWED_STATES,
    Decision,
    ObligationState,
    SubmissionKind,
)


class FinishedObligation(InvalidTransition):
    """签收 or 反馈 on an obligation that is done or waived (nothing is stored)."""


def _owed(obligation: Obligation, action: str) -> None:
    if obligation.state not in OWED_STATES:
        raise FinishedObligation(f"#{obligation.id} is {obligation.state}: no {action} is taken for it")


# -- a unit's actions ---------------------------------------------------------------------------


def acknowledge(
    session: Session, obligation_id: int | str, actor: Actor, now: datetime, *, nonce: str | None = None
) -> Submission:
    """签收: the unit has received the notice (once; a second time returns the first)."""
    obligation = own_obligation(session, actor.unit, obligation_id, lock=True)
    found = by_nonce(session, nonce, obligation, SubmissionKind.ACKNOWLEDGE) or last_of(
        session, obligation, SubmissionKind.ACKNOWLEDGE
    )
    if found is not None:
        return found
    _owed(obligation, "acknowledgement")
    return _acknowledged(session, obligation, actor, now, nonce)


def _acknowledged(session: Session, obligation: Obligation, actor: Actor, now, nonce: str | None):
    submission = store_submission(
        session, obligation, SubmissionKind.ACKNOWLEDGE, actor, now, nonce=nonce, decision=Decision.NOTED
    )
    audit_submission(
        session, obligation, "unit.acknowledged", actor, now, after={"submission": submission.id}
    )
    return submission


def acknowledge_all(session: Session, actor: Actor, now: datetime) -> list[Submission]:
    """全部签收: every obligation of the unit that its page offers to acknowledge — not yet started,
    open or overdue, in a running program, neither acknowledged nor submitted — acknowledged at
    once, one row and one audit event each. Sent again (or twice at once) it stores nothing more."""
    programs = running_programs(session)
    answered = select(Submission.obligation_id).where(
        Submission.unit == actor.unit,
        Submission.kind.in_((SubmissionKind.ACKNOWLEDGE, SubmissionKind.COMPLETION)),
    )
    candidates = session.exec(
        select(Obligation.id, Obligation.program_id)
        .where(
            Obligation.unit == actor.unit,
            Obligation.state.in_(tuple(OPEN_STATES)),
            Obligation.id.not_in(answered),
        )
        .order_by(Obligation.id)  # (one order for every request: two never wait for each other)
    ).all()
    stored = []
    for obligation_id, program_id in candidates:
        if program_id not in programs:
            continue
        obligation = own_obligation(session, actor.unit, obligation_id, lock=True)
        if obligation.state not in OPEN_STATES:
            continue
        kinds = (SubmissionKind.ACKNOWLEDGE, SubmissionKind.COMPLETION)
        if any(last_of(session, obligation, kind) is not None for kind in kinds):
            continue  # acknowledged meanwhile (another request that went first)
        stored.append(_acknowledged(session, obligation, actor, now, None))
    return stored


def feedback(
    session: Session,
    obligation_id: int | str,
    actor: Actor,
    now: datetime,
    note: str | None,
    files: Sequence[StoredFile] = (),
    *,
    nonce: str | None = None,
) -> Submission:
    """反馈: a progress note, optionally with files (the obligation's state does not change)."""
    note = clean_text(note, "反馈内容", required=not files)
    obligation = own_obligation(session, actor.unit, obligation_id, lock=True)
    found = by_nonce(session, nonce, obligation, SubmissionKind.FEEDBACK)
    if found is None:
        last = last_of(session, obligation, SubmissionKind.FEEDBACK)
        if last is not None and last.note == note and same_files(session, last, files):
            found = last  # the same words and files again: a double submit
    if found is not None:
        return found
    _owed(obligation, "feedback")
    submission = store_submission(
        session,
        obligation,
        SubmissionKind.FEEDBACK,
        actor,
        now,
        note=note,
        files=files,
        nonce=nonce,
        decision=Decision.NOTED,
    )
    after = {"submission": submission.id, "note": note, "files": files_of(files)}
    audit_submission(session, obligation, "unit.feedback", actor, now, after=after)
    return submission


def submit_completion(
    session: Session,
    obligation_id: int | str,
    actor: Actor,
    now: datetime,
    note: str | None,
    files: Sequence[StoredFile] = (),
    *,
    nonce: str | None = None,
    desk: Desk = NO_DESK,
) -> Submission:
    """办结申请: the obligation → ``submitted`` until the office decides; its waiting notices are
    withdrawn and no reminder or escalation is sent for it meanwhile. A second request while one is
    in review returns the first."""
    note = clean_text(note, "办结说明", required=not files)
    obligation = own_obligation(session, actor.unit, obligation_id, lock=True)
    found = by_nonce(session, nonce, obligation, SubmissionKind.COMPLETION)
    if found is None and obligation.state == ObligationState.SUBMITTED:
        found = _pending(session, obligation, SubmissionKind.COMPLETION)
    if found is not None:
        return found
    if obligation.state not in OPEN_STATES:
        raise InvalidTransition(f"#{obligation.id} is {obligation.state}: nothing to submit")
    before = obligation.state
    submission = store_submission(
        session, obligation, SubmissionKind.COMPLETION, actor, now, note=note, files=files, nonce=nonce
    )
    obligation.state, obligation.updated_at = ObligationState.SUBMITTED, now
    withdrawn = withdraw_notices(session, obligation)
    after = {"state": "submitted", "submission": submission.id, "note": note, "files": files_of(files)}
    detail = WORDS["withdrawn"].format(n=withdrawn) if withdrawn else None
    audit_submission(
        session,
        obligation,
        "obligation.submitted",
        actor,
        now,
        before={"state": before},
        after=after,
        detail=detail,
    )
    tell_office(session, obligation, now, desk)
    return submission


def request_extension(
    session: Session,
    obligation_id: int | str,
    actor: Actor,
    now: datetime,
    until: date,
    reason: str | None,
    *,
    nonce: str | None = None,
    desk: Desk = NO_DESK,
) -> Submission:
    """延期申请: a later due date and a reason, up to the due date; pending until the office decides
    (one at a time: the same request again returns the first)."""
    reason = clean_text(reason, "延期理由", required=True)
    obligation = own_obligation(session, actor.unit, obligation_id, lock=True)
    found = by_nonce(session, nonce, obligation, SubmissionKind.EXTENSION)
    pending = found or _pending(session, obligation, SubmissionKind.EXTENSION)
    if pending is not None:
        if found is not None or (pending.requested == until and pending.note == reason):
            return pending
        raise InvalidTransition(f"#{obligation.id}: an extension request is already waiting for review")
    if obligation.state not in ACTIVE_STATES | {ObligationState.PENDING}:
        raise InvalidTransition(f"#{obligation.id} is {obligation.state}: it cannot be extended")
    if local_today(session, obligation, now) > obligation.due:
        raise BadRequest(f"#{obligation.id}: the due date {obligation.due} has passed; ask before it")
    if until <= obligation.due:
        raise BadRequest(f"the new date {until} must be after the due date {obligation.due}")
    check_requested_date(session, obligation, until, desk)
    submission = store_submission(
        session, obligation, SubmissionKind.EXTENSION, actor, now, note=reason, requested=until, nonce=nonce
    )
    after = {"submission": submission.id, "until": str(until), "reason": reason}
    audit_submission(session, obligation, "unit.extension_requested", actor, now, after=after)
    tell_office(session, obligation, now, desk)
    return submission


def _pending(session: Session, obligation: Obligation, kind: str) -> Submission | None:
    return session.exec(
        select(Submission).where(
            Submission.obligation_id == obligation.id, Submission.kind == kind, Submission.decision.is_(None)
        )
    ).first()
