"""What the digest templates are given: LateUnit, Row, Group, Remainder and DigestView, and the
small pieces of text the digest view, its escalation rows and the before-start summary share
(``LISTED_IN_FULL``, a plan's title, an occurrence's label — also on the unit's page and in its
calendar).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from notifications.model import DigestItem

LISTED_IN_FULL = 30  # a summary (or a digest) lists at most this many items in full; the rest are counted


@dataclass(frozen=True)
class LateUnit:
    """One responsible unit that is late on an escalated obligation."""

    unit_name: str
    status: str  # 逾期N天
    ref: str | None
    contact: str | None  # that unit's contact person and phone
    since: str = ""  # the pre-start summary's due date (截止…)


@dataclass(frozen=True)
class Row:
    """One entry of a group: a task, a phase, an escalated obligation, or the scorecard."""

    tone: str  # "overdue" (red), "soon" (amber) or "normal"
    title: str
    section: str | None
    detail: str | None
    workflow_title: str | None  # set only when the digest spans several plans
    facts: tuple[tuple[str, str], ...]  # (label, value), in display order
    status: str | None  # 还有N天 / 今日到期 / 已逾期N天 / …
    ref: str | None
    late: tuple[LateUnit, ...] = ()
    summary: str | None = None


@dataclass(frozen=True)
class Group:
    kind: str
    heading: str
    rows: tuple[Row, ...]
    count: int  # items in the group (an escalation row may hold several)


@dataclass(frozen=True)
class Remainder:
    """Items of one kind and task not listed in full (past ``LISTED_IN_FULL``)."""

    heading: str
    task: str
    title: str
    count: int


@dataclass(frozen=True)
class DigestView:
    recipient_name: str
    send_date: str
    intro: str
    counts: str
    groups: tuple[Group, ...]
    reply_hint: bool  # some item carries a reference to quote in replies
    link: str | None = None  # the recipient's personal page (签收、反馈、办结申请、延期申请)
    office_url: str | None = None  # the office's review page, when the digest says 待审核
    rest: int = 0  # items not listed in full: counted in ``remainder``, all in the attachment
    remainder: tuple[Remainder, ...] = ()
    attachment: str | None = None  # the attached list's file name, when some are not listed in full
    count_sentence: str = ""  # the body's first sentence: 本期共有逾期事项2项、…；「…」开始。
    report_line: str = ""  # how to report completion: the unit's link, or how the office records it
    signature: tuple[str, ...] = ()  # the office's name, phone, address


def _plan_title(items: Iterable[DigestItem]) -> str:
    return _title_of({(i.workflow, i.workflow_title) for i in items})


def _title_of(plans: Iterable[tuple[str, str]]) -> str:
    titles = sorted(plans)
    if not titles:
        return "督办事项"
    return titles[0][1] + ("等" if len(titles) > 1 else "")


def _occurrence_fact(item: DigestItem) -> tuple[str, str]:
    """``期次：2026年8月`` or, for a register row, ``涉及文件：县人社发〔2023〕2号 …``."""
    return occurrence_fact(item.occurrence, item.occurrence_label, is_row=item.occurrence_is_row)


def occurrence_fact(occurrence: str, label: str | None, *, is_row: bool) -> tuple[str, str]:
    """(涉及文件 | 期次, what it is): the words the emails, the unit's page and its calendar share."""
    return ("涉及文件" if is_row else "期次"), label or occurrence or ""
