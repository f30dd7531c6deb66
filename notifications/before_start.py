"""The office's summary of what fell due before duban notified anyone (启用前已到期事项): which
digest is one, its items in order, and the view its email template shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from notifications import zh
from notifications.model import Digest, DigestItem, NoticeKind
from notifications.rows import LISTED_IN_FULL, LateUnit, _plan_title


@dataclass(frozen=True)
class TaskCount:
    task: str
    title: str
    count: int


@dataclass(frozen=True)
class BeforeStartView:
    recipient_name: str
    send_date: str
    title: str  # the plan's title
    notify_from: str  # 2026年12月2日
    count: int
    intro: str
    by_task: tuple[TaskCount, ...]  # most first
    rows: tuple[LateUnit, ...]  # the first LISTED_IN_FULL, longest overdue first
    row_titles: tuple[str, ...]  # the task title of each row
    rest: int  # how many more are in the attachment only
    attachment: str  # the attached list's file name


BEFORE_START_SHEET = "启用前已到期事项.xlsx"


def is_before_start(digest: Digest) -> bool:
    """A digest that is the office's before-start summary (it is always an email of its own)."""
    return bool(digest.items) and all(item.kind == NoticeKind.BEFORE_START for item in digest.items)


def before_start_items(digest: Digest) -> list[DigestItem]:
    """The summary's obligations, most overdue first (then task, and units in the units file's order)."""
    return sorted(
        digest.items, key=lambda i: (i.due or date.max, i.task or "", i.unit_rank, i.unit_name, i.key)
    )


def build_before_start(digest: Digest) -> BeforeStartView:
    items = before_start_items(digest)
    today = digest.send_date
    start = next((i.notify_from for i in items if i.notify_from), today)
    counts: dict[tuple[str, str], int] = {}
    for item in items:
        key = (item.task or "", item.task_title or item.task or "")
        counts[key] = counts.get(key, 0) + 1
    by_task = tuple(
        TaskCount(task, title, n)
        for (task, title), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    shown = items[:LISTED_IN_FULL]
    rows = tuple(
        LateUnit(
            unit_name=i.unit_name,
            since=f"截止{zh.day(i.due)}" if i.due else "",
            status=zh.days_left(i.due, today) if i.due else "",
            ref=i.ref,
            contact=None,
        )
        for i in shown
    )
    title = _plan_title(items)
    intro = (
        f"督办系统自{zh.day(start)}起对“{title}”向各责任单位发送通知。在此之前已到截止日期、"
        f"尚未记录办结的事项共{len(items)}项：系统已按实际日期记为逾期，但未向责任单位发送这些事项的"
        "提醒、逾期通知或催办。请核实各事项的实际办理情况。"
    )
    return BeforeStartView(
        recipient_name=digest.recipient.name,
        send_date=zh.day_with_weekday(today),
        title=title,
        notify_from=zh.day(start),
        count=len(items),
        intro=intro,
        by_task=by_task,
        rows=rows,
        row_titles=tuple(i.task_title or i.task or "" for i in shown),
        rest=max(len(items) - len(shown), 0),
        attachment=BEFORE_START_SHEET,
    )
