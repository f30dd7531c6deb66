"""A full simulated year of the pilot, checked against the plan's own dates."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest

from workflows.calendar import make_calendar

REPO = Path(__file__).resolve().parent.parent
DUBAN = str(Path(sys.executable).with_name("duban"))
CAL = make_calendar("cn-workdays")


@pytest.fixture(scope="module")
def emails() -> list[dict]:
    """``duban simulate rule-of-law-pilot … --json`` run once for the module (the real CLI)."""
    result = subprocess.run(
        [
            DUBAN,
            "--config",
            str(REPO / "config.toml"),
            "simulate",
            "rule-of-law-pilot",
            "--units",
            str(REPO / "examples/units.example.toml"),
            "--year",
            "2026",
            "--from",  # the whole year, whatever program a `make run` here may have started late
            "2026-01-01",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "2027" in result.stderr  # the calendar warns about the year it has no data for
    return [json.loads(line) for line in result.stdout.splitlines()]


def sent(email: dict) -> datetime:
    return datetime.fromisoformat(email["send_at"])


def items_of(emails, **where):
    for email in emails:
        for item in email["items"]:
            if all(item.get(k) == v for k, v in where.items()):
                yield email, item


def test_every_email_goes_out_at_nine_on_a_working_day_and_one_per_unit_per_day(emails):
    assert emails
    assert all(sent(e).strftime("%H:%M%z") == "09:00+0800" for e in emails)
    assert all(CAL.is_workday(sent(e).date()) for e in emails)
    per_day = Counter((e["to_unit"], sent(e).date()) for e in emails)
    assert max(per_day.values()) == 1
    assert [sent(e) for e in emails] == sorted(sent(e) for e in emails)


def test_the_june_10_deadline_reaches_every_township_and_agency(emails):
    due = list(items_of(emails, task="D03", kind="due_today"))
    assert {i["due"] for _, i in due} == {"2026-06-10"}
    assert {sent(e).date() for e, _ in due} == {date(2026, 6, 10)}
    units = {i["unit"] for _, i in due}
    assert len(units) == 33  # 23 law-enforcement agencies + 10 townships in the example units
    opened = list(items_of(emails, task="D03", kind="task_opened"))
    assert {i["unit"] for _, i in opened} == units


def test_phase_boundaries_follow_the_working_day_calendar(emails):
    started = {i["phase"]: sent(e).date() for e, i in items_of(emails, kind="phase_started")}
    assert started == {
        "mobilize": date(2026, 5, 11),  # 05-10 is a Sunday
        "implement": date(2026, 6, 1),
        "evaluate": date(2026, 12, 1),
    }
    closed = {i["phase"]: sent(e).date() for e, i in items_of(emails, kind="phase_closed")}
    assert closed["mobilize"] == date(2026, 6, 1)  # 05-31 is a Sunday
    assert closed["implement"] == date(2026, 12, 1)


def test_december_reports_are_due_on_the_last_working_day(emails):
    for task in ("D08", "D09"):
        dues = {i["due"] for _, i in items_of(emails, task=task, kind="due_today")}
        assert dues == {"2026-12-31"}, task


def test_escalations_go_to_lead_units_and_the_office_on_working_days(emails):
    escalations = list(items_of(emails, kind="escalation"))
    assert escalations
    recipients = {e["to_unit"] for e, _ in escalations}
    assert "county-legal-office" in recipients  # lead unit and leading group office of the pilot
    assert all(e["to_unit"] != i["unit"] for e, i in escalations)  # never to the late unit itself
    for email, item in escalations:
        assert sent(email).date() > date.fromisoformat(item["due"])
