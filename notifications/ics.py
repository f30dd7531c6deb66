"""The ``.ics`` part of a digest: a VTODO per deadline, an all-day VEVENT per phase.

UIDs depend only on what the entry is about (plan, task, unit, occurrence; or plan, phase, year),
never on the email that carries it, so a calendar client updates the entry it already has
instead of adding a second one. ``duban calendar export`` should use the same functions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event, Todo

from notifications import zh
from notifications.model import DEADLINE_KINDS, PHASE_KINDS, DigestItem

PRODID = "-//duban//督办//ZH-CN"


def todo_uid(item: DigestItem, domain: str) -> str:
    """The UID of one obligation: plan + task + unit + occurrence.

    A one-off task has no occurrence; the year of its due date stands in for it, so the same
    task of next year's program is a different entry.
    """
    occurrence = item.occurrence or (f"due-year:{item.due.year}" if item.due else "-")
    return _uid("todo", [item.workflow, item.task or "", item.unit, occurrence], domain)


def phase_uid(item: DigestItem, domain: str) -> str:
    """The UID of one phase of one program year: plan + phase + the year the phase starts."""
    when = item.phase_start or item.phase_end or item.due
    return _uid("phase", [item.workflow, item.phase or "", str(when.year) if when else "-"], domain)


def build_calendar(items: Iterable[DigestItem], *, domain: str, now: datetime) -> bytes | None:
    """An RFC 5545 calendar (METHOD:PUBLISH) for the dated items, or None if there are none."""
    stamp = now.astimezone(UTC)
    components: dict[str, Todo | Event] = {}
    for item in items:
        if item.kind in DEADLINE_KINDS and item.due:
            uid = todo_uid(item, domain)
            components.setdefault(uid, _todo(item, uid, stamp))
        elif item.kind in PHASE_KINDS and item.phase_start and item.phase_end:
            uid = phase_uid(item, domain)
            components.setdefault(uid, _event(item, uid, stamp))
    if not components:
        return None
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    for uid in sorted(components):
        calendar.add_component(components[uid])
    return calendar.to_ical()


def _uid(kind: str, parts: list[str], domain: str) -> str:
    digest = hashlib.sha256(json.dumps([kind, *parts], ensure_ascii=False).encode("utf-8")).hexdigest()
    return f"{kind}-{digest[:32]}@{domain}"


def _todo(item: DigestItem, uid: str, stamp: datetime) -> Todo:
    title = item.task_title or item.task or "任务"
    todo = Todo.new(
        uid=uid,
        stamp=stamp,
        summary=f"{title}（{item.unit_name}）",
        description=_description(item),
        end=item.due,
        status="NEEDS-ACTION",
    )
    if item.opens and item.due and item.opens <= item.due:
        todo.add("dtstart", item.opens)
    return todo


def _event(item: DigestItem, uid: str, stamp: datetime) -> Event:
    assert item.phase_start and item.phase_end
    return Event.new(
        uid=uid,
        stamp=stamp,
        summary=f"{item.workflow_title}：{item.phase_name or item.phase}",
        description=_description(item),
        start=item.phase_start,
        end=item.phase_end + timedelta(days=1),  # DTEND of an all-day event is exclusive
    )


def _description(item: DigestItem) -> str:
    lines = [item.workflow_title]
    if item.section:
        lines.append(item.section)
    if item.detail:
        lines.append(item.detail)
    if item.kind in PHASE_KINDS and item.phase_start and item.phase_end:
        lines.append(f"起止日期：{zh.day(item.phase_start)} 至 {zh.day(item.phase_end)}")
    if item.kind in DEADLINE_KINDS:
        lines.append(f"责任单位：{item.unit_name}")
    if item.lead_names:
        lines.append(f"牵头单位：{zh.names(item.lead_names)}")
    if item.deliverable:
        lines.append(f"应提交：{item.deliverable}")
    if item.contact:
        lines.append(f"联系：{item.contact}")
    if item.ref:
        lines.append(f"事项编号：{item.ref}")
    return "\n".join(lines)
