"""The escalation rows of a digest: one row per escalated task occurrence, with each late unit."""

from __future__ import annotations

from datetime import date

from notifications import zh
from notifications.model import DigestItem
from notifications.rows import LateUnit, Row, _occurrence_fact


def _late_count(listed: int, total: int) -> str:
    if total > listed:
        return f"{total}个单位逾期，此处列出{listed}个，其余见附件"
    return f"{total}个单位逾期"


def _escalated(item: DigestItem) -> tuple:
    """The task occurrence an escalation item is about (plan, task, occurrence, due date)."""
    return (item.workflow, item.task, item.occurrence, item.due)


def _escalation_rows(
    items: list[DigestItem], today: date, several_plans: bool, totals: dict[tuple, int] | None = None
) -> tuple[Row, ...]:
    """One row per escalated obligation group (same plan, task, occurrence and due date); ``totals``:
    how many units are late on each in the whole digest (some may not be listed in full)."""
    by_task: dict[tuple, list[DigestItem]] = {}
    for item in items:
        by_task.setdefault(_escalated(item), []).append(item)
    rows = []
    for task_occurrence, group in by_task.items():
        first = group[0]
        once: dict[tuple, DigestItem] = {}  # several steps of one escalation: each late unit once
        for item in group:
            once.setdefault((item.unit, item.ref), item)
        group = list(once.values())
        late = tuple(
            LateUnit(
                unit_name=i.unit_name,
                status=zh.days_late(i.due, today) if i.due else "已逾期",
                ref=i.ref,
                contact=i.unit_contact,
            )
            for i in sorted(group, key=lambda i: (i.unit_rank, i.unit_name, i.key))  # the units file's order
        )
        facts: list[tuple[str, str]] = []
        if first.occurrence:
            facts.append(_occurrence_fact(first))
        if first.due:
            facts.append(("截止日期", zh.day_with_weekday(first.due)))
        if first.lead_names:
            facts.append(("牵头单位", zh.names(first.lead_names)))
        if first.deliverable:
            facts.append(("应提交", first.deliverable))
        rows.append(
            Row(
                tone="overdue",
                title=first.task_title or first.task or "（未命名任务）",
                section=first.section,
                detail=first.detail,
                workflow_title=first.workflow_title if several_plans else None,
                facts=tuple(facts),
                status=_late_count(len(late), (totals or {}).get(task_occurrence, len(late))),
                ref=None,
                late=late,
            )
        )
    return tuple(rows)
