"""Every state and kind a row can hold, named once; the sets of them defined once.

A ``StrEnum`` member *is* its string (``ObligationState.OPEN == "open"``), so rows, JSON output and
SQL keep the plain values while the code names them. The zh-CN labels that the CLI, the emails and
the reports show live in one table, ``notifications.labels``, keyed by these values (the
notifications layer knows no tables, so the words live there and the states here).
"""

from __future__ import annotations

from enum import StrEnum


class ProgramState(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"


class PhaseState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    CLOSED = "closed"
    CANCELLED = "cancelled"  # the phase left the definition


class ObligationState(StrEnum):
    PENDING = "pending"  # not open yet
    OPEN = "open"
    OVERDUE = "overdue"
    DONE = "done"
    WAIVED = "waived"
    CANCELLED = "cancelled"  # the plan or the units file no longer asks for it


class ItemState(StrEnum):
    """A notification item: one fact for one recipient."""

    PENDING = "pending"  # waits for its send window
    QUEUED = "queued"  # grouped into an outbox message
    SKIPPED = "skipped"  # withdrawn or stale: recorded, never sent


class TimerKind(StrEnum):
    """What a timer does when it fires (the notice kinds it makes are ``NoticeKind``)."""

    PHASE_START = "phase_start"  # the phase becomes active: a phase_started notice
    PHASE_ENDING = "phase_ending"
    PHASE_END = "phase_end"  # the phase closes: a phase_closed notice
    TASK_OPENED = "task_opened"  # the obligations open
    REMINDER = "reminder"
    DUE_TODAY = "due_today"
    OVERDUE = "overdue"  # the obligations not finished become overdue
    ESCALATION = "escalation"
    SCORECARD = "scorecard"


class TimerOutcome(StrEnum):
    FIRED = "fired"
    SKIPPED = "skipped"  # its notice was no longer true (recorded as a notice.skipped event)
    CANCELLED = "cancelled"  # the plan no longer wants it


class OutboxState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutboxKind(StrEnum):
    DIGEST = "digest"  # a recipient's items, rendered when sent
    FAILURE_REPORT = "failure_report"  # the admin's report, rendered when queued


OPEN_STATES = frozenset({ObligationState.PENDING, ObligationState.OPEN, ObligationState.OVERDUE})
"""An obligation still owed: the engine sends notices for it."""

FINISHED_STATES = frozenset({ObligationState.DONE, ObligationState.WAIVED, ObligationState.CANCELLED})
"""An obligation nobody is told about any more (only ``reopen`` brings it back)."""

ACTIVE_STATES = frozenset({ObligationState.OPEN, ObligationState.OVERDUE})
"""Open for work: what an operator can mark done or waive, and what a unit is reminded of."""

REMINDER_KINDS = frozenset({TimerKind.TASK_OPENED, TimerKind.REMINDER, TimerKind.DUE_TODAY})
"""Timers of which only the latest due at one tick is sent (catch-up): a later one supersedes."""

PHASE_TIMER_KINDS = frozenset({TimerKind.PHASE_START, TimerKind.PHASE_ENDING, TimerKind.PHASE_END})
"""The timers behind phase notices."""
