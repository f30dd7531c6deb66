"""The plain data that goes into a digest email: no tables, no clock, no I/O."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class NoticeKind(StrEnum):
    """What a notification item tells its recipient (its zh-CN words: ``notifications.labels``).

    Named here because the notifications layer imports nothing from ``orchestrator``; the store's
    states module re-exports it.
    """

    PHASE_STARTED = "phase_started"
    PHASE_ENDING = "phase_ending"
    TASK_OPENED = "task_opened"
    REMINDER = "reminder"
    DUE_TODAY = "due_today"
    OVERDUE = "overdue"
    ESCALATION = "escalation"
    PHASE_CLOSED = "phase_closed"
    SCORECARD = "scorecard"
    SUBMISSION_APPROVED = "submission_approved"  # the office approved a unit's 办结申请 or 延期申请
    SUBMISSION_RETURNED = "submission_returned"  # … or returned it, with a reason
    REVIEW_PENDING = "review_pending"  # the office: submissions waiting for review (待审核 N 项)
    BEFORE_START = "before_start"  # the office's one summary of what fell due before duban notified anyone


KINDS = tuple(NoticeKind)

DEADLINE_KINDS = frozenset(
    {
        NoticeKind.TASK_OPENED,
        NoticeKind.REMINDER,
        NoticeKind.DUE_TODAY,
        NoticeKind.OVERDUE,
        NoticeKind.ESCALATION,
    }
)
PHASE_KINDS = frozenset({NoticeKind.PHASE_STARTED, NoticeKind.PHASE_ENDING, NoticeKind.PHASE_CLOSED})


@dataclass(frozen=True)
class Recipient:
    """A unit that receives a digest: one email to all of its addresses."""

    unit_id: str
    name: str
    emails: tuple[str, ...]


@dataclass(frozen=True)
class DigestItem:
    """One fact for one unit ("T05 is due 2026-06-10"), with what a reader needs to act on it."""

    key: str  # unique item key, e.g. "rule-of-law-pilot:2026:T05:county-police:-:reminder:0"
    kind: str  # one of KINDS
    workflow: str
    workflow_title: str
    phase: str | None
    phase_name: str | None
    task: str | None
    task_title: str | None
    section: str | None
    detail: str | None
    unit: str  # the unit the fact is about (for escalations: the LATE unit)
    unit_name: str
    occurrence: str | None  # e.g. "2026-12-31" or a register row id
    due: date | None
    opens: date | None
    lead_names: tuple[str, ...] = ()  # names of the task's lead units
    deliverable: str | None = None  # what to hand in
    contact: str | None = None  # whom to ask (a unit name + address text)
    ref: str | None = None  # the obligation's short reference, e.g. "#123", for replies
    phase_start: date | None = None
    phase_end: date | None = None
    attachment: tuple[str, str, bytes] | None = None  # (filename, mime type, data)
    summary: str | None = None  # free text for scorecard items
    notify_from: date | None = None  # before_start: the first day duban notified units
    occurrence_label: str | None = None  # how the occurrence reads: "2026年8月", a register row's title
    occurrence_is_row: bool = False  # the occurrence is a register row (a document), not a period
    unit_contact: str | None = None  # whom to call at ``unit`` (its contact person and phone)
    unit_rank: int = 0  # ``unit``'s place in the units file: units are listed in the order it gives

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"digest item {self.key!r}: unknown kind {self.kind!r}")


@dataclass(frozen=True)
class Signature:
    """The supervising office, as it signs every digest (``[mail.signature]`` in config)."""

    name: str
    phone: str | None = None
    address: str | None = None

    def lines(self) -> tuple[str, ...]:
        extra = [
            f"联系电话：{self.phone}" if self.phone else "",
            f"地址：{self.address}" if self.address else "",
        ]
        return (self.name, *(line for line in extra if line))


@dataclass(frozen=True)
class Digest:
    """Everything one recipient is told in one send window: one email."""

    recipient: Recipient
    send_date: date  # the local day of the send window
    items: tuple[DigestItem, ...]
    link: str | None = None  # the recipient's personal link to its page (签收、反馈、办结、延期)


def digest_message_id(item_keys: Iterable[str], domain: str) -> str:
    """A Message-ID that depends only on the set of item keys: a re-send carries the same one."""
    keys = sorted(set(item_keys))
    if not keys:
        raise ValueError("a digest without items has no Message-ID")
    digest = hashlib.sha256(json.dumps(keys, ensure_ascii=False).encode("utf-8")).hexdigest()
    return f"<{digest[:40]}@{domain}>"
