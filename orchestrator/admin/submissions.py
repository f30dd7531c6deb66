"""What a unit does through its link, and how the office decides (the loop closes inside duban).

A unit's actions — ``acknowledge`` (签收), ``feedback`` (反馈), ``submit_completion`` (办结申请),
``request_extension`` (延期申请) — each store one ``Submission`` row (with its ``Evidence`` files)
and one audit ``Event`` with actor ``unit:<id>``, the client address and the user agent. A unit may
act only on its own obligations in running programs: any other id is ``NotFound`` (the web's
404), nothing stored. A double submit stores one row: the same ``nonce`` (the form's one-time
value) returns the row stored the first time, and so does a second completion while one is in
review, a second identical feedback, a second acknowledgement or a second identical extension.

The office decides completions and extensions: ``approve`` and ``return_submission`` (actor
``office:<email>`` from the office page, the OS user from the CLI).

- completion: ``open|overdue|pending → submitted`` (waiting notices withdrawn, no more reminders
  or escalations while in review); approved → ``done`` with ``done_at`` = the submission time and
  ``done_late`` from the due date, the files listed as evidence; returned → open or overdue as the
  dates say (the notices still ahead fire again), the reason on the unit's page and in its next
  digest.
- extension: only up to the due date, for a later date; approved → the due date moves (the office
  may grant another date with ``until``), the obligation's notices are re-armed for the new date
  (``engine.extensions``), before/after in the audit log; returned → nothing moves.

Each function works in the caller's session; the caller commits (one request, one transaction).
``Desk`` carries what some of them need besides the session: the loaded plans (names, deliverables,
working-day calendars, notices to re-arm) and the send policy (when the unit's notice of a decision
and the office's 待审核 notice go out); without it they still work, with plainer output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from orchestrator.admin.evidence import StoredFile
from orchestrator.admin.operations import MAX_TEXT, InvalidTransition, MissingText, withdraw_notices
from orchestrator.engine.extensions import rearm_obligation
from orchestrator.engine.programs import insert_ignoring_duplicates, state_for
from orchestrator.engine.window import SendPolicy, local_day, send_slot
from orchestrator.store.audit import operator, record
from orchestrator.store.models import Evidence, NotificationItem, Obligation, Program, Submission
from orchestrator.store.states import (
    ACTIVE_STATES,
    OPEN_STATES,
    Decision,
    ItemState,
    ObligationState,
    ProgramState,
    SubmissionKind,
)
from workflows.catalog import Bundle
from workflows.errors import DubanError, NotFound
from workflows.schema import DEFAULT_TIMEZONE

MAX_NOTE = MAX_TEXT


class BadRequest(DubanError):
    """A unit's or the office's request that cannot be done as asked (a 400 page, exit 2)."""


@dataclass(frozen=True)
class Actor:
    """Who acts. ``name`` is what the audit log writes; ``unit`` is set for a unit's page (it may
    touch only its own obligations); ``client`` and ``user_agent`` come with a web request."""

    name: str
    unit: str | None = None
    client: str | None = None
    user_agent: str | None = None

    @classmethod
    def for_unit(cls, unit: str, client: str | None = None, user_agent: str | None = None) -> Actor:
        return cls(f"unit:{unit}", unit, client, (user_agent or "")[:400] or None)

    @classmethod
    def office(cls, email: str, client: str | None = None, user_agent: str | None = None) -> Actor:
        return cls(f"office:{email}", None, client, (user_agent or "")[:400] or None)

    @classmethod
    def cli(cls) -> Actor:
        return cls(operator())


@dataclass(frozen=True)
class Desk:
    """What operations use besides the session: plans by workflow id, and the send policy."""

    bundles: Mapping[str, Bundle] = field(default_factory=dict)
    policy: SendPolicy | None = None


NO_DESK = Desk()


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


# -- what a unit may touch --------------------------------------------------------------------------


def own_obligation(session: Session, unit: str | None, obligation_id: int | str) -> Obligation:
    """The obligation ``obligation_id`` if ``unit`` may act on it (its own, in a running program, not
    cancelled); ``unit`` None (the office) may act on any. ``NotFound`` otherwise, saying no more."""
    try:
        number = int(str(obligation_id).lstrip("#"))
    except ValueError:
        raise NotFound(f"no obligation {str(obligation_id)[:40]!r}") from None
    obligation = session.get(Obligation, number)
    program = session.get(Program, obligation.program_id) if obligation else None
    if (
        obligation is None
        or program is None
        or (unit is not None and obligation.unit != unit)
        or (unit is not None and program.state != ProgramState.RUNNING)
        or obligation.state == ObligationState.CANCELLED
    ):
        raise NotFound(f"no obligation #{number}")
    return obligation


def _text(value: str | None, what: str, *, required: bool) -> str | None:
    try:
        text = (value or "").replace("\r\n", "\n").strip()
        if required and not text:
            raise MissingText(f"{what}: required")
        if len(text) > MAX_NOTE:
            raise MissingText(f"{what}: too long ({len(text)} characters, at most {MAX_NOTE})")
    except MissingText as exc:
        raise BadRequest(str(exc)) from None
    return text or None


def _today(session: Session, obligation: Obligation, at: datetime) -> date:
    program = session.get(Program, obligation.program_id)
    return local_day(at, ZoneInfo(program.timezone if program else DEFAULT_TIMEZONE))


def _by_nonce(session: Session, nonce: str | None, obligation: Obligation, kind: str) -> Submission | None:
    if not nonce:
        return None
    found = session.exec(select(Submission).where(Submission.nonce == nonce)).first()
    if found is not None and (found.obligation_id != obligation.id or found.kind != kind):
        raise NotFound(f"no obligation #{obligation.id}")  # a nonce of another form: say nothing
    return found


def _last(session: Session, obligation: Obligation, kind: str) -> Submission | None:
    return session.exec(
        select(Submission)
        .where(Submission.obligation_id == obligation.id, Submission.kind == kind)
        .order_by(Submission.id.desc())
    ).first()


def _store(
    session: Session,
    obligation: Obligation,
    kind: str,
    actor: Actor,
    now: datetime,
    *,
    note: str | None = None,
    requested: date | None = None,
    files: Sequence[StoredFile] = (),
    nonce: str | None = None,
    decision: str | None = None,
) -> Submission:
    submission = Submission(
        kind=kind,
        obligation_id=obligation.id,
        unit=obligation.unit,
        note=note,
        requested=requested,
        previous_due=obligation.due,
        submitted_at=now,
        decision=decision,
        decided_at=now if decision else None,
        client=actor.client,
        user_agent=actor.user_agent,
        nonce=nonce or None,
    )
    session.add(submission)
    session.flush()
    for stored in files:
        session.add(
            Evidence(
                submission_id=submission.id,
                sha256=stored.sha256,
                size=stored.size,
                media_type=stored.media_type,
                original_name=stored.name,
            )
        )
    return submission


def _audit(
    session, obligation: Obligation, kind: str, actor: Actor, now, *, before=None, after=None, detail=None
):
    web = "; ".join(
        f"{name}={value}" for name, value in (("client", actor.client), ("ua", actor.user_agent)) if value
    )
    record(
        session,
        at=now,
        actor=actor.name,
        kind=kind,
        program_id=obligation.program_id,
        obligation_id=obligation.id,
        unit=obligation.unit,
        subject=obligation.key,
        before=before,
        after=after,
        detail="; ".join(part for part in (detail, web) if part) or None,
    )


def _files_of(files: Sequence[StoredFile]) -> list[dict]:
    return [{"sha256": f.sha256, "size": f.size, "type": f.media_type, "name": f.name} for f in files]


def _same_files(session: Session, submission: Submission, files: Sequence[StoredFile]) -> bool:
    stored = session.exec(select(Evidence.sha256).where(Evidence.submission_id == submission.id)).all()
    return sorted(stored) == sorted(f.sha256 for f in files)


# -- a unit's actions ---------------------------------------------------------------------------


def acknowledge(
    session: Session, obligation_id: int | str, actor: Actor, now: datetime, *, nonce: str | None = None
) -> Submission:
    """签收: the unit has received the notice (once; a second time returns the first)."""
    obligation = own_obligation(session, actor.unit, obligation_id)
    found = _by_nonce(session, nonce, obligation, SubmissionKind.ACKNOWLEDGE) or _last(
        session, obligation, SubmissionKind.ACKNOWLEDGE
    )
    if found is not None:
        return found
    submission = _store(
        session, obligation, SubmissionKind.ACKNOWLEDGE, actor, now, nonce=nonce, decision=Decision.NOTED
    )
    _audit(session, obligation, "unit.acknowledged", actor, now, after={"submission": submission.id})
    return submission


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
    obligation = own_obligation(session, actor.unit, obligation_id)
    note = _text(note, "反馈内容", required=not files)
    found = _by_nonce(session, nonce, obligation, SubmissionKind.FEEDBACK)
    if found is None:
        last = _last(session, obligation, SubmissionKind.FEEDBACK)
        if last is not None and last.note == note and _same_files(session, last, files):
            found = last  # the same words and files again: a double submit
    if found is not None:
        return found
    submission = _store(
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
    after = {"submission": submission.id, "note": note, "files": _files_of(files)}
    _audit(session, obligation, "unit.feedback", actor, now, after=after)
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
    obligation = own_obligation(session, actor.unit, obligation_id)
    note = _text(note, "办结说明", required=not files)
    found = _by_nonce(session, nonce, obligation, SubmissionKind.COMPLETION)
    if found is None and obligation.state == ObligationState.SUBMITTED:
        found = _pending(session, obligation, SubmissionKind.COMPLETION)
    if found is not None:
        return found
    if obligation.state not in OPEN_STATES:
        raise InvalidTransition(f"#{obligation.id} is {obligation.state}: nothing to submit")
    before = obligation.state
    submission = _store(
        session, obligation, SubmissionKind.COMPLETION, actor, now, note=note, files=files, nonce=nonce
    )
    obligation.state, obligation.updated_at = ObligationState.SUBMITTED, now
    withdrawn = withdraw_notices(session, obligation)
    after = {"state": "submitted", "submission": submission.id, "note": note, "files": _files_of(files)}
    detail = f"{withdrawn} waiting notice(s) withdrawn" if withdrawn else None
    _audit(
        session,
        obligation,
        "obligation.submitted",
        actor,
        now,
        before={"state": before},
        after=after,
        detail=detail,
    )
    _tell_office(session, obligation, now, desk)
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
    obligation = own_obligation(session, actor.unit, obligation_id)
    reason = _text(reason, "延期理由", required=True)
    found = _by_nonce(session, nonce, obligation, SubmissionKind.EXTENSION)
    pending = found or _pending(session, obligation, SubmissionKind.EXTENSION)
    if pending is not None:
        if found is not None or (pending.requested == until and pending.note == reason):
            return pending
        raise InvalidTransition(f"#{obligation.id}: an extension request is already waiting for review")
    if obligation.state not in ACTIVE_STATES | {ObligationState.PENDING}:
        raise InvalidTransition(f"#{obligation.id} is {obligation.state}: it cannot be extended")
    if _today(session, obligation, now) > obligation.due:
        raise BadRequest(f"#{obligation.id}: the due date {obligation.due} has passed; ask before it")
    if until <= obligation.due:
        raise BadRequest(f"the new date {until} must be after the due date {obligation.due}")
    submission = _store(
        session, obligation, SubmissionKind.EXTENSION, actor, now, note=reason, requested=until, nonce=nonce
    )
    after = {"submission": submission.id, "until": str(until), "reason": reason}
    _audit(session, obligation, "unit.extension_requested", actor, now, after=after)
    _tell_office(session, obligation, now, desk)
    return submission


def _pending(session: Session, obligation: Obligation, kind: str) -> Submission | None:
    return session.exec(
        select(Submission).where(
            Submission.obligation_id == obligation.id, Submission.kind == kind, Submission.decision.is_(None)
        )
    ).first()


# -- the office decides ---------------------------------------------------------------------------


def _reviewable(session: Session, submission_id: int | str) -> tuple[Submission, Obligation]:
    try:
        number = int(str(submission_id).lstrip("#"))
    except ValueError:
        raise NotFound(f"no submission {str(submission_id)[:40]!r} (`duban review` lists them)") from None
    submission = session.get(Submission, number)
    if submission is None or submission.kind not in (SubmissionKind.COMPLETION, SubmissionKind.EXTENSION):
        raise NotFound(f"no submission #{number} to review (`duban review` lists them)")
    if submission.decision is not None:
        raise InvalidTransition(f"submission #{number} is already {submission.decision}")
    return submission, session.get(Obligation, submission.obligation_id)


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
    note = _text(note, "--note", required=False)
    submission, obligation = _reviewable(session, submission_id)
    if submission.kind == SubmissionKind.COMPLETION:
        if until is not None:
            raise BadRequest("--until goes with an extension, not a completion")
        return _approve_completion(session, submission, obligation, actor, now, note, desk)
    return _approve_extension(session, submission, obligation, actor, now, note, until, desk)


def _decide(submission: Submission, decision: str, actor: Actor, now: datetime, reason: str | None) -> None:
    submission.decision, submission.decided_at = decision, now
    submission.decided_by, submission.reason = actor.name, reason


def _approve_completion(session, submission, obligation, actor, now, note, desk) -> Decided:
    if obligation.state != ObligationState.SUBMITTED:
        raise InvalidTransition(f"#{obligation.id} is {obligation.state}, not in review")
    late = _today(session, obligation, submission.submitted_at) > obligation.due
    files = session.exec(select(Evidence).where(Evidence.submission_id == submission.id)).all()
    listed = "；".join(f"{f.original_name} (sha256 {f.sha256[:12]})" for f in files)
    evidence = "；".join(p for p in (submission.note, f"佐证材料：{listed}" if listed else None) if p)
    obligation.state, obligation.done_at, obligation.done_late = (
        ObligationState.DONE,
        submission.submitted_at,
        late,
    )
    obligation.evidence, obligation.updated_at = evidence[:MAX_TEXT] or None, now
    _decide(submission, Decision.APPROVED, actor, now, note)
    after = {
        "state": "done",
        "done_at": submission.submitted_at.isoformat(timespec="seconds"),
        "done_late": late,
        "submission": submission.id,
        "evidence": [f.sha256 for f in files],
    }
    _audit(
        session,
        obligation,
        "obligation.done",
        actor,
        now,
        before={"state": "submitted"},
        after=after,
        detail=note,
    )
    _tell_unit(session, submission, obligation, now, desk)
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
    if obligation.state not in OPEN_STATES | {ObligationState.SUBMITTED}:
        raise InvalidTransition(f"#{obligation.id} is {obligation.state}: its due date cannot move")
    program = session.get(Program, obligation.program_id)
    bundle = desk.bundles.get(program.workflow)
    before = {"due": str(obligation.due), "state": obligation.state}
    withdrawn = withdraw_notices(session, obligation)  # reminders computed for the old date
    obligation.due = obligation.extended_to = until
    if obligation.state in OPEN_STATES:
        obligation.state = state_for(obligation.opens, until, _today(session, obligation, now))
    obligation.updated_at = now
    timers = rearm_obligation(session, bundle, program, obligation, now) if bundle else 0
    _decide(submission, Decision.APPROVED, actor, now, note)
    after = {"due": str(until), "state": obligation.state, "submission": submission.id, "timers": timers}
    detail = f"{withdrawn} waiting notice(s) withdrawn; {timers} timer(s) armed" + (
        f"; {note}" if note else ""
    )
    _audit(session, obligation, "obligation.extended", actor, now, before=before, after=after, detail=detail)
    _tell_unit(session, submission, obligation, now, desk)
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
    reason = _text(reason, "--reason", required=True)
    submission, obligation = _reviewable(session, submission_id)
    before = {"state": obligation.state}
    if submission.kind == SubmissionKind.COMPLETION and obligation.state == ObligationState.SUBMITTED:
        obligation.state = state_for(obligation.opens, obligation.due, _today(session, obligation, now))
        obligation.updated_at = now
    _decide(submission, Decision.RETURNED, actor, now, reason)
    after = {"state": obligation.state, "submission": submission.id, "kind": submission.kind}
    _audit(session, obligation, "submission.returned", actor, now, before=before, after=after, detail=reason)
    _tell_unit(session, submission, obligation, now, desk)
    return Decided(
        submission.id, submission.kind, Decision.RETURNED, obligation.id, obligation.state, obligation.due
    )


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


def _tell_unit(session, submission: Submission, obligation: Obligation, now, desk: Desk) -> None:
    """The unit's next digest says the decision (one item per decision)."""
    kind = SUBMISSION_APPROVED if submission.decision == Decision.APPROVED else SUBMISSION_RETURNED
    key = f"{obligation.key}/{kind}/{submission.id}/{obligation.unit}"
    _item(session, obligation, kind, obligation.unit, key, now, _slot(session, obligation, now, desk))


def office_units(bundle: Bundle | None) -> list[str]:
    """Who hears of 待审核: the plan's ``contact`` units (the office that supervises it)."""
    if bundle is None or not bundle.definition.workflow.contact:
        return []
    return list(bundle.units.directory.expand(bundle.definition.workflow.contact))


def _tell_office(session, obligation: Obligation, now, desk: Desk) -> None:
    """One 待审核 notice a day for the office (the count is taken when the digest is written)."""
    program = session.get(Program, obligation.program_id)
    send_at = _slot(session, obligation, now, desk)
    day = local_day(send_at, ZoneInfo(program.timezone))
    for recipient in office_units(desk.bundles.get(program.workflow)):
        key = f"{program.workflow}/{program.year}/{REVIEW_PENDING}/{day}/{recipient}"
        _item(session, obligation, REVIEW_PENDING, recipient, key, now, send_at)


# the read side (what pages and `duban review` list) lives in portal.py; re-exported here
from orchestrator.admin.portal import (  # noqa: E402
    BoardView,
    Colour,
    Review,
    UnitObligation,
    board,
    pending_reviews,
    unacknowledged,
    unit_obligations,
)

__all__ = [
    "Actor",
    "BadRequest",
    "BoardView",
    "Colour",
    "Decided",
    "Desk",
    "Review",
    "UnitObligation",
    "acknowledge",
    "approve",
    "board",
    "feedback",
    "own_obligation",
    "pending_reviews",
    "request_extension",
    "return_submission",
    "submit_completion",
    "unacknowledged",
    "unit_obligations",
]
