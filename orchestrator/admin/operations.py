"""The state changes an operator makes: done, waive, reopen, and retrying failed emails.

Each function changes rows in the caller's session and appends one audit ``Event`` (who, when,
before, after); the caller commits — one command, one transaction (``db.transaction``). Nothing
is acted on before it is committed: the daemon sees the change at its next tick, with no restart.

Transitions (anything else raises ``InvalidTransition`` with a one-line reason, nothing changed):

- ``done``:   pending | open | overdue → done. ``done_late`` is true when the local date of
  ``now`` (the program's time zone) is after the due date. A pending obligation may be done
  early (``done_late`` false). Done needs no evidence, but records it when given.
- ``waive``:  pending | open | overdue → waived, with a non-empty reason.
- ``reopen``: done | waived → pending, open or overdue, whichever the dates say today
  (before ``opens``: pending; up to ``due``: open; after: overdue). Evidence, reason and the
  done time are cleared on the row; the audit log keeps them.

Notices: ``done`` and ``waive`` withdraw the obligation's notices that are still waiting for their
send window (notification items not yet put in an email; they become ``skipped``), so nothing more
is sent about it — the tick already skips timers of finished obligations. Notices already in an
outbox message are left alone (the message may carry other items; its Message-ID depends on them).
After ``reopen`` the obligation's future timers fire as usual; notices whose time passed while it
was done or waived are not sent again, and a reopened obligation that is already past due is
overdue at once without a new ``overdue`` email (the escalation steps still ahead of it do fire).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import Session, select

from notifications.labels import EVENT_DETAILS as WORDS
from notifications.model import NoticeKind
from orchestrator.admin.refs import Ref, resolve
from orchestrator.engine.programs import state_for
from orchestrator.engine.window import local_day, local_midnight
from orchestrator.store.audit import record
from orchestrator.store.models import NotificationItem, Obligation, OutboxMessage, Program
from orchestrator.store.states import OPEN_STATES, ItemState, ObligationState, OutboxState
from workflows.errors import DubanError, NotFound, one_line_problem
from workflows.schema import DEFAULT_TIMEZONE

ALL_FAILED: Literal["all-failed"] = "all-failed"
MAX_TEXT = 2000


class InvalidTransition(DubanError):
    """A state change that the state machine does not allow (e.g. ``done`` on a waived obligation)."""


class MissingText(DubanError):
    """A required free text (a waiver's reason) is empty; a free text too long or not one line (exit 2)."""


@dataclass(frozen=True)
class Change:
    """What one operation did to one obligation."""

    obligation_id: int
    key: str
    before: str
    after: str
    done_late: bool | None = None
    withdrawn: int = 0  # notices withdrawn (items that were still waiting for their send window)


def _text(value: str | None, what: str, *, required: bool) -> str | None:
    text = (value or "").strip()
    if required and not text:
        raise MissingText(
            f'{what}: a reason is required (say why, e.g. --reason "not applicable to this unit")'
        )
    problem = one_line_problem(text, what, MAX_TEXT)
    if problem is not None:
        raise MissingText(problem)
    return text or None


def check_text(value: str | None, what: str, *, required: bool) -> str | None:
    """A free text as stored (stripped; None if empty); ``MissingText`` if required and empty, or too long."""
    return _text(value, what, required=required)


def _local_today(session: Session, obligation: Obligation, now: datetime):
    program = session.get(Program, obligation.program_id)
    return local_day(now, ZoneInfo(program.timezone if program else DEFAULT_TIMEZONE))


def _refuse(obligation: Obligation, action: str, allowed: Collection[str]) -> None:
    state = obligation.state
    if state in allowed:
        return
    name = f"#{obligation.id}"
    if state == ObligationState.SUBMITTED:
        raise InvalidTransition(
            f"{name} is in review (待审核): decide it with `duban review approve|return` first"
        )
    if state == ObligationState.CANCELLED:
        raise InvalidTransition(f"{name} is cancelled (it left the plan): it cannot be {action}")
    if action == "reopened":
        raise InvalidTransition(f"{name} is {state}: only a done or waived obligation can be reopened")
    if state == action:
        raise InvalidTransition(f"{name} is already {state}: reopen it first to record it again")
    raise InvalidTransition(f"{name} is {state}: reopen it first")


def withdraw_notices(session: Session, obligation: Obligation) -> int:
    """Skip the obligation's waiting notices, and take it out of the waiting escalations of its task
    (an escalation left with no late unit is skipped)."""
    result = session.execute(
        update(NotificationItem)
        .where(NotificationItem.obligation_id == obligation.id, NotificationItem.state == ItemState.PENDING)
        .values(state=ItemState.SKIPPED)
        .execution_options(synchronize_session=False)
    )
    withdrawn = result.rowcount or 0
    item = NotificationItem.__table__.c
    escalations = session.connection().execute(
        select(item.id, item.late).where(
            item.state == ItemState.PENDING,
            item.kind == NoticeKind.ESCALATION,
            item.obligation_id.is_(None),
            item.program_id == obligation.program_id,
            item.task == obligation.task,
            item.due == obligation.due,
        )
    )
    for item_id, late in escalations.all():
        rest = [pair for pair in late or () if pair[0] != obligation.id]
        if len(rest) == len(late or ()):
            continue
        values = {"late": rest} if rest else {"state": ItemState.SKIPPED}
        session.connection().execute(
            NotificationItem.__table__.update().where(item.id == item_id).values(**values)
        )
        withdrawn += 1
    return withdrawn


def obligation_event(
    session: Session, obligation: Obligation, kind: str, now, actor, before, after, detail=None
) -> None:
    """One audit row about ``obligation`` (its program, unit and key named), by ``actor``."""
    record(
        session,
        at=now,
        actor=actor,
        kind=kind,
        program_id=obligation.program_id,
        obligation_id=obligation.id,
        unit=obligation.unit,
        subject=obligation.key,
        before=before,
        after=after,
        detail=detail,
    )


def mark_done(
    session: Session,
    ref: Ref | str | int,
    *,
    evidence: str | None,
    now: datetime,
    actor: str,
    names=None,
    done_on: date | None = None,
    detail: str | None = None,
) -> Change:
    """pending | open | overdue → done; records evidence and whether it was late.

    ``done_on``: the day it was really done (an import of what happened before duban was used):
    the done time is that day's start and lateness is counted from it, not from ``now``.
    """
    evidence = _text(evidence, "--evidence", required=False)
    obligation = resolve(session, ref, names)
    _refuse(obligation, ObligationState.DONE, OPEN_STATES)
    if done_on is None:
        late, done_at = _local_today(session, obligation, now) > obligation.due, now
    else:
        check_done_on(session, obligation, done_on)
        program = session.get(Program, obligation.program_id)
        late, done_at = done_on > obligation.due, local_midnight(done_on, ZoneInfo(program.timezone))
    before = obligation.state
    obligation.state, obligation.done_at, obligation.done_late = ObligationState.DONE, done_at, late
    obligation.evidence, obligation.updated_at = evidence, now
    withdrawn = withdraw_notices(session, obligation)
    after = {
        "state": ObligationState.DONE,
        "done_at": done_at.isoformat(timespec="seconds"),
        "done_late": late,
        "evidence": evidence,
    }
    detail = _detail(detail, withdrawn)
    obligation_event(session, obligation, "obligation.done", now, actor, {"state": before}, after, detail)
    return Change(obligation.id, obligation.key, before, ObligationState.DONE, late, withdrawn)


def earliest_done_on(session: Session, obligation: Obligation) -> date:
    """The earliest day an obligation can have been done: 01-01 of the year before its program's
    (work prepared ahead of a plan's year is plausible; 1900-01-01 or 0001-01-01 is a typing error,
    and before 1901 the plan's zone is a local mean time nobody meant)."""
    program = session.get(Program, obligation.program_id)
    return date(program.year - 1, 1, 1)


def check_done_on(session: Session, obligation: Obligation, done_on: date) -> None:
    """``MissingText`` (one line, exit 2) for a done date long before the obligation opened."""
    earliest = earliest_done_on(session, obligation)
    if done_on < earliest:
        raise MissingText(
            f"done_on: {done_on} is long before #{obligation.id} opened ({obligation.opens}): "
            f"give a day from {earliest} on"
        )


def _detail(detail: str | None, withdrawn: int) -> str | None:
    parts = [detail] if detail else []
    if withdrawn:
        parts.append(WORDS["withdrawn"].format(n=withdrawn))
    return "；".join(parts) or None


def waive(
    session: Session,
    ref: Ref | str | int,
    *,
    reason: str | None,
    now: datetime,
    actor: str,
    names=None,
    detail: str | None = None,
) -> Change:
    """pending | open | overdue → waived; the reason is required."""
    reason = _text(reason, "--reason", required=True)
    obligation = resolve(session, ref, names)
    _refuse(obligation, ObligationState.WAIVED, OPEN_STATES)
    before = obligation.state
    obligation.state, obligation.reason, obligation.updated_at = ObligationState.WAIVED, reason, now
    withdrawn = withdraw_notices(session, obligation)
    detail = _detail(detail, withdrawn)
    obligation_event(
        session,
        obligation,
        "obligation.waived",
        now,
        actor,
        {"state": before},
        {"state": ObligationState.WAIVED, "reason": reason},
        detail,
    )
    return Change(obligation.id, obligation.key, before, ObligationState.WAIVED, None, withdrawn)


def reopen(
    session: Session,
    ref: Ref | str | int,
    *,
    now: datetime,
    actor: str,
    reason: str | None = None,
    names=None,
) -> Change:
    """done | waived → pending, open or overdue by today's date; clears evidence, reason and done time."""
    reason = _text(reason, "--reason", required=False)
    obligation = resolve(session, ref, names)
    _refuse(obligation, "reopened", (ObligationState.DONE, ObligationState.WAIVED))
    state = state_for(obligation.opens, obligation.due, _local_today(session, obligation, now))
    before = {
        "state": obligation.state,
        "done_at": obligation.done_at.isoformat(timespec="seconds") if obligation.done_at else None,
        "done_late": obligation.done_late,
        "evidence": obligation.evidence,
        "reason": obligation.reason,
    }
    obligation.state, obligation.updated_at = state, now
    obligation.done_at = obligation.done_late = obligation.evidence = obligation.reason = None
    obligation_event(session, obligation, "obligation.reopened", now, actor, before, {"state": state}, reason)
    return Change(obligation.id, obligation.key, before["state"], state)


def retry_outbox(
    session: Session, target: int | Literal["all-failed"], *, now: datetime, actor: str
) -> list[int]:
    """failed → pending, due now (attempts kept: a message that used them all gets one more try).

    ``target`` is an outbox message id or ``ALL_FAILED``. Returns the ids put back; a given id that
    is unknown is ``NotFound``, one that is not failed ``InvalidTransition``.
    """
    if target == ALL_FAILED:
        messages = list(
            session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.state == OutboxState.FAILED)
                .order_by(OutboxMessage.id)
            )
        )
    else:
        message = session.get(OutboxMessage, int(target))
        if message is None:
            raise NotFound(f"no outbox message #{target} (`duban outbox` lists them)")
        if message.state != OutboxState.FAILED:
            raise InvalidTransition(
                f"outbox message #{message.id} is {message.state}: only a failed message can be retried"
            )
        messages = [message]
    for message in messages:
        before = {"state": OutboxState.FAILED, "attempts": message.attempts, "last_error": message.last_error}
        message.state, message.next_attempt_at = OutboxState.PENDING, now
        message.claimed_by = message.claimed_until = message.reported_at = None
        record(
            session,
            at=now,
            actor=actor,
            kind="mail.retry_requested",
            unit=message.recipient,
            subject=message.message_id,
            before=before,
            after={"state": OutboxState.PENDING, "next_attempt_at": now.isoformat(timespec="seconds")},
            detail=WORDS["outbox"].format(id=message.id),
        )
    return [m.id for m in messages]
