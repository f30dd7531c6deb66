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
    SUBMITTED = "submitted"  # 待审核: a unit's 办结申请 waits for the office (notices paused)
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
    BEFORE_START = "before_start"  # at notify-from: the office's summary of what fell due before it


class TimerOutcome(StrEnum):
    FIRED = "fired"
    SKIPPED = "skipped"  # its notice was no longer true (recorded as a notice.skipped event)
    CANCELLED = "cancelled"  # the plan no longer wants it


class SubmissionKind(StrEnum):
    """What a unit sent through its page. 签收 and 反馈 are events for the obligation (its state does
    not change) but rows here all the same: one place holds what a unit did, with its note, files,
    time, client address and user agent, and "who has not acknowledged" is one query."""

    ACKNOWLEDGE = "acknowledge"  # 签收
    FEEDBACK = "feedback"  # 反馈: a progress note, optionally with files
    COMPLETION = "completion"  # 办结申请: the obligation → submitted until the office decides
    EXTENSION = "extension"  # 延期申请: a new due date, pending until the office decides


class Decision(StrEnum):
    """The office's word on a completion or an extension (NULL while pending)."""

    APPROVED = "approved"
    RETURNED = "returned"
    NOTED = "noted"  # 签收 and 反馈 need no review: recorded as noted at once


class OutboxState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutboxKind(StrEnum):
    DIGEST = "digest"  # a recipient's items, rendered when sent
    FAILURE_REPORT = "failure_report"  # the admin's report, rendered when queued


class Channel(StrEnum):
    """How an outbox row reaches its recipient: ``email``, or a group robot (``robot:NAME``)."""

    EMAIL = "email"
    ROBOT = "robot:"  # the prefix of ``robot:NAME``

    @staticmethod
    def robot(name: str) -> str:
        return f"{Channel.ROBOT}{name}"


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

PAUSED_STATES = frozenset({ObligationState.SUBMITTED})
"""Owed but in review: no reminder, due-today, overdue notice or escalation is sent for it (the
tick skips it like a finished one, and does not move its state); returned, it goes back to open
or overdue as its dates say, and the notices still ahead of it fire as usual. It is neither open
nor finished: a plan change that drops it cancels it like an open one."""

OWED_STATES = OPEN_STATES | PAUSED_STATES
"""Still owed, in review or not: what a unit's page lists as to do and a plan change may cancel."""

REVIEW_KINDS = frozenset({SubmissionKind.COMPLETION, SubmissionKind.EXTENSION})
"""The submissions the office decides (the others are noted at once)."""

QUIET_STATES = FINISHED_STATES | PAUSED_STATES
"""Nothing is sent for these: finished, or in review (待审核)."""
