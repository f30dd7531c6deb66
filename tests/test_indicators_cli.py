"""``duban indicator set`` and ``duban indicator list`` on a real SQLite database.

Values are rates (0–100 %, or N of M) or plain numbers; each is checked against its target; every
change is in the audit log with the value before and after; a bad input is one line, exit 2, and
changes nothing.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func
from sqlmodel import Session, select
from test_scoring import UNITS, cli, deploy

from orchestrator.store.models import Event, IndicatorValue

DEFINITION = """\
[workflow]
id = "ind-test"
title = "指标测试方案"
timezone = "Asia/Shanghai"
calendar = "cn-workdays"

[[phases]]
id = "work"
name = "实施阶段"
start = "06-01"
end = "09-30"

[[tasks]]
id = "T1"
section = "甲、制度建设"
title = "规范性文件管理"
phase = "work"
lead = ["office"]
responsible = ["role:town"]
indicators = [
    { id = "filing_rate", name = "规范性文件备案率", target = ">= 100%" },
    { id = "complaints", name = "被投诉件数", target = "<= 5" },
    { id = "county_rate", name = "县政府报备率", target = ">= 100%", reported_by = ["office"] },
]
"""


@pytest.fixture
def site(tmp_path):
    return deploy(tmp_path / "site", DEFINITION, UNITS, workflow="ind-test")


@pytest.fixture(scope="module")
def untouched(tmp_path_factory):
    """One deployment for the inputs that must change nothing (each test checks it still holds nothing)."""
    return deploy(tmp_path_factory.mktemp("untouched") / "site", DEFINITION, UNITS, workflow="ind-test")


def stored(site) -> list[tuple]:
    with Session(site.engine) as session:
        rows = session.exec(select(IndicatorValue).order_by(IndicatorValue.id))
        return [(r.indicator, r.unit, r.period, r.value, r.count, r.of, r.note, r.updated_by) for r in rows]


def events(site) -> list[Event]:
    with Session(site.engine) as session:
        return list(session.exec(select(Event).where(Event.kind == "indicator.set").order_by(Event.id)))


def event_count(site) -> int:
    with Session(site.engine) as session:
        return session.exec(select(func.count()).select_from(Event)).one()


def listed(site, *args: str) -> list[dict]:
    code, out, err = cli(site.config, "indicator", "list", "--json", *args)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_count_of_is_a_rate_checked_against_its_target_and_audited(site):
    code, out, err = cli(
        site.config, "indicator", "set", "filing_rate", "--unit", "town-a",
        "--count", "12", "--of", "12", "--note", "来源：备案登记簿",
    )  # fmt: skip
    assert code == 0, err
    assert "12/12 = 100%" in out and "甲镇" in out and "达标" in out
    assert stored(site) == [("filing_rate", "town-a", 2026, 100.0, 12, 12, "来源：备案登记簿", "tester")]
    (event,) = events(site)
    assert (event.actor, event.unit, event.subject, event.before) == (
        "tester", "town-a", "filing_rate/2026", None,
    )  # fmt: skip
    assert event.after == {"value": 100.0, "count": 12, "of": 12, "note": "来源：备案登记簿", "status": "met"}


def test_a_change_records_before_and_after_and_the_same_value_changes_nothing(site):
    for count in ("12", "11", "11"):
        code, out, err = cli(
            site.config, "indicator", "set", "filing_rate", "--unit", "town-b", "--count", count, "--of", "12"
        )
        assert code == 0, err
    assert "11/12 = 91.67%" in out and "未达标" in out and "未变化" in out
    _, second = events(site)  # the third set changed nothing and recorded nothing
    assert second.before == {"value": 100.0, "count": 12, "of": 12, "note": None}
    assert second.after == {"value": 11 * 100 / 12, "count": 11, "of": 12, "note": None, "status": "not_met"}
    assert [row[:6] for row in stored(site)] == [("filing_rate", "town-b", 2026, 11 * 100 / 12, 11, 12)]


def test_an_earlier_note_is_kept_unless_a_new_one_is_given(site):
    cli(site.config, "indicator", "set", "complaints", "--unit", "town-a", "--value", "3", "--note", "台账")
    code, out, err = cli(site.config, "indicator", "set", "complaints", "--unit", "town-a", "--value", "7")
    assert code == 0, err
    assert "未达标" in out  # 7 > 5
    assert stored(site)[0][3:7] == (7.0, None, None, "台账")


def test_list_shows_every_reporting_unit_with_met_not_met_or_missing(site):
    cli(site.config, "indicator", "set", "filing_rate", "--unit", "town-a", "--value", "100%")
    cli(site.config, "indicator", "set", "filing_rate", "--unit", "town-b", "--value", "99.5")
    cli(site.config, "indicator", "set", "complaints", "--unit", "town-c", "--value", "5")
    cli(site.config, "indicator", "set", "county_rate", "--unit", "office", "--count", "4", "--of", "4")
    rows = listed(site)
    got = [(r["indicator"], r["unit"], r["value"], r["status"]) for r in rows]
    assert got == [
        ("filing_rate", "town-a", 100.0, "met"),
        ("filing_rate", "town-b", 99.5, "not_met"),
        ("filing_rate", "town-c", None, "missing"),
        ("complaints", "town-a", None, "missing"),
        ("complaints", "town-b", None, "missing"),
        ("complaints", "town-c", 5.0, "met"),  # <= 5
        ("county_rate", "office", 100.0, "met"),  # reported by the office only
    ]
    assert {r["target"] for r in rows} == {">= 100%", "<= 5"}
    assert [(r["indicator"], r["status"]) for r in listed(site, "--unit", "town-c")] == [
        ("filing_rate", "missing"),
        ("complaints", "met"),
    ]
    code, out, err = cli(site.config, "indicator", "list")
    assert code == 0, err
    assert "规范性文件备案率" in out and "未填报" in out and "县考评办" in out


def test_a_period_outside_the_programs_years_is_refused_and_nothing_stored(site):
    args = ("indicator", "set", "filing_rate", "--unit", "town-a", "--value", "80")
    code, _, err = cli(site.config, *args, "--period", "2025")
    assert (code, err.strip()) == (2, "duban: --period 2025: ind-test 2026 covers 2026 only")
    code, _, err = cli(site.config, "indicator", "list", "--period", "2031")
    assert (code, err.strip()) == (2, "duban: --period 2031: ind-test 2026 covers 2026 only")
    assert [r["status"] for r in listed(site, "--unit", "town-a")][:1] == ["missing"]
    code, _, err = cli(site.config, *args, "--period", "2026")
    assert code == 0, err
    assert listed(site, "--unit", "town-a")[0]["value"] == 80.0


def test_not_applicable_needs_a_reason_and_counts_neither_met_nor_missing(site):
    base = ("indicator", "set", "filing_rate", "--unit", "乙镇")  # a unit by its name
    code, _, err = cli(site.config, *base, "--na")
    assert (code, err.strip()) == (2, 'duban: --na needs --reason, e.g. --reason "本乡未制定规范性文件"')
    code, _, err = cli(site.config, *base, "--na", "--reason", "x", "--value", "3")
    assert code == 2 and "--na" in err
    code, out, err = cli(site.config, *base, "--na", "--reason", "本镇未制定规范性文件")
    assert code == 0, err
    assert "不适用" in out and "不计入考评（本镇未制定规范性文件）" in out
    (row,) = [r for r in listed(site, "--unit", "town-b") if r["indicator"] == "filing_rate"]
    assert (row["status"], row["value"], row["not_applicable"], row["note"]) == (
        "not_applicable",
        None,
        True,
        "本镇未制定规范性文件",
    )
    code, out, err = cli(site.config, "scorecard", "--format", "json")
    assert code == 0, err
    card = json.loads(out)
    (indicator,) = [i for i in card["indicators"] if i["indicator"] == "filing_rate"]
    assert indicator["not_applicable"] == 1
    (town_b,) = [u for u in card["units"] if u["unit"] == "town-b"]
    assert town_b["tally"]["missing"] == sum(1 for i in town_b["missing"] if i["indicator"])
    assert not any(i["indicator"] == "filing_rate" for i in town_b["missing"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["nope", "--unit", "town-a", "--value", "1"],
            'indicator "nope": not in ind-test (known: filing_rate',
        ),
        (["filing_rate", "--unit", "town-x", "--value", "1"], '--unit "town-x": unknown unit'),
        (["filing_rate", "--value", "1"], "--unit：请指定填报单位"),
        (
            ["county_rate", "--unit", "town-a", "--value", "100"],
            "county_rate is reported by 县考评办, not by 甲镇",
        ),
        (["filing_rate", "--unit", "town-a", "--value", "100.5"], "above 100%"),
        (["filing_rate", "--unit", "town-a", "--value", "-1"], "is negative"),
        (["complaints", "--unit", "town-a", "--value", "-2"], "is negative"),
        (["filing_rate", "--unit", "town-a", "--value", "abc"], '"abc" is not a number'),
        (["filing_rate", "--unit", "town-a", "--value", "nan"], '"nan" is not a number'),
        (
            ["filing_rate", "--unit", "town-a", "--count", "13", "--of", "12"],
            "--count 13 is more than --of 12",
        ),
        (
            ["filing_rate", "--unit", "town-a", "--count", "0", "--of", "0"],
            "--of 0: with no cases there is no rate",
        ),
        (["filing_rate", "--unit", "town-a", "--count", "-1", "--of", "3"], "cannot be negative"),
        (
            ["filing_rate", "--unit", "town-a", "--count", "1.5", "--of", "3"],
            '--count: "1.5" is not a whole number',
        ),
        (["filing_rate", "--unit", "town-a", "--count", "3"], "--count and --of go together"),
        (["filing_rate", "--unit", "town-a", "--value", "1", "--count", "1", "--of", "2"], "not both"),
        (["filing_rate", "--unit", "town-a"], "give a value"),
        (["complaints", "--unit", "town-a", "--value", "3%"], "is a rate, but complaints (target <= 5)"),
        (["complaints", "--unit", "town-a", "--count", "1", "--of", "2"], "use --value"),
        (["filing_rate", "--unit", "town-a", "--value", "1", "--period", "26"], '--period：年份 "26" 有误'),
        (
            ["filing_rate", "--unit", "town-a", "--value", "1", "--program", "other"],
            '--program: no program "other"',
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_stores_nothing(untouched, args, message):
    site = untouched
    before = event_count(site)
    code, out, err = cli(site.config, "indicator", "set", *args)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("duban: "), err
    assert message in lines[0]
    assert "Traceback" not in err
    assert stored(site) == []
    assert event_count(site) == before


def test_list_with_an_unknown_unit_is_one_line_exit_2(untouched):
    code, _, err = cli(untouched.config, "indicator", "list", "--unit", "nobody")
    assert code == 2
    assert err.strip() == f'duban: --unit "nobody": unknown unit (not in {untouched.root / "units.toml"})'


def test_without_a_started_program_it_says_what_to_run(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "d.db"}"\n', encoding="utf-8")
    assert cli(config, "db", "upgrade")[0] == 0
    code, _, err = cli(config, "indicator", "list")
    assert code == 2
    assert "尚未启动任何方案：请先运行 duban start 方案编号 --year 年份" in err
