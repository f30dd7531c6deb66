"""The tables. Every future event is a ``Timer`` row; every fact for a unit is a ``NotificationItem``;
every email is an ``OutboxMessage``; every change is an ``Event`` (the audit log).

Timestamps are UTC-aware (sqlmodel maps ``datetime`` to a UTC-aware type); plan dates are ``date``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from orchestrator.store.states import (
    ItemState,
    ObligationState,
    OutboxKind,
    OutboxState,
    PhaseState,
    ProgramState,
)

# the head: 0001 → 0002 → 0005 → 0007 → 0004 → 0003 → 0006 → 0008 → 0009 (chained in the order merged)
SCHEMA_REVISION = "0009"


class Program(SQLModel, table=True):
    """A plan started for a year."""

    __table_args__ = (UniqueConstraint("workflow", "year", name="uq_program_workflow_year"),)

    id: int | None = Field(default=None, primary_key=True)
    workflow: str = Field(index=True)
    year: int
    title: str
    timezone: str
    definition_path: str
    definition_digest: str
    units_digest: str
    state: str = ProgramState.RUNNING  # a ProgramState
    started_at: datetime
    reconciled_at: datetime
    materialized_until: date
    # no unit is told of a date before this instant's local day; the office gets one summary of what
    # was due before it (None: a program started before revision 0004, which has no such limit)
    notify_from: datetime | None = None


class PhaseRun(SQLModel, table=True):
    __tablename__ = "phase_run"
    __table_args__ = (UniqueConstraint("program_id", "phase", name="uq_phase_run"),)

    id: int | None = Field(default=None, primary_key=True)
    program_id: int = Field(foreign_key="program.id", index=True)
    phase: str
    name: str
    start: date
    end: date
    state: str = PhaseState.PENDING  # a PhaseState


class Obligation(SQLModel, table=True):
    """One task or duty occurrence for one unit."""

    __table_args__ = (
        Index("ix_obligation_program_state", "program_id", "state"),
        Index("ix_obligation_unit", "unit"),
        Index("ix_obligation_group", "program_id", "task", "due"),  # the units late on one task
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    program_id: int = Field(foreign_key="program.id")
    task: str
    title: str
    phase: str | None = None
    unit: str
    lead: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    occurrence: str | None = None
    opens: date
    due: date
    state: str = ObligationState.PENDING  # an ObligationState
    done_at: datetime | None = None
    done_late: bool | None = None
    evidence: str | None = None
    reason: str | None = None
    updated_at: datetime
    extended_to: date | None = None  # an approved 延期申请's due date (kept when the plan is reconciled)


class Timer(SQLModel, table=True):
    """A durable future event: fires once when ``fire_at <= now`` (then ``fired_at`` is set).

    Owners: a task occurrence (``task``, ``occurrence``, ``opens``, ``due``): one timer per notice
    for all the units that owe it, applied to each of their obligations when it fires (an escalation
    step: one item per recipient listing the units late on it) — or, with ``obligation_id``, to that
    obligation only (a late joiner's opening notice; migration 0003 made the first release's timers
    of one obligation into these); a phase or the program (``phase``, no ``task``).
    """

    __table_args__ = (Index("ix_timer_pending", "fired_at", "fire_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    fire_at: datetime
    kind: str  # a TimerKind
    program_id: int = Field(foreign_key="program.id", index=True)
    obligation_id: int | None = Field(default=None, foreign_key="obligation.id", index=True)
    phase: str | None = None
    step: int = 0
    on: date
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    fired_at: datetime | None = None
    outcome: str | None = None  # a TimerOutcome
    task: str | None = None  # a task occurrence's timer: its task, occurrence, due and opening dates
    occurrence: str | None = None
    due: date | None = None
    opens: date | None = None


class NotificationItem(SQLModel, table=True):
    """One fact for one recipient unit; grouped into one digest per recipient and send window.

    An escalation item is one fact about one task occurrence: the units late on it (``late``), for
    one recipient — not one row per late unit (at province scale that was 10 rows per obligation).
    """

    __tablename__ = "notification_item"
    __table_args__ = (  # only the items waiting for their send window are indexed by time
        Index(
            "ix_item_pending",
            "send_at",
            sqlite_where=text("state = 'pending'"),  # ItemState.PENDING, as migration 0002 wrote it
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    kind: str  # a NoticeKind
    recipient: str
    program_id: int = Field(foreign_key="program.id")
    obligation_id: int | None = Field(default=None, foreign_key="obligation.id", index=True)
    phase: str | None = None
    task: str | None = None
    unit: str | None = None
    occurrence: str | None = None
    due: date | None = None
    on: date
    send_at: datetime
    state: str = ItemState.PENDING  # an ItemState
    message_id: int | None = Field(default=None, foreign_key="outbox_message.id", index=True)
    created_at: datetime
    # an escalation: the late obligations it reports, [[obligation id, unit id], …] by unit id
    late: list[list[Any]] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )


class OutboxMessage(SQLModel, table=True):
    """One delivery of one message over one channel; kept forever (sent, failed or pending).

    ``kind`` is ``digest`` (a unit's items, rendered when sent) or ``failure_report`` (the admin's
    daily list of undeliverable messages, rendered when queued: ``body`` holds its bytes).
    ``channel`` is ``email`` or ``robot:NAME`` (a group robot): a digest's robot messages are rows
    of their own (own state, attempts, errors) whose ``parent_id`` is the email carrying the items.
    """

    __tablename__ = "outbox_message"
    __table_args__ = (
        Index("ix_outbox_state", "state", "next_attempt_at"),
        Index("ix_outbox_channel_sent", "channel", "sent_at"),  # a robot's sends of the last minute
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(unique=True)
    recipient: str
    to: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    subject: str
    send_date: date
    state: str = OutboxState.PENDING  # an OutboxState
    attempts: int = 0
    next_attempt_at: datetime
    last_error: str | None = None
    refused: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # the addresses still owed after a 4xx for some recipients at RCPT (None: all of ``to``)
    owed: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime
    sent_at: datetime | None = None
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    reported_at: datetime | None = None
    kind: str = OutboxKind.DIGEST  # an OutboxKind
    body: bytes | None = None  # the whole message, for kinds rendered when queued
    channel: str = Field(default="email", sa_column_kwargs={"server_default": "email"})
    parent_id: int | None = Field(default=None, foreign_key="outbox_message.id", index=True)


class Event(SQLModel, table=True):
    """The audit log: append-only."""

    __table_args__ = (Index("ix_event_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime
    actor: str
    kind: str
    program_id: int | None = Field(default=None, index=True)
    obligation_id: int | None = Field(default=None, index=True)
    unit: str | None = Field(default=None, index=True)
    subject: str | None = None
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    detail: str | None = None


class RegisterRowRecord(SQLModel, table=True):
    """A register row as last loaded (so ``show`` can name the document behind an obligation)."""

    __tablename__ = "register_row"
    __table_args__ = (UniqueConstraint("register_name", "row_id", name="uq_register_row"),)

    id: int | None = Field(default=None, primary_key=True)
    register_name: str
    row_id: str
    title: str
    unit: str
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    loaded_at: datetime


class IndicatorValue(SQLModel, table=True):
    """A unit's value of one indicator for one period (year)."""

    __tablename__ = "indicator_value"
    __table_args__ = (
        UniqueConstraint("program_id", "indicator", "unit", "period", name="uq_indicator_value"),
    )

    id: int | None = Field(default=None, primary_key=True)
    program_id: int = Field(foreign_key="program.id")
    indicator: str
    unit: str
    period: int
    value: float | None  # None when not applicable
    count: int | None = None
    of: int | None = None
    note: str | None = None  # a remark; for a not-applicable value, the reason
    updated_at: datetime
    updated_by: str
    not_applicable: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})


class Heartbeat(SQLModel, table=True):
    """One row per daemon process; ``last_tick_at`` shows it is alive."""

    id: int | None = Field(default=None, primary_key=True)
    node: str = Field(unique=True)
    host: str
    pid: int
    role: str  # leader | standby | stopped
    started_at: datetime
    last_tick_at: datetime | None = None
    last_seen_at: datetime
    status: str | None = None


class SchemaInfo(SQLModel, table=True):
    """Marks a database as duban's (checked before anything touches it)."""

    __tablename__ = "duban_schema"

    id: int | None = Field(default=None, primary_key=True)
    application: str = "duban"
    created_at: datetime


class Submission(SQLModel, table=True):
    """What a unit sent through its page: 签收, 反馈, 办结申请 or 延期申请 (``states.SubmissionKind``).

    A completion or an extension waits for the office (``decision`` NULL) until approved or
    returned; an acknowledgement or a feedback is ``noted`` at once. ``nonce`` (the form's one-time
    value) makes a double submit store one row.
    """

    __table_args__ = (
        Index("ix_submission_pending", "decision", "submitted_at"),
        Index("ix_submission_obligation", "obligation_id", "kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    obligation_id: int = Field(foreign_key="obligation.id")
    unit: str = Field(index=True)
    note: str | None = None
    requested: date | None = None  # an extension's new due date
    previous_due: date | None = None  # the due date when it was submitted
    submitted_at: datetime
    decided_at: datetime | None = None
    decision: str | None = None  # approved | returned | noted
    reason: str | None = None  # the office's word (a return's reason, an approval's note)
    decided_by: str | None = None
    client: str | None = None  # the client address of a unit's request
    user_agent: str | None = None
    nonce: str | None = Field(default=None, unique=True)
    reported_at: datetime | None = None  # when the unit's digest told it the decision


class Evidence(SQLModel, table=True):
    """One file sent with a submission, stored under ``evidence_dir`` by its SHA-256 (never by name)."""

    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", index=True)
    sha256: str = Field(index=True)
    size: int
    media_type: str
    original_name: str  # sanitised for display; never used as a path


class UnitKey(SQLModel, table=True):
    """A unit's link key version: a link names it; ``revoke`` bumps it (no row: version 1)."""

    __tablename__ = "unit_key"

    id: int | None = Field(default=None, primary_key=True)
    unit: str = Field(unique=True)
    version: int = 1
    revoked_at: datetime | None = None
    revoked_by: str | None = None


class OfficeLogin(SQLModel, table=True):
    """A one-time office login link's nonce: consumed when used (``used_at``)."""

    __tablename__ = "office_login"

    id: int | None = Field(default=None, primary_key=True)
    nonce: str = Field(unique=True)
    email: str
    created_at: datetime
    used_at: datetime | None = None


class OfficeSessionRecord(SQLModel, table=True):
    """An office session, known on the server: the cookie carries a random id, this row its SHA-256.
    Good until ``expires_at`` unless ended (``ended_at``) by logout or ``duban web sessions
    --revoke EMAIL``."""

    __tablename__ = "office_session"

    id: int | None = Field(default=None, primary_key=True)
    sid_hash: str = Field(unique=True)
    email: str = Field(index=True)
    created_at: datetime
    expires_at: datetime
    client: str | None = None
    user_agent: str | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
