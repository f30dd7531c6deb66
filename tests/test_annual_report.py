"""The second shipped plan, the yearly 法治政府建设年度报告: it validates beside the pilot with the
example units, its dates for 2026 and 2027 are those of a table computed by hand, the county's own
date for its departments is a setting config gives, and one daemon runs both plans."""

from __future__ import annotations

import shutil
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest
from smtp_server import SmtpServer
from support import REPO, DubanEnv

from orchestrator.cli import main
from workflows.catalog import load_bundle
from workflows.check import Inputs, check_inputs
from workflows.plan import plan
from workflows.settings import SettingValues

REPORT = REPO / "workflows/definitions/rule_of_law_annual_report.toml"
PILOT = REPO / "workflows/definitions/rule_of_law_pilot.toml"
UNITS = REPO / "examples/units.example.toml"
REGISTER = REPO / "examples/normative_documents.example.csv"
FIVE_PARTS = (
    "一年来的主要举措和成效",
    "存在的不足和原因",
    "党政主要负责人履行推进法治建设第一责任人职责情况",
    "下一年度工作安排",
    "其他需要报告的情况",
)


def dates(year: int, settings: SettingValues | None = None, overrides: Path | None = None, warned=None):
    """task → {(opens, due)} and task → number of obligations, for ``year``."""
    bundle = load_bundle(
        REPORT,
        UNITS,
        overrides=overrides,
        on_assumed=(lambda y, message: warned.append(y)) if warned is not None else None,
        settings=settings,
    )
    found: dict[str, set] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for occurrence in plan(bundle.definition, bundle.units.directory, year, bundle.calendar):
        found[occurrence.task].add((occurrence.opens, occurrence.due))
        counts[occurrence.task] += 1
    return dict(found), dict(counts)


# -- the plan validates, beside the pilot -----------------------------------------------------------


def test_both_shipped_plans_validate_with_the_example_units_and_register():
    inputs = Inputs()
    for path in (PILOT, REPORT, UNITS, REGISTER):
        inputs.add(path)
    report = check_inputs(inputs)
    assert report.problems == []
    assert report.warnings == []
    assert sorted(d.definition.workflow.id for d in report.definitions) == [
        "rule-of-law-annual-report",
        "rule-of-law-pilot",
    ]


def test_duban_validate_says_ok_for_both_plans(tmp_path, capsys):
    (tmp_path / "config.toml").write_text('[database]\nurl = "sqlite:///x.db"\n', encoding="utf-8")
    code = main(
        [
            "--config",
            str(tmp_path / "config.toml"),
            "validate",
            str(PILOT),
            str(REPORT),
            str(UNITS),
            str(REGISTER),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(
        "ok: 2 definitions (rule-of-law-pilot, rule-of-law-annual-report)"
    ) or out.startswith("ok: 2 definitions (rule-of-law-annual-report, rule-of-law-pilot)")


def test_the_shipped_config_runs_both_plans():
    from orchestrator.service.config import load_settings

    settings = load_settings(REPO / "config.toml", required=True)
    assert [p.workflow for p in settings.programs] == ["rule-of-law-pilot", "rule-of-law-annual-report"]


def test_roles_are_the_pilots_where_they_mean_the_same_unit_and_one_new_for_the_county_committee():
    from workflows.refs import role_uses
    from workflows.source import read_toml

    report_roles = set(role_uses(read_toml(REPORT)[0]))
    pilot_roles = set(role_uses(read_toml(PILOT)[0]))
    assert report_roles - pilot_roles == {"county_party_committee"}
    assert {"county_government_office", "law_enforcement_agency", "township_government"} <= report_roles


def test_every_report_names_the_five_parts():
    bundle = load_bundle(REPORT, UNITS)
    for duty in bundle.definition.all_tasks:
        assert all(part in duty.deliverable for part in FIVE_PARTS), duty.id


# -- the dates, against a table computed by hand -----------------------------------------------------
#
# 2026 (official schedule, chinese-calendar): 春节 02-15…02-23 off, 02-14 (Sat) and 02-28 (Sat) are
# make-up working days; 元旦 01-01…01-03 off, 01-04 (Sun) a make-up working day.
#   D01 departments: nominal 02-15 (Sun, 春节) → backward → 02-14 (Sat, a make-up working day);
#       opens 01-15 (Thu) = 02-15 - 1 month.
#   D02/D03 county: nominal 03-01 (Sun) → backward → 02-28 (Sat, a make-up working day);
#       opens 03-01 - 2 months = 01-01 (元旦) → forward → 01-04 (Sun, a make-up working day).
#   D04 public: nominal 04-01 (Wed) → 04-01; opens 03-01 (Sun) → forward → 03-02 (Mon).
# 2027 (no official schedule yet: duban's statutory-holiday fallback, 《全国年节及纪念日放假办法》 —
# 元旦 01-01, 春节 02-05…02-08 from 除夕, no make-up working days; the test sees the loud warning):
#   D01: 02-15 (Mon) → 02-15; opens 01-15 (Fri).
#   D02/D03: 03-01 (Mon) → 03-01; opens 01-01 (Fri, 元旦) → forward → 01-04 (Mon).
#   D04: 04-01 (Thu) → 04-01; opens 03-01 (Mon).

TABLE = {
    2026: {
        "D01": (date(2026, 1, 15), date(2026, 2, 14)),
        "D02": (date(2026, 1, 4), date(2026, 2, 28)),
        "D03": (date(2026, 1, 4), date(2026, 2, 28)),
        "D04": (date(2026, 3, 2), date(2026, 4, 1)),
    },
    2027: {
        "D01": (date(2027, 1, 15), date(2027, 2, 15)),
        "D02": (date(2027, 1, 4), date(2027, 3, 1)),
        "D03": (date(2027, 1, 4), date(2027, 3, 1)),
        "D04": (date(2027, 3, 1), date(2027, 4, 1)),
    },
}
# the example units: 23 departments (law_enforcement_agency), the county government's office, the
# county committee's office, 10 townships
COUNTS = {"D01": 23, "D02": 1, "D03": 2, "D04": 1 + 23 + 10}


@pytest.mark.parametrize("year", [2026, 2027])
def test_the_dates_of_a_year_are_the_hand_computed_ones(year):
    warned: list[int] = []
    found, counts = dates(year, warned=warned)
    assert found == {task: {dates_} for task, dates_ in TABLE[year].items()}
    assert counts == COUNTS
    assert warned == ([2027] if year == 2027 else [])  # 2027: the statutory fallback, said loudly


def test_a_deadline_before_a_date_rolls_back_never_forward():
    # the 2026 table above shows it on a Sunday and on a 春节 day: the working day before, even a
    # Saturday that is a make-up working day; never the next working day (02-24, 03-02)
    found, _ = dates(2026)
    assert found["D01"] == {(date(2026, 1, 15), date(2026, 2, 14))}
    assert found["D02"] == {(date(2026, 1, 4), date(2026, 2, 28))}


def test_a_public_deadline_on_a_holiday_is_due_the_working_day_before(tmp_path):
    # a calendar override written here: 2027-04-01 a holiday (it is not; the rule is the point)
    overrides = tmp_path / "calendar.toml"
    overrides.write_text('[2027]\nholidays = ["2027-04-01"]\nworkdays = []\n', encoding="utf-8")
    found, _ = dates(2027, overrides=overrides)
    assert found["D04"] == {(date(2027, 3, 1), date(2027, 3, 31))}


# -- the county's date for its departments: a setting ----------------------------------------------


def test_a_deployment_sets_the_department_date_and_only_that_moves():
    found, _ = dates(2026, SettingValues({"department_report_due": "02-10"}, "config.toml", 7))
    assert found["D01"] == {(date(2026, 1, 12), date(2026, 2, 10))}  # 01-10 is a Saturday: opens Monday
    assert found["D04"] == {TABLE[2026]["D04"]}


def _site(tmp_path: Path, programs: str) -> Path:
    shutil.copy(UNITS, tmp_path / "units.toml")
    shutil.copy(REGISTER, tmp_path / "normative_documents.csv")
    config = tmp_path / "config.toml"
    config.write_text(
        '[database]\nurl = "sqlite:///var/duban.db"\n\n[definitions]\nunits = "units.toml"\n\n'
        '[registers]\nnormative_documents = "normative_documents.csv"\n\n'
        '[[programs]]\nworkflow = "rule-of-law-pilot"\nyear = 2026\n\n' + programs,
        encoding="utf-8",
    )
    return config


def _run(config: Path, *args: str, capsys) -> tuple[int, str, str]:
    code = main(["--config", str(config), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_duban_plan_uses_the_setting_config_gives(tmp_path, capsys):
    import json

    config = _site(
        tmp_path,
        '[[programs]]\nworkflow = "rule-of-law-annual-report"\nyear = 2026\n'
        'settings = { department_report_due = "02-10" }\n',
    )
    code, out, _ = _run(
        config, "plan", "rule-of-law-annual-report", "--year", "2026", "--json", capsys=capsys
    )
    assert code == 0
    dues = {json.loads(line)["due"] for line in out.splitlines() if json.loads(line)["task"] == "D01"}
    assert dues == {"2026-02-10"}
    code, out, err = _run(config, "validate", capsys=capsys)
    assert (code, err.count("error")) == (0, 0), err


def test_a_setting_the_plan_does_not_have_is_one_line_at_the_config_line(tmp_path, capsys):
    config = _site(
        tmp_path,
        '[[programs]]\nworkflow = "rule-of-law-annual-report"\nyear = 2026\n'
        'settings = { department_report_date = "02-10" }\n',
    )
    line = (
        config.read_text(encoding="utf-8")
        .splitlines()
        .index('settings = { department_report_date = "02-10" }')
        + 1
    )
    code, _, err = _run(config, "plan", "rule-of-law-annual-report", "--year", "2026", capsys=capsys)
    assert code == 2
    assert err.strip() == (
        f"{config}:{line}: programs[1].settings.department_report_date: the plan has no setting "
        '"department_report_date" (did you mean "department_report_due"?)'
    )
    code, _, err = _run(config, "validate", capsys=capsys)
    assert code == 1 and f"{config}:{line}: programs[1].settings.department_report_date" in err


def test_a_setting_that_is_not_a_date_is_refused_at_the_config_line(tmp_path, capsys):
    config = _site(
        tmp_path,
        '[[programs]]\nworkflow = "rule-of-law-annual-report"\nyear = 2026\n'
        'settings = { department_report_due = "2-10" }\n',
    )
    line = len(config.read_text(encoding="utf-8").splitlines())
    code, _, err = _run(config, "plan", "rule-of-law-annual-report", "--year", "2026", capsys=capsys)
    assert code == 2
    assert err.strip() == (
        f'{config}:{line}: programs[1].settings.department_report_due: bad date "2-10": '
        'expected "MM-DD" in quotes, e.g. "02-15"'
    )


def test_two_years_of_one_plan_cannot_disagree_on_its_settings(tmp_path, capsys):
    config = _site(
        tmp_path,
        '[[programs]]\nworkflow = "rule-of-law-annual-report"\nyear = 2026\n'
        'settings = { department_report_due = "02-10" }\n\n'
        '[[programs]]\nworkflow = "rule-of-law-annual-report"\nyear = 2027\n'
        'settings = { department_report_due = "02-12" }\n',
    )
    code, _, err = _run(config, "plan", "rule-of-law-annual-report", "--year", "2026", capsys=capsys)
    assert code == 2
    assert "programs[2].settings: differs from programs[1].settings for the same workflow" in err


def test_a_reference_to_an_undeclared_setting_is_an_error_at_its_line(tmp_path):
    from workflows.loader import read_definition

    text = REPORT.read_text(encoding="utf-8").replace(
        'due = "setting:department_report_due"', 'due = "setting:department_due"'
    )
    path = tmp_path / "plan.toml"
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index('due = "setting:department_due"') + 1
    read = read_definition(path)
    assert [str(p) for p in read.problems] == [
        f'{path}:{line}: duties[0].due: unknown setting "department_due" (did you mean '
        '"department_report_due"?; declare it in [settings.department_due])'
    ]


# -- one daemon, both plans -------------------------------------------------------------------------


def test_one_daemon_runs_both_plans_and_mails_for_each(short_tmp):
    with SmtpServer() as server:
        env = DubanEnv(short_tmp / "deploy")
        env.upgrade()
        try:
            shutil.copy(UNITS, env.root / "units.toml")
            shutil.copy(REGISTER, env.root / "normative_documents.csv")
            text = env.config_path.read_text(encoding="utf-8")
            text = text.replace('transport = "maildir"\nmaildir = "mail"\n', "")
            head, _, _ = text.partition("[[programs]]")
            env.config_path.write_text(
                head
                + '\ntransport = "smtp"\n\n[mail.smtp]\nhost = "127.0.0.1"\n'
                + f'port = {server.port}\nsecurity = "none"\ntimeout = 5\n\n'
                + '[registers]\nnormative_documents = "normative_documents.csv"\n\n'
                + '[[programs]]\nworkflow = "rule-of-law-pilot"\nyear = "current"\n\n'
                + '[[programs]]\nworkflow = "rule-of-law-annual-report"\nyear = "current"\n',
                encoding="utf-8",
            )
            env.definition.unlink()  # only the shipped plans
            # 2026-04-01, a Wednesday: the annual reports are due today; the pilot has a notice too
            result = env.cli("run", "--once", env=env.base_env(DUBAN_FAKE_NOW="2026-04-01T09:30:00+08:00"))
            assert result.returncode == 0, result.stdout + result.stderr
            sent = dict(
                env.rows(
                    "SELECT p.workflow, count(DISTINCT o.id) FROM outbox_message o "
                    "JOIN notification_item i ON i.message_id = o.id JOIN program p ON p.id = i.program_id "
                    "WHERE o.state = 'sent' GROUP BY p.workflow"
                )
            )
        finally:
            env.cleanup()
    assert set(sent) == {"rule-of-law-pilot", "rule-of-law-annual-report"}
    bodies = [r.message.get_body(("plain",)).get_content() for r in server.received]
    assert any("法治政府建设年度报告" in body for body in bodies)
    assert any("法治政府建设指标体系试点" in body for body in bodies)


def test_a_county_running_only_the_pilot_is_not_told_of_the_reports_roles(tmp_path, capsys):
    # its units file has no county committee's office: the shipped report plan it does not run is
    # checked by itself, not against its units
    text = UNITS.read_text(encoding="utf-8")
    start = text.index('[[units]]\nid = "county-party-committee-office"')
    end = text.index("[[units]]", start + 1)
    (tmp_path / "units.toml").write_text(text[:start] + text[end:], encoding="utf-8")
    shutil.copy(REGISTER, tmp_path / "normative_documents.csv")
    config = tmp_path / "config.toml"
    config.write_text(
        '[database]\nurl = "sqlite:///var/duban.db"\n\n[definitions]\nunits = "units.toml"\n\n'
        '[registers]\nnormative_documents = "normative_documents.csv"\n\n'
        '[[programs]]\nworkflow = "rule-of-law-pilot"\nyear = 2026\n',
        encoding="utf-8",
    )
    code, out, err = _run(config, "validate", capsys=capsys)
    assert code == 0, err
    assert "county_party_committee" not in err  # (a calendar warning for next year may be there)
    assert out.startswith("ok: 2 definitions")
