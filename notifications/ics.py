"""The ``.ics`` part of a digest and ``duban calendar export``: each deadline as an all-day VEVENT
(what Outlook's and Google's calendars show), a VTODO (what task lists show), or both; each phase
as an all-day VEVENT spanning its dates. Entries are in date order.

UIDs depend only on what the entry is about (plan, task, unit, occurrence; or plan, phase, year),
never on the email that carries it, so a calendar client updates the entry it already has
instead of adding a second one (a moved due date replaces the old entry).

A deadline of a recurring duty names its period, one anchored on a register its document, in its
SUMMARY and DESCRIPTION as the emails do (期次：2026年8月, 涉及文件：县人社发〔2023〕2号 …): two
reviews of two documents are two entries that read apart in a calendar's list.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from notifications import zh
from notifications.model import DEADLINE_KINDS, PHASE_KINDS, DigestItem
from notifications.rows import occurrence_fact

PRODID = "-//duban//督办//ZH-CN"
CALENDAR_KINDS = ("events", "todos", "both")


def todo_uid(item: DigestItem, domain: str) -> str:
    """The UID of one obligation: plan + task + unit + occurrence.

    A one-off task has no occurrence; the year of its due date stands in for it, so the same
    task of next year's program is a different entry.
    """
    occurrence = item.occurrence or (f"due-year:{item.due.year}" if item.due else "-")
    return _uid("todo", [item.workflow, item.task or "", item.unit, occurrence], domain)


def deadline_uid(item: DigestItem, domain: str) -> str:
    """The UID of one obligation's all-day event (the same key as its to-do, another kind)."""
    occurrence = item.occurrence or (f"due-year:{item.due.year}" if item.due else "-")
    return _uid("deadline", [item.workflow, item.task or "", item.unit, occurrence], domain)


def phase_uid(item: DigestItem, domain: str) -> str:
    """The UID of one phase of one program year: plan + phase + the year the phase starts."""
    when = item.phase_start or item.phase_end or item.due
    return _uid("phase", [item.workflow, item.phase or "", str(when.year) if when else "-"], domain)


def build_calendar(
    items: Iterable[DigestItem],
    *,
    domain: str,
    now: datetime,
    kind: str = "events",
    allow_empty: bool = False,
) -> bytes | None:
    """An RFC 5545 calendar (METHOD:PUBLISH) for the dated items, or None if there are none
    (an empty calendar with ``allow_empty``: a subscribed feed with nothing left to do).

    ``kind``: each deadline as an all-day ``events`` (VEVENT), ``todos`` (VTODO) or ``both``.
    Written directly (the bytes icalendar 7 writes for the same components: its property order,
    TEXT escaping and 75-octet folding) because icalendar's serializer was a third of the cost of
    rendering an email. ``tests/test_render.py`` parses the result back with icalendar.
    """
    if kind not in CALENDAR_KINDS:
        raise ValueError(f"calendar kind {kind!r}: expected one of {', '.join(CALENDAR_KINDS)}")
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    components: dict[str, tuple[date, list[str]]] = {}
    for item in items:
        if item.kind in DEADLINE_KINDS and item.due:
            if kind in ("events", "both"):
                uid = deadline_uid(item, domain)
                components.setdefault(uid, (item.due, _deadline_event(item, uid, stamp)))
            if kind in ("todos", "both"):
                uid = todo_uid(item, domain)
                components.setdefault(uid, (item.due, _todo(item, uid, stamp)))
        elif item.kind in PHASE_KINDS and item.phase_start and item.phase_end:
            uid = phase_uid(item, domain)
            components.setdefault(uid, (item.phase_start, _event(item, uid, stamp)))
    if not components and not allow_empty:
        return None
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        _line("PRODID", _text(PRODID)),
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        _line("X-WR-CALNAME", _text("督办事项")),
    ]
    for uid in sorted(components, key=lambda u: (components[u][0], u)):
        lines.extend(components[uid][1])
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _uid(kind: str, parts: list[str], domain: str) -> str:
    digest = hashlib.sha256(json.dumps([kind, *parts], ensure_ascii=False).encode("utf-8")).hexdigest()
    return f"{kind}-{digest[:32]}@{domain}"


def _todo(item: DigestItem, uid: str, stamp: str) -> list[str]:
    """A VTODO; properties in alphabetical order (icalendar's order for a to-do)."""
    lines = ["BEGIN:VTODO", _line("DESCRIPTION", _text(_description(item))), f"DTSTAMP:{stamp}"]
    if item.opens and item.due and item.opens <= item.due:
        lines.append(f"DTSTART;VALUE=DATE:{_date(item.opens)}")
    lines += [
        f"DUE;VALUE=DATE:{_date(item.due)}",
        "STATUS:NEEDS-ACTION",
        _line("SUMMARY", _text(f"{_what(item)}（{item.unit_name}）")),
        _line("UID", _text(uid)),
        "END:VTODO",
    ]
    return lines


def _what(item: DigestItem) -> str:
    """The task's title, with the period or the document where it recurs: ``…：县人社发〔2023〕2号 …``."""
    title = item.task_title or item.task or "任务"
    if not item.occurrence:
        return title
    return f"{title}：{_occurrence(item)[1]}"


def _occurrence(item: DigestItem) -> tuple[str, str]:
    return occurrence_fact(item.occurrence or "", item.occurrence_label, is_row=item.occurrence_is_row)


def _summary(item: DigestItem) -> str:
    return f"【截止】{_what(item)}（{item.unit_name}）"


def _deadline_event(item: DigestItem, uid: str, stamp: str) -> list[str]:
    """An all-day VEVENT on the due date (DTEND exclusive), free time (TRANSP), like a to-do."""
    assert item.due is not None
    return [
        "BEGIN:VEVENT",
        _line("SUMMARY", _text(_summary(item))),
        f"DTSTART;VALUE=DATE:{_date(item.due)}",
        f"DTEND;VALUE=DATE:{_date(item.due + timedelta(days=1))}",
        f"DTSTAMP:{stamp}",
        _line("UID", _text(uid)),
        _line("DESCRIPTION", _text(_description(item))),
        "TRANSP:TRANSPARENT",
        "END:VEVENT",
    ]


def _event(item: DigestItem, uid: str, stamp: str) -> list[str]:
    """An all-day VEVENT; SUMMARY, DTSTART, DTEND, DTSTAMP, UID first (icalendar's order for an event)."""
    assert item.phase_start and item.phase_end
    return [
        "BEGIN:VEVENT",
        _line("SUMMARY", _text(f"{item.workflow_title}：{item.phase_name or item.phase}")),
        f"DTSTART;VALUE=DATE:{_date(item.phase_start)}",
        f"DTEND;VALUE=DATE:{_date(item.phase_end + timedelta(days=1))}",  # DTEND of an all-day event is exclusive
        f"DTSTAMP:{stamp}",
        _line("UID", _text(uid)),
        _line("DESCRIPTION", _text(_description(item))),
        "END:VEVENT",
    ]


def _date(day: date | None) -> str:
    assert day is not None
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _text(value: str) -> str:
    """RFC 5545 TEXT escaping (backslash, semicolon, comma; every line break becomes ``\\n``)."""
    return (
        value.replace(r"\N", "\n")
        .replace("\\", "\\\\")
        .replace(";", r"\;")
        .replace(",", r"\,")
        .replace("\r\n", r"\n")
        .replace("\n", r"\n")
        .replace("\r", r"\n")
    )


def _line(name: str, value: str) -> str:
    """``NAME:value`` folded into lines of at most 75 octets (RFC 5545 3.1), never inside a character
    or right after the backslash of an escape."""
    line = f"{name}:{value}"
    data = line.encode("utf-8")
    if len(data) < 75:
        return line
    folded: list[str] = []
    start = 0
    while len(data) - start > 74:
        cut = start + 74  # each physical line holds at most 74 octets after the fold's space
        while data[cut] & 0xC0 == 0x80:  # not inside a character
            cut -= 1
        if cut - start > 1 and data[cut - 1] in b"\\^":  # nor between "\\" and what it escapes
            cut -= 1
        folded.append(data[start:cut].decode("utf-8"))
        start = cut
    folded.append(data[start:].decode("utf-8"))
    return "\r\n ".join(folded)


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
        if item.occurrence:
            lines.append("：".join(_occurrence(item)))
    if item.lead_names:
        lines.append(f"牵头单位：{zh.names(item.lead_names)}")
    if item.deliverable:
        lines.append(f"应提交：{item.deliverable}")
    if item.contact:
        lines.append(f"联系：{item.contact}")
    if item.ref:
        lines.append(f"事项编号：{item.ref}")
    return "\n".join(lines)
