"""The office decides a unit's completion or extension: ``approve`` (通过) and ``return_submission`` (退回).

- completion: approved → ``done`` with ``done_at`` = the submission time and ``done_late`` from the
  due date, the files listed as evidence; returned → open or overdue as the dates say.
- extension: approved → the due date moves (the office may grant another date with ``until``) and
  the obligation's notices are re-armed for it (``engine.extensions``); returned → nothing moves.

Each decision is in the audit log (before/after) and queues the unit's notice of it.

A decision is one conditional write: ``UPDATE submission SET decision = … WHERE id = :id AND
decision IS NULL``, checked by its row count, before anything else is read or changed. Of two
decisions sent at once (通过 and 退回, the page and the CLI, two office sessions) the one that
writes second finds the request decided and raises ``AlreadyDecided``; its caller rolls back, so
the loser changes nothing. The obligation's row is locked after the claim (``store.db.lock_row``)
and read after the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, select

from notifications.labels import EVENT_DETAILS as WORDS
from orchestrator.admin.acting import (
    NO_DESK,
    Actor,
    BadRequest,
    Desk,
    audit_submission,
    check_requested_date,
    clean_text,
    local_today,
)
from orchestrator.admin.operations import MAX_TEXT, InvalidTransition, withdraw_notices
from orchestrator.admin.refs import row_id
from orchestrator.admin.submission_notices import tell_unit
from orchestrator.engine.extensions import rearm_obligation
from orchestrator.engine.programs import state_for
from orchestrator.store.db import lock_row
from orchestrator.store.models import Evidence, Obligation, Program, Submission
from orchestrator.store.states import OPEN_STATES, REVIEW_KINDS, Decision, ObligationState, SubmissionKind
from workflows.errors import NotFound


@dataclass(frozen=True)
class Decided:
    """What ``approve`` or ``return_submission`` did."""

    submission_id: int
    kind: str
    decision: str
    obligation_id: int
    state: str  # the obligation's state after it
    due: date  # its due date after it
    done_at: datetime | None = None
    done_late: bool | None = None


# -- the office decides ---------------------------------------------------------------------------


class AlreadyDecided(InvalidTransition):
    """The request was decided already (by another decision that went first): nothing changed."""

    exit_code = 1


def _claim(
    session: Session, submission_id: int | str, decision: str, actor: Actor, now: datetime, reason: str | None
) -> tuple[Submission, Obligation]:
    """Record ``decision`` on the submission if it is still undecided — the one conditional write
    every decision starts with — and return it with its obligation, locked and read after the
    claim. ``NotFound`` for no such request, ``AlreadyDecided`` for one decided already."""
    number = row_id(submission_id)
    if number is None:
        raise NotFound(f"no submission {str(submission_id)[:40]!r} (`duban review` lists them)")
    row = Submission.__table__.c
    claimed = session.execute(
        Submission.__table__.update()
        .where(row.id == number, row.decision.is_(None), row.kind.in_(tuple(REVIEW_KINDS)))
        .values(decision=decision, decided_at=now, decided_by=actor.name, reason=reason)
    ).rowcount
    submission = session.get(Submission, number, populate_existing=True)
    if submission is None or submission.kind not in REVIEW_KINDS:
        raise NotFound(f"no submission #{number} to review (`duban review` lists them)")
    if claimed != 1:
        when = submission.decided_at.isoformat(timespec="seconds") if submission.decided_at else "?"
        raise AlreadyDecided(
            f"submission #{number} was already decided: {submission.decision} by {submission.decided_by} at {when}"
        )
    lock_row(session, Obligation.__table__, submission.obligation_id)
    return submission, session.get(Obligation, submission.obligation_id, populate_existing=True)


def approve(
    session: Session,
    submission_id: int | str,
    actor: Actor,
    now: datetime,
    *,
    note: str | None = None,
    until: date | None = None,
    desk: Desk = NO_DESK,
) -> Decided:
    """通过. A completion: the obligation → done at the submission time (late if that day is after
    the due date), the files as its evidence. An extension: the due date → ``until`` (default: the
    date asked for), the obligation's notices re-armed for it (needs its plan in ``desk``)."""
    note = clean_text(note, "--note", required=False)
    submission, obligation = _claim(session, submission_id, Decision.APPROVED, actor, now, note)
    if submission.kind == SubmissionKind.COMPLETION:
        if until is not None:
            raise BadRequest("--until goes with an extension, not a completion")
        return _approve_completion(session, submission, obligation, actor, now, note, desk)
    return _approve_extension(session, submission, obligation, actor, now, note, until, desk)


def _approve_completion(session, submission, obligation, actor, now, note, desk) -> Decided:
    if obligation.state != ObligationState.SUBMITTED:
        raise InvalidTransition(f"#{obligation.id} is {obligation.state}, not in review")
    late = local_today(session, obligation, submission.submitted_at) > obligation.due
    files = session.exec(select(Evidence).where(Evidence.submission_id == submission.id)).all()
    listed = "；".join(f"{f.original_name} (sha256 {f.sha256[:12]})" for f in files)
    evidence = "；".join(p for p in (submission.note, f"佐证材料：{listed}" if listed else None) if p)
    obligation.state, obligation.done_at, obligation.done_late = (
        ObligationState.DONE,
        submission.submitted_at,
        late,
    )
    obligation.evidence, obligation.updated_at = evidence[:MAX_TEXT] or None, now
    after = {
        "state": "done",
        "done_at": submission.submitted_at.isoformat(timespec="seconds"),
        "done_late": late,
        "submission": submission.id,
        "evidence": [f.sha256 for f in files],
    }
    audit_submission(
        session,
        obligation,
        "obligation.done",
        actor,
        now,
        before={"state": "submitted"},
        after=after,
        detail=note,
    )
    tell_unit(session, submission, obligation, now, desk)
    return Decided(
        submission.id,
        submission.kind,
        Decision.APPROVED,
        obligation.id,
        obligation.state,
        obligation.due,
        obligation.done_at,
        late,
    )


def _approve_extension(session, submission, obligation, actor, now, note, until, desk) -> Decided:
    until = until or submission.requested
    if until is None or until <= obligation.due:
        raise BadRequest(f"--until {until}: the new date must be after the due date {obligation.due}")
    check_requested_date(session, obligation, until, desk)
    if obligation.state not in OPEN_STATES | {ObligationState.SUBMITTED}:
        raise InvalidTransition(f"#{obligation.id} is {obligation.state}: its due date cannot move")
    program = session.get(Program, obligation.program_id)
    bundle = desk.bundles.get(program.workflow)
    before = {"due": str(obligation.due), "state": obligation.state}
    withdrawn = withdraw_notices(session, obligation)  # reminders computed for the old date
    obligation.due = obligation.extended_to = until
    if obligation.state in OPEN_STATES:
        obligation.state = state_for(obligation.opens, until, local_today(session, obligation, now))
    obligation.updated_at = now
    timers = rearm_obligation(session, bundle, program, obligation, now) if bundle else 0
    after = {"due": str(until), "state": obligation.state, "submission": submission.id, "timers": timers}
    detail = "；".join(
        (WORDS["withdrawn"].format(n=withdrawn), WORDS["armed"].format(n=timers), *([note] if note else []))
    )
    audit_submission(
        session, obligation, "obligation.extended", actor, now, before=before, after=after, detail=detail
    )
    tell_unit(session, submission, obligation, now, desk)
    return Decided(submission.id, submission.kind, Decision.APPROVED, obligation.id, obligation.state, until)


def return_submission(
    session: Session,
    submission_id: int | str,
    actor: Actor,
    now: datetime,
    reason: str | None,
    *,
    desk: Desk = NO_DESK,
) -> Decided:
    """退回, with a reason (required). A completion: the obligation goes back to open or overdue as
    its dates say, and its notices still ahead fire again. An extension: nothing moves. The reason
    shows on the unit's page and in its next digest."""
    reason = clean_text(reason, "--reason", required=True)
    submission, obligation = _claim(session, submission_id, Decision.RETURNED, actor, now, reason)
    before = {"state": obligation.state}
    if submission.kind == SubmissionKind.COMPLETION and obligation.state == ObligationState.SUBMITTED:
        obligation.state = state_for(obligation.opens, obligation.due, local_today(session, obligation, now))
        obligation.updated_at = now
    after = {"state": obligation.state, "submission": submission.id, "kind": submission.kind}
    audit_submission(
        session, obligation, "submission.returned", actor, now, before=before, after=after, detail=reason
    )
    tell_unit(session, submission, obligation, now, desk)
    return Decided(
        submission.id, submission.kind, Decision.RETURNED, obligation.id, obligation.state, obligation.due
    )
