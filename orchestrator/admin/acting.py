"""Who acts on a submission, on what, and how what they send is stored.

``Actor`` (a unit through its link, the office's page, the CLI), ``Desk`` (the loaded plans and the
send policy some operations need besides the session) and ``BadRequest``; ``own_obligation``, the
one rule of what a unit may touch; and the helpers every action shares: checking a typed text,
the program's local day, finding a double submit (by ``nonce`` or the last row of a kind),
storing one ``Submission`` row with its ``Evidence`` files, and its audit ``Event``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from orchestrator.admin.evidence import StoredFile
from orchestrator.admin.operations import MAX_TEXT, obligation_event
from orchestrator.admin.refs import row_id
from orchestrator.engine.window import SendPolicy, local_day
from orchestrator.store.audit import operator
from orchestrator.store.db import lock_row
from orchestrator.store.models import Evidence, Obligation, Program, Submission
from orchestrator.store.states import ObligationState, ProgramState
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


EXTENSION_YEARS = 1  # default: a new due date lies at the latest in the year after the program's


@dataclass(frozen=True)
class Desk:
    """What operations use besides the session: plans by workflow id, the send policy, and how far
    past its program's year a due date may be moved (``[web] extension_years``)."""

    bundles: Mapping[str, Bundle] = field(default_factory=dict)
    policy: SendPolicy | None = None
    extension_years: int = EXTENSION_YEARS


NO_DESK = Desk()


# -- what a unit may touch --------------------------------------------------------------------------


def own_obligation(
    session: Session, unit: str | None, obligation_id: int | str, *, lock: bool = False
) -> Obligation:
    """The obligation ``obligation_id`` if ``unit`` may act on it (its own, in a running program, not
    cancelled); ``unit`` None (the office) may act on any. ``NotFound`` otherwise, saying no more.

    ``lock``: the row is locked first (``store.db.lock_row``) and read after the lock, so that an
    action that checks before it writes sees every request that went before it (a double tap, two
    forms at once): the second waits for the first's commit, then finds what it stored."""
    number = row_id(obligation_id)
    if number is None:
        raise NotFound(f"no obligation {str(obligation_id)[:40]!r}")
    if lock:
        lock_row(session, Obligation.__table__, number)
    obligation = session.get(Obligation, number, populate_existing=lock)
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


class TooLong(BadRequest):
    """A typed text past ``MAX_NOTE`` characters: refused whole, never cut (``length`` says how long)."""

    def __init__(self, what: str, length: int) -> None:
        super().__init__(f"{what}: too long ({length} characters, at most {MAX_NOTE})")
        self.length = length


def clean_text(value: str | None, what: str, *, required: bool) -> str | None:
    text = (value or "").replace("\r\n", "\n").strip()
    if required and not text:
        raise BadRequest(f"{what}: required")
    if len(text) > MAX_NOTE:
        raise TooLong(what, len(text))
    return text or None


class TooLate(BadRequest):
    """A new due date past the latest one its program allows (``latest`` says which)."""

    def __init__(self, message: str, latest: date) -> None:
        super().__init__(message)
        self.latest = latest


def latest_due(session: Session, obligation: Obligation, desk: Desk) -> date:
    """The latest due date an extension may give: 12-31 of the program's year plus
    ``desk.extension_years`` (a plan's year is about that year; 9999-12-31 is a typing error)."""
    program = session.get(Program, obligation.program_id)
    return date(program.year + desk.extension_years, 12, 31)


def check_requested_date(session: Session, obligation: Obligation, until: date, desk: Desk) -> None:
    """``TooLate`` when ``until`` is past ``latest_due``."""
    latest = latest_due(session, obligation, desk)
    if until > latest:
        raise TooLate(f"the new date {until} is after the latest date allowed, {latest}", latest)


def local_today(session: Session, obligation: Obligation, at: datetime) -> date:
    program = session.get(Program, obligation.program_id)
    return local_day(at, ZoneInfo(program.timezone if program else DEFAULT_TIMEZONE))


def by_nonce(session: Session, nonce: str | None, obligation: Obligation, kind: str) -> Submission | None:
    if not nonce:
        return None
    found = session.exec(select(Submission).where(Submission.nonce == nonce)).first()
    if found is not None and (found.obligation_id != obligation.id or found.kind != kind):
        raise NotFound(f"no obligation #{obligation.id}")  # a nonce of another form: say nothing
    return found


def last_of(session: Session, obligation: Obligation, kind: str) -> Submission | None:
    return session.exec(
        select(Submission)
        .where(Submission.obligation_id == obligation.id, Submission.kind == kind)
        .order_by(Submission.id.desc())
    ).first()


def store_submission(
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


def audit_submission(
    session, obligation: Obligation, kind: str, actor: Actor, now, *, before=None, after=None, detail=None
):
    web = "; ".join(
        f"{name}={value}" for name, value in (("client", actor.client), ("ua", actor.user_agent)) if value
    )
    detail = "; ".join(part for part in (detail, web) if part) or None
    obligation_event(session, obligation, kind, now, actor.name, before, after, detail)


def files_of(files: Sequence[StoredFile]) -> list[dict]:
    return [{"sha256": f.sha256, "size": f.size, "type": f.media_type, "name": f.name} for f in files]


def same_files(session: Session, submission: Submission, files: Sequence[StoredFile]) -> bool:
    stored = session.exec(select(Evidence.sha256).where(Evidence.submission_id == submission.id)).all()
    return sorted(stored) == sorted(f.sha256 for f in files)
