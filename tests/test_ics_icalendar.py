"""The hand-written VTODO writer (``notifications.ics``) against the library it replaces.

``build_calendar`` writes the bytes itself for speed; these tests build the same calendar with
icalendar 7 and require the same bytes: property order, TEXT escaping (commas, semicolons,
backslashes, line breaks) and 75-octet folding, on generated to-dos full of Chinese text.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Todo

from notifications import ics
from notifications.model import DEADLINE_KINDS, DigestItem

DOMAIN = "duban.example.gov.cn"
NOW = datetime(2026, 6, 1, 1, 2, 3, tzinfo=UTC)

# Chinese (3 octets), a CJK extension character and an emoji (4 octets), ASCII, and every
# character TEXT escaping or folding treats specially.
ALPHABET = st.sampled_from(
    [*"督办法治政府建设指标体系试点县司法局，；：、（）。", "𠀀", "😀", *"aZ 09-_#@.", *",;:\\\n\r^N\"'"]
)
TEXT = st.text(ALPHABET, max_size=120)
SHORT = st.text(ALPHABET, min_size=1, max_size=12)
DAY = st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31))


@st.composite
def todos(draw) -> DigestItem:
    due = draw(DAY)
    return DigestItem(
        key=draw(SHORT),
        kind=draw(st.sampled_from(sorted(DEADLINE_KINDS))),
        workflow=draw(st.sampled_from(["rule-of-law-pilot", "试点"])),
        workflow_title=draw(TEXT),
        phase=None,
        phase_name=None,
        task=draw(st.sampled_from(["T01", "T05", "D3", None])),
        task_title=draw(st.none() | TEXT),
        section=draw(st.none() | TEXT),
        detail=draw(st.none() | TEXT),
        unit=draw(st.sampled_from(["county-police", "town-a", "乙镇"])),
        unit_name=draw(SHORT),
        occurrence=draw(st.none() | st.just(due.isoformat())),
        due=due,
        opens=draw(st.none() | st.just(due - timedelta(days=draw(st.integers(-3, 200))))),
        lead_names=tuple(draw(st.lists(SHORT, max_size=3))),
        deliverable=draw(st.none() | TEXT),
        contact=draw(st.none() | TEXT),
        ref=draw(st.none() | st.sampled_from(["#1", "#123456"])),
    )


def with_icalendar(items: list[DigestItem]) -> bytes:
    """The calendar as icalendar 7 writes it: the components ``build_calendar`` promises."""
    calendar = Calendar()
    calendar.add("version", "2.0")
    calendar.add("prodid", ics.PRODID)
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", "督办事项")
    todos_by_uid: dict[str, DigestItem] = {}
    for item in items:
        todos_by_uid.setdefault(ics.todo_uid(item, DOMAIN), item)
    for uid, item in sorted(todos_by_uid.items(), key=lambda pair: (pair[1].due, pair[0])):  # by date
        todo = Todo()
        todo.add("uid", uid)
        todo.add("summary", f"{ics._what(item)}（{item.unit_name}）")  # (with its period, if any)
        todo.add("description", ics._description(item))
        todo.add("dtstamp", NOW)
        if item.opens and item.opens <= item.due:
            todo.add("dtstart", item.opens)
        todo.add("due", item.due)
        todo.add("status", "NEEDS-ACTION")
        calendar.add_component(todo)
    return calendar.to_ical()


def assert_same_as_icalendar(items: list[DigestItem]) -> None:
    written = ics.build_calendar(items, domain=DOMAIN, now=NOW, kind="todos")
    assert written is not None
    assert written == with_icalendar(items)
    lines = written.split(b"\r\n")
    assert lines[-1] == b"" and all(len(line) <= 75 for line in lines)
    assert Calendar.from_ical(written).to_ical() == written  # and it reads back as it was written


@settings(max_examples=300, deadline=None)
@given(st.lists(todos(), min_size=1, max_size=4))
def test_generated_todos_are_written_byte_for_byte_as_icalendar_writes_them(items):
    assert_same_as_icalendar(items)


def todo(**fields) -> DigestItem:
    base = dict(
        key="k",
        kind="reminder",
        workflow="rule-of-law-pilot",
        workflow_title="法治政府建设指标体系试点",
        phase=None,
        phase_name=None,
        task="T05",
        task_title="制定本单位实施方案",
        section=None,
        detail=None,
        unit="county-police",
        unit_name="县公安局",
        occurrence=None,
        due=date(2026, 6, 10),
        opens=date(2026, 5, 10),
    )
    return DigestItem(**(base | fields))


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"task_title": "督" * 200},  # a long Chinese line: folded between characters
        {"task_title": "a" * 70 + "督办" * 5},  # the fold falls inside a character's octets
        {"detail": "\\" * 150},  # never folded between a backslash and what it escapes
        {"detail": ",;" * 80},
        {"detail": "一行\n二行\r\n三行\r四行" * 8},
        {"detail": r"literal \N and \n" * 6},
        {"contact": "😀" * 40, "deliverable": "𠀀" * 40},
        {"lead_names": ("县司法局", "县公安局", "县市场监管局") * 6, "ref": "#123"},
        {"opens": date(2026, 6, 11)},  # opens after due: no DTSTART
        {"task_title": None, "task": None, "opens": None},
    ],
)
def test_table_of_todos_is_written_as_icalendar_writes_it(fields):
    assert_same_as_icalendar([todo(**fields)])


def test_two_items_of_one_obligation_are_one_todo():
    first, second = todo(key="a", kind="reminder"), todo(key="b", kind="overdue")
    assert_same_as_icalendar([first, second])
    assert (
        ics.build_calendar([first, second], domain=DOMAIN, now=NOW, kind="todos").count(b"BEGIN:VTODO") == 1
    )
