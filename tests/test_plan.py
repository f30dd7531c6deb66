"""``plan()``: definition + units + year → every obligation with its dates, after the working-day rule.

Small hand-written definitions (table-driven), the pilot, hypothesis properties, and the real
``duban plan --json`` in a subprocess.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.calendar import CnWorkdays, make_calendar, statutory_holidays
from workflows.catalog import load_bundle
from workflows.plan import phase_dates, plan
from workflows.schema import Definition
from workflows.units import Unit, UnitDirectory

REPO = Path(__file__).resolve().parent.parent
DUBAN = str(Path(sys.executable).with_name("duban"))
PILOT = REPO / "workflows/definitions/rule_of_law_pilot.toml"
EXAMPLE_UNITS = REPO / "examples/units.example.toml"
EXAMPLE_REGISTER = REPO / "examples/normative_documents.example.csv"
JSON_KEYS = ["workflow", "task", "title", "phase", "unit", "lead", "occurrence", "opens", "due"]

CAL = CnWorkdays(on_assumed=lambda year, message: None)
UNITS = UnitDirectory(
    (
        Unit(id="office", name="办公室", emails=["o@example.cn"], roles=["lead_office"]),
        Unit(id="town-a", name="甲镇", emails=["a@example.cn"], roles=["town"]),
        Unit(id="town-b", name="乙镇", emails=["b@example.cn"], roles=["town"]),
    )
)


def D(text: str) -> date:
    return date.fromisoformat(text)


def definition(*tasks: dict, phases: tuple[dict, ...] = ()) -> Definition:
    return Definition.model_validate(
        {"workflow": {"id": "mini", "title": "测试"}, "phases": list(phases), "tasks": list(tasks)}
    )


def task(**fields) -> dict:
    return {"id": "T01", "title": "任务", "responsible": ["town-a"], "lead": ["role:lead_office"], **fields}


IMPLEMENT = {"id": "implement", "name": "实施", "start": "06-01", "end": "11-30"}
MOBILIZE = {"id": "mobilize", "name": "动员", "start": "05-10", "end": "05-30"}


@dataclass(frozen=True)
class Case:
    name: str
    defn: Definition
    year: int
    expected: list[tuple[str | None, str, str]]  # (occurrence, opens, due) for unit town-a


CASES = [
    Case(
        "a due date on a working day stays",
        definition(task(due="06-10")),
        2026,
        [(None, "2026-05-11", "2026-06-10")],
    ),
    Case(
        "a Saturday due date rolls to Monday",
        definition(task(due="05-30", window="-7d")),
        2026,
        [(None, "2026-05-25", "2026-06-01")],
    ),
    Case(
        "National Day rolls to the first working day after the holiday",
        definition(task(due="10-01", window="-3wd")),
        2026,
        # three working days before 10-01: 09-28, 09-29, 09-30 → 09-28 (a Monday)
        [(None, "2026-09-28", "2026-10-08")],
    ),
    Case(
        "a phase task opens at the phase start and is due at its end",
        definition(task(phase="implement"), phases=(IMPLEMENT,)),
        2026,
        [(None, "2026-06-01", "2026-11-30")],
    ),
    Case(
        "a phase starting on a Sunday opens on Monday; its end rolls too",
        definition(task(phase="mobilize"), phases=(MOBILIZE,)),
        2026,
        [(None, "2026-05-11", "2026-06-01")],
    ),
    Case(
        "a due date inside a phase opens at the phase start",
        definition(task(phase="mobilize", due="05-15"), phases=(MOBILIZE,)),
        2026,
        [(None, "2026-05-11", "2026-05-15")],
    ),
    Case(
        "a duty outside any phase opens 30 days before, rolled forward",
        definition(task(due="12-10")),
        2026,
        [(None, "2026-11-10", "2026-12-10")],
    ),
    Case(
        "a window in months, clamped at the month's end",
        definition(task(due="08-31", window="-6mo")),
        2026,
        [(None, "2026-02-28", "2026-08-31")],  # 02-28 is a Saturday, but a make-up working day in 2026
    ),
    Case(
        "02-29 is the last day of February in a common year",
        definition(task(due="02-29", window="-1d")),
        2025,
        [(None, "2025-02-27", "2025-02-28")],
    ),
    Case(
        "02-29 in a leap year",
        definition(task(due="02-29", window="-1d")),
        2028,
        [(None, "2028-02-28", "2028-02-29")],
    ),
    Case(
        "a yearly rrule without DTSTART occurs every year",
        definition(task(rrule="FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=15", window="-14d")),
        2025,
        [("2025-12-15", "2025-12-01", "2025-12-15")],
    ),
    Case(
        "the last weekday of December",
        definition(task(rrule="FREQ=YEARLY;BYMONTH=12;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", window="-1mo")),
        2026,
        [("2026-12-31", "2026-11-30", "2026-12-31")],  # 11-30 is a Monday, 12-31 a Thursday
    ),
    Case(
        "every other year from DTSTART: lands in 2026",
        definition(task(rrule="DTSTART:20260101\nRRULE:FREQ=YEARLY;INTERVAL=2;BYMONTH=11;BYMONTHDAY=30")),
        2026,
        [("2026-11-30", "2026-11-02", "2026-11-30")],  # opens 30 days before: 10-31, a Saturday
    ),
    Case(
        "every other year from DTSTART: nothing in 2027",
        definition(task(rrule="DTSTART:20260101\nRRULE:FREQ=YEARLY;INTERVAL=2;BYMONTH=11;BYMONTHDAY=30")),
        2027,
        [],
    ),
    Case(
        "every other year from DTSTART: lands in 2028",
        definition(task(rrule="DTSTART:20260101\nRRULE:FREQ=YEARLY;INTERVAL=2;BYMONTH=11;BYMONTHDAY=30")),
        2028,
        [("2028-11-30", "2028-10-31", "2028-11-30")],
    ),
    Case(
        "a DTSTART after the year: nothing yet",
        definition(task(rrule="DTSTART:20300101\nRRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=1")),
        2026,
        [],
    ),
    Case(
        "a quarterly rule: the holiday on 01-01 rolls to the make-up Sunday 01-04",
        definition(task(rrule="FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=1", window="-1d")),
        2026,
        [
            ("2026-01-01", "2025-12-31", "2026-01-04"),  # 01-01…01-03 off, 01-04 a make-up Sunday
            ("2026-04-01", "2026-03-31", "2026-04-01"),
            ("2026-07-01", "2026-06-30", "2026-07-01"),
            ("2026-10-01", "2026-09-30", "2026-10-08"),
        ],
    ),
    Case(
        "an rrule occurrence before its phase opens on its due date, never after it",
        definition(
            task(phase="implement", rrule="FREQ=YEARLY;BYMONTH=3,9;BYMONTHDAY=10"),
            phases=(IMPLEMENT,),
        ),
        2026,
        [("2026-03-10", "2026-03-10", "2026-03-10"), ("2026-09-10", "2026-06-01", "2026-09-10")],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_plan_dates(case: Case) -> None:
    occurrences = plan(case.defn, UNITS, case.year, CAL)
    got = [(o.occurrence, str(o.opens), str(o.due)) for o in occurrences]
    assert got == case.expected
    assert all(o.unit == "town-a" and o.lead == ("office",) and o.workflow == "mini" for o in occurrences)


def test_role_refs_expand_and_results_are_ordered_by_due_date_then_task_then_unit() -> None:
    defn = definition(
        task(id="B", due="07-01", responsible=["role:town"]),
        task(id="A", due="07-01", responsible=["town-b", "role:town"]),
        task(id="C", due="06-01", responsible=["office"]),
    )
    got = [(o.task, o.unit, str(o.due)) for o in plan(defn, UNITS, 2026, CAL)]
    assert got == [
        ("C", "office", "2026-06-01"),
        ("A", "town-a", "2026-07-01"),
        ("A", "town-b", "2026-07-01"),
        ("B", "town-a", "2026-07-01"),
        ("B", "town-b", "2026-07-01"),
    ]


def test_a_due_date_at_the_year_end_may_roll_into_the_next_year_and_stays_in_its_years_plan() -> None:
    defn = definition(task(due="12-31"))
    weekdays = make_calendar("weekdays")
    assert [(str(o.due), str(o.nominal_due)) for o in plan(defn, UNITS, 2022, weekdays)] == [
        ("2023-01-02", "2022-12-31")
    ]


def test_as_json_has_exactly_the_design_fields() -> None:
    (o,) = plan(definition(task(due="06-10")), UNITS, 2026, CAL)
    assert o.as_json() == {
        "workflow": "mini",
        "task": "T01",
        "title": "任务",
        "phase": None,
        "unit": "town-a",
        "lead": ["office"],
        "occurrence": None,
        "opens": "2026-05-11",
        "due": "2026-06-10",
    }


# -- properties -------------------------------------------------------------------------------------

MONTH_DAYS = st.tuples(st.integers(1, 12), st.integers(1, 31)).filter(
    lambda md: md[1] <= (29 if md[0] == 2 else 30 if md[0] in (4, 6, 9, 11) else 31)
)
OFFSETS = st.sampled_from(["-1d", "-7d", "-30d", "-1wd", "-3wd", "-20wd", "-1mo", "-6mo", "0d"])


@settings(max_examples=300, deadline=None)
@given(md=MONTH_DAYS, year=st.integers(2004, 2026), window=st.none() | OFFSETS)
def test_due_is_a_working_day_on_or_after_the_nominal_date_and_opens_never_after_it(md, year, window) -> None:
    fields = {"due": f"{md[0]:02d}-{md[1]:02d}"} | ({"window": window} if window else {})
    (o,) = plan(definition(task(**fields)), UNITS, year, CAL)
    assert CAL.is_workday(o.due)
    assert o.nominal_due <= o.due < o.nominal_due + timedelta(days=12)  # the longest PRC holiday is shorter
    assert all(
        not CAL.is_workday(o.nominal_due + timedelta(days=k)) for k in range((o.due - o.nominal_due).days)
    )
    assert CAL.is_workday(o.opens)
    assert o.opens <= o.due
    assert o.nominal_due.year == year


@settings(max_examples=100, deadline=None)
@given(
    start=MONTH_DAYS,
    length=st.integers(0, 200),
    year=st.integers(2004, 2026),
)
def test_a_phase_task_opens_on_the_phase_start_rolled_forward_and_is_due_at_its_end(
    start, length, year
) -> None:
    first = date(2024, *start)  # a leap year: every MM-DD exists
    last = min(first + timedelta(days=length), date(2024, 12, 31))
    phase = {"id": "p", "name": "阶段", "start": first.strftime("%m-%d"), "end": last.strftime("%m-%d")}
    (o,) = plan(definition(task(phase="p"), phases=(phase,)), UNITS, year, CAL)
    dates = phase_dates(
        Definition.model_validate({"workflow": {"id": "x", "title": "x"}, "phases": [phase]}).phases[0], year
    )
    assert o.due == CAL.next_workday(dates.end)
    assert o.opens == min(CAL.next_workday(dates.start), o.due)


UNIT_SETS = st.lists(st.sampled_from(["town-b", "office", "town-a", "role:town"]), min_size=1, max_size=3)
RULES = st.sampled_from(
    ["FREQ=MONTHLY;BYMONTHDAY=10", "FREQ=WEEKLY;BYDAY=MO", "FREQ=YEARLY;BYMONTH=6;BYMONTHDAY=10"]
)


@settings(max_examples=60, deadline=None)
@given(
    tasks=st.lists(
        st.tuples(st.sampled_from(["06-10", "06-08", "12-31"]) | RULES, UNIT_SETS), min_size=1, max_size=6
    ),
    year=st.integers(2024, 2026),
)
def test_plan_is_every_obligation_in_due_task_unit_order_made_one_group_at_a_time(tasks, year) -> None:
    """``plan()`` makes its obligations by (due date, task) group; the result is what building them
    all and sorting them gives (the order of the first implementation), whatever dates the tasks share."""
    specs = [
        task(id=f"T{n:02d}", responsible=units, **({"rrule": rule} if "=" in rule else {"due": rule}))
        for n, (rule, units) in enumerate(tasks)
    ]
    got = plan(definition(*reversed(specs)), UNITS, year, CAL)  # (made out of id order)
    naive = [
        (o.due, o.task, o.unit, o.occurrence or "")
        for spec in specs
        for o in plan(definition(spec), UNITS, year, CAL)
    ]
    assert [(o.due, o.task, o.unit, o.occurrence or "") for o in got] == sorted(naive)


# -- the pilot ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pilot():
    bundle = load_bundle(PILOT, EXAMPLE_UNITS, {"normative_documents": EXAMPLE_REGISTER})
    return bundle, plan(bundle.definition, bundle.units.directory, 2026, CAL, bundle.registers)


def roles_of_example_units() -> dict[str, list[str]]:
    """Role → unit ids, read straight from the example units file (not through duban's code)."""
    roles: dict[str, list[str]] = {}
    for unit in tomllib.loads(EXAMPLE_UNITS.read_text(encoding="utf-8"))["units"]:
        for role in unit["roles"]:
            roles.setdefault(role, []).append(unit["id"])
    return roles


def by_task(occurrences, task_id: str):
    return [o for o in occurrences if o.task == task_id]


def test_pilot_phases() -> None:
    defn = load_bundle(PILOT, EXAMPLE_UNITS, {"normative_documents": EXAMPLE_REGISTER}).definition
    assert [(p.id, str(p.start), str(p.end)) for p in (phase_dates(ph, 2026) for ph in defn.phases)] == [
        ("mobilize", "2026-05-10", "2026-05-30"),
        ("implement", "2026-06-01", "2026-11-30"),
        ("evaluate", "2026-12-01", "2026-12-30"),
    ]


def test_pilot_june_10_deadline_for_every_township_and_law_enforcement_agency(pilot) -> None:
    _, occurrences = pilot
    roles = roles_of_example_units()
    expected = set(roles["township_government"]) | set(roles["law_enforcement_agency"])
    d03 = by_task(occurrences, "D03")
    assert {o.unit for o in d03} == expected and len(d03) == len(expected)
    assert {(o.due, o.opens) for o in d03} == {
        (D("2026-06-10"), D("2026-05-11"))
    }  # a Wednesday; 05-10 a Sunday
    assert D("2026-06-10").weekday() == 2


def test_pilot_phase_tasks_follow_their_phases(pilot) -> None:
    _, occurrences = pilot
    for task_id in [f"T{n:02d}" for n in range(1, 27)]:
        assert {(o.phase, o.opens, o.due) for o in by_task(occurrences, task_id)} == {
            ("implement", D("2026-06-01"), D("2026-11-30"))
        }, task_id
    assert {(o.opens, o.due) for o in by_task(occurrences, "D02")} == {(D("2026-05-11"), D("2026-06-01"))}
    assert {(o.opens, o.due) for o in by_task(occurrences, "D13")} == {(D("2026-12-01"), D("2026-12-10"))}
    assert {(o.opens, o.due) for o in by_task(occurrences, "D15")} == {(D("2026-12-01"), D("2026-12-30"))}


def test_pilot_december_reports_fall_on_working_days(pilot) -> None:
    _, occurrences = pilot
    roles = roles_of_example_units()
    d08, d09 = by_task(occurrences, "D08"), by_task(occurrences, "D09")
    assert [(o.unit, o.occurrence, o.due) for o in d08] == [
        ("county-government-office", "2026-12-31", D("2026-12-31"))
    ]
    assert {o.unit for o in d09} == set(roles["township_government"])
    assert {(o.due, o.opens) for o in d09} == {(D("2026-12-31"), D("2026-11-30"))}
    assert all(CAL.is_workday(o.due) and o.due.month == 12 for o in d08 + d09)


def test_pilot_recurring_duties_in_2026(pilot) -> None:
    _, occurrences = pilot
    due = {o.task: o.due for o in occurrences if o.task in ("D05", "D06", "D07", "D10", "D11")}
    assert due == {
        "D05": D("2026-11-30"),
        "D06": D("2026-12-15"),
        "D07": D("2026-11-02"),  # 10-31 is a Saturday
        "D10": D("2026-09-30"),
        "D11": D("2026-08-31"),
    }


def test_pilot_biennial_duties_skip_2027() -> None:
    bundle = load_bundle(PILOT, EXAMPLE_UNITS, {"normative_documents": EXAMPLE_REGISTER})
    cal = make_calendar("cn-workdays", on_assumed=lambda year, message: None)
    tasks = {o.task for o in plan(bundle.definition, bundle.units.directory, 2027, cal, bundle.registers)}
    assert "D05" not in tasks and "D06" not in tasks
    assert {"D07", "D08", "D09", "D10", "D11"} <= tasks
    tasks_2028 = {
        o.task for o in plan(bundle.definition, bundle.units.directory, 2028, cal, bundle.registers)
    }
    assert {"D05", "D06"} <= tasks_2028


def test_pilot_register_rows_due_in_2026(pilot) -> None:
    _, occurrences = pilot
    d04 = [(o.occurrence, o.unit, str(o.opens), str(o.due)) for o in by_task(occurrences, "D04")]
    assert d04 == [
        ("rs-2023-02", "county-human-resources-bureau", "2025-12-30", "2026-06-30"),
        ("cg-2023-05", "county-urban-management-bureau", "2026-02-24", "2026-08-14"),  # 08-15 Sat: before
        ("ga-2021-03", "county-public-security-bureau", "2026-04-01", "2026-09-30"),  # 10-01 国庆: before
        ("sj-2021-11", "county-market-regulation-bureau", "2026-06-01", "2026-11-30"),
        ("xfl-2016-17", "county-government-office", "2026-06-30", "2026-12-31"),
    ]


def test_pilot_every_obligation_is_well_formed_and_in_order(pilot) -> None:
    _, occurrences = pilot
    assert occurrences == sorted(occurrences, key=lambda o: (o.due, o.task, o.unit, o.occurrence or ""))
    assert all(CAL.is_workday(o.due) and CAL.is_workday(o.opens) and o.opens <= o.due for o in occurrences)
    keys = [(o.task, o.unit, o.occurrence) for o in occurrences]
    assert len(keys) == len(set(keys))


# -- the real CLI ---------------------------------------------------------------------------------------


def expected_pilot_obligations(year: int) -> set[tuple[str, str, str | None]]:
    """(task, unit, occurrence) of the pilot, worked out from the raw files, not through plan()."""
    roles = roles_of_example_units()
    raw = tomllib.loads(PILOT.read_text(encoding="utf-8"))

    def expand(refs: list[str]) -> set[str]:
        return {u for ref in refs for u in (roles.get(ref[5:], []) if ref.startswith("role:") else [ref])}

    expected: set[tuple[str, str, str | None]] = set()
    for item in raw["tasks"] + raw["duties"]:
        if "anchor" in item:
            with EXAMPLE_REGISTER.open(encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    if row["expires_on"].startswith(str(year)):
                        expected.add((item["id"], row["unit"], row["id"]))
            continue
        occurrences: list[str | None] = [None]
        if "rrule" in item:
            occurrences = {
                "D05": [f"{year}-11-30"] if year % 2 == 0 else [],
                "D06": [f"{year}-12-15"] if year % 2 == 0 else [],
                "D07": [f"{year}-10-31"],
                "D08": [f"{year}-12-31"],
                "D09": [f"{year}-12-31"],
                "D10": [f"{year}-09-30"],
                "D11": [f"{year}-08-31"],
            }[item["id"]]
        for unit in expand(item["responsible"]):
            for occurrence in occurrences:
                expected.add((item["id"], unit, occurrence))
    return expected


def run_duban(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DUBAN, *args], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_duban_plan_json_lists_every_obligation_of_the_pilot() -> None:
    result = run_duban(
        "plan", "rule-of-law-pilot", "--units", "examples/units.example.toml", "--year", "2026", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(list(row) == JSON_KEYS for row in rows)
    assert {(r["task"], r["unit"], r["occurrence"]) for r in rows} == expected_pilot_obligations(2026)
    assert len(rows) == len(expected_pilot_obligations(2026))
    roles = roles_of_example_units()
    responsible = len(set(roles["township_government"]) | set(roles["law_enforcement_agency"]))
    assert sum(r["task"].startswith("T") for r in rows) == 26 * responsible
    assert [r["due"] for r in rows] == sorted(r["due"] for r in rows)
    for row in rows:
        due, opens = D(row["due"]), D(row["opens"])
        assert CAL.is_workday(due) and opens <= due, row
        assert row["workflow"] == "rule-of-law-pilot"
        assert isinstance(row["lead"], list) and row["lead"]
    d03 = [r for r in rows if r["task"] == "D03"]
    assert {r["due"] for r in d03} == {"2026-06-10"}
    assert {r["due"] for r in rows if r["task"] == "D02"} == {"2026-06-01"}  # 05-30 is a Saturday
    assert {r["due"] for r in rows if r["occurrence"] == "ga-2021-03"} == {"2026-09-30"}  # before 国庆


def test_duban_plan_for_a_year_without_calendar_data_warns_and_still_works() -> None:
    result = run_duban(
        "plan", "rule-of-law-pilot", "--units", "examples/units.example.toml", "--year", "2027", "--json"
    )
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.splitlines()
    assert warnings and all(
        line.startswith("duban: 警告：2027 年尚无国务院公布的放假安排") for line in warnings
    )
    assert "2027 年的调休上班日未知" in warnings[0]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {(r["task"], r["unit"], r["occurrence"]) for r in rows} == expected_pilot_obligations(2027)
    assert all(D(r["due"]).weekday() < 5 for r in rows if r["due"].startswith("2027"))
    # No due date on a day the law itself makes a holiday (the weekdays of 2027 among them).
    statutory = {d.isoformat() for d in statutory_holidays(2027)}
    assert {"2027-01-01", "2027-02-05", "2027-02-08", "2027-04-05", "2027-06-09", "2027-09-15"} <= statutory
    assert [r for r in rows if r["due"] in statutory or r["opens"] in statutory] == []
    table = run_duban("plan", "rule-of-law-pilot", "--units", "examples/units.example.toml", "--year", "2027")
    assert "调休上班日未知" in table.stdout and "2027 年的调休上班日未知" in table.stderr


@pytest.mark.parametrize("year", [2026, 2027, 2028])
def test_a_document_review_is_due_on_or_before_the_document_expires(year: int) -> None:
    """D04 has roll = "backward": 2026-08-15 (Saturday) gives 08-14, 2026-10-01 (国庆) 09-30."""
    bundle = load_bundle(
        PILOT, EXAMPLE_UNITS, {"normative_documents": EXAMPLE_REGISTER}, on_assumed=lambda *_: None
    )
    expiry = {row.id: d for row, d in bundle.registers["normative_documents"].dates("expires_on")}
    rows = [o for o in plan(bundle.definition, bundle.units.directory, year, bundle.calendar, bundle.registers)
            if o.task == "D04"]  # fmt: skip
    assert rows
    for o in rows:
        assert o.due <= expiry[o.occurrence] and bundle.calendar.is_workday(o.due), o
        assert o.due == bundle.calendar.prev_workday(expiry[o.occurrence])
    if year == 2026:
        assert {o.occurrence: o.due for o in rows}["cg-2023-05"] == D("2026-08-14")
        assert {o.occurrence: o.due for o in rows}["ga-2021-03"] == D("2026-09-30")


def test_duban_plan_marks_a_date_moved_back() -> None:
    result = run_duban(
        "plan", "rule-of-law-pilot", "--units", "examples/units.example.toml", "--year", "2026"
    )
    assert result.returncode == 0, result.stderr
    assert "2026-08-14†" in result.stdout and "2026-09-30†" in result.stdout
    assert "提前至前一个工作日" in result.stdout
