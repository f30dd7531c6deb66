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
from orchestrator.admin.operations import MAX_TEXT, MissingText, obligation_event
from orchestrator.engine.window import SendPolicy, local_day
from orchestrator.store.audit import operator
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


@dataclass(frozen=True)
class Desk:
    """What operations use besides the session: plans by workflow id, and the send policy."""

    bundles: Mapping[str, Bundle] = field(default_factory=dict)
    policy: SendPolicy | None = None


NO_DESK = Desk()


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


def clean_text(value: str | None, what: str, *, required: bool) -> str | None:
    try:
        text = (value or "").replace("\r\n", "\n").strip()
        if required and not text:
            raise MissingText(f"{what}: required")
        if len(text) > MAX_NOTE:
            raise MissingText(f"{what}: too long ({len(text)} characters, at most {MAX_NOTE})")
    except MissingText as exc:
        raise BadRequest(str(exc)) from None
    return text or None


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
