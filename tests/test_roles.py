"""Issue 27, points 1 and 2: no unit falls out silently, and a plan fits a smaller county.

A unit's role that no plan uses is an error at its line (with the plan's role it might mean); a
unit with no part in any plan is an error when its ``roles`` key is missing, a warning when it is
an empty list — in ``duban validate``, ``duban status`` and the daemon's log. A plan's role that no
unit holds is one line, with the tasks that need it; the units file's ``[roles]`` table maps a
plan's role to another role, to units, or to nobody (``false``: the office takes its lead), and
every expansion of ``role:X`` goes through it (``duban plan``, a started program's obligations
and escalation recipients, the scorecard's subjects).
"""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select
from support import REPO, plan_toml, sqlite_engine, task, unit, units_toml, workflow
from test_validate_cli import error_lines, run

from orchestrator.engine.programs import start_program
from orchestrator.evaluation.scoring import subjects_of
from orchestrator.store.db import transaction
from orchestrator.store.models import Obligation, Timer
from workflows.catalog import load_bundle
from workflows.roles import FIX

PILOT = REPO / "workflows/definitions/rule_of_law_pilot.toml"
TOWNS = ["东溪乡", "北山乡", "南塘镇", "西河镇", "中和镇", "安平乡", "青石镇", "柳湾乡"]


def county_units(*, towns_role: str = "township_government", extra: str = "") -> str:
    """The issue's county: the office, three bureaus and eight townships (12 units)."""
    units = [
        unit(
            "county-office",
            "县政府办公室",
            "county_government_office",
            "legal_affairs_office",
            "leading_group_office",
        ),
        unit("justice-bureau", "县司法局", "justice_bureau", "law_enforcement_agency"),
        unit("finance-bureau", "县财政局", "finance_bureau", "law_enforcement_agency"),
        unit("audit-bureau", "县审计局", "audit_bureau", "law_enforcement_agency"),
        *(unit(f"town-{n}", name, towns_role) for n, name in enumerate(TOWNS, 1)),
    ]
    return units_toml(*units) + extra


COUNTY_ROLES = """
[roles]
supervision_bureau = "role:justice_bureau"     # 监察局的职责由司法局承担
information_office = "county-office"
administrative_service_center = "county-office"
human_resources_bureau = ["finance-bureau"]
inspection_office = "role:leading_group_office"
court = false                                  # 本县不设：牵头职责由领导小组办公室承担
complaint_center = false
staffing_office = false
"""
"""The [roles] table that fits the pilot to the county."""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "config.toml").write_text('[database]\nurl = "sqlite:///var/duban.db"\n', encoding="utf-8")
    return tmp_path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path: Path, text: str, after: str | None = None) -> int:
    """The line number of the first line of ``path`` holding ``text`` (after the line holding ``after``)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i for i, line in enumerate(lines) if i >= start and text in line) + 1


def pilot(site: Path, command: str, units: Path, *args: str) -> tuple[int, str, str]:
    """``duban validate|plan`` of the pilot with ``units`` and a register of the county's own documents."""
    register = write(
        site, "docs.csv", "id,title,unit,expires_on\nx-1,县政府第1号令,county-office,2026-12-31\n"
    )
    files = [str(PILOT), str(units)] if command == "validate" else [str(PILOT), "--units", str(units)]
    return run(
        command, *files, *args, "--register", f"normative_documents={register}", config=site / "config.toml"
    )


# -- point 1: no unit falls out silently ------------------------------------------------------------


def test_a_misspelled_role_is_an_error_at_its_line_with_the_plan_role_it_means(site: Path) -> None:
    text = county_units(extra=COUNTY_ROLES).replace('"township_government"]', '"township_govenment"]', 1)
    units = write(site, "units.toml", text)
    code, out, err = pilot(site, "validate", units)
    assert code == 1 and out == ""
    line = line_of(units, "township_govenment")
    assert (
        f'{units}:{line}: units[4].roles[0]: role "township_govenment" is not used by rule-of-law-pilot '
        '(did you mean "township_government"?)'
    ) in error_lines(err)
    assert "owes nothing" not in err  # the role's error says it: no second line for the same unit


def test_a_unit_with_no_roles_key_is_an_error_and_an_empty_list_a_warning(site: Path) -> None:
    text = county_units(extra=COUNTY_ROLES)
    text = text.replace(
        'emails = ["town-2@example.gov.cn"]\nroles = ["township_government"]\n',
        'emails = ["town-2@example.gov.cn"]\n',
    )
    text = text.replace(
        'emails = ["town-3@example.gov.cn"]\nroles = ["township_government"]\n',
        'emails = ["town-3@example.gov.cn"]\nroles = []\n',
    )
    units = write(site, "units.toml", text)
    code, _, err = pilot(site, "validate", units)
    assert code == 1
    missing = line_of(units, 'id = "town-2"') - 1  # its [[units]] header
    empty = line_of(units, "roles = []")
    assert error_lines(err) == [
        f'{units}:{empty}: warning: units[6].roles: unit "town-3" (南塘镇) owes nothing in rule-of-law-pilot '
        "and is sent nothing (its roles: none)",
        f'{units}:{missing}: units[5]: unit "town-2" (北山乡) has no roles, so it owes nothing in '
        "rule-of-law-pilot: give it roles = [...] as the plan names them, or roles = [] for a unit meant "
        "to owe nothing here",
    ]
    # with the missing key written as roles = [], only the warning remains: the files are usable
    units.write_text(
        text.replace(
            'emails = ["town-2@example.gov.cn"]\n', 'emails = ["town-2@example.gov.cn"]\nroles = []\n'
        ),
        encoding="utf-8",
    )
    code, out, err = pilot(site, "validate", units)
    assert code == 0, err
    assert out.startswith("ok: ")
    warned = [line.split(": warning: ")[1] for line in err.splitlines()]
    assert [w.split(" owes nothing")[0] for w in warned] == [
        'units[5].roles: unit "town-2" (北山乡)',
        'units[6].roles: unit "town-3" (南塘镇)',
    ]


def test_a_unit_named_only_by_id_or_in_the_roles_table_has_a_part(site: Path) -> None:
    plan = plan_toml(
        workflow("mini", "测试计划", contact="office"),
        tasks=[task("T1", "报送方案", due="06-10", lead=["office"], responsible=["role:town"])],
    )
    units = units_toml(unit("office", "县政府办公室"), unit("town-a", "甲镇"), unit("town-b", "乙镇", "town"))
    definition = write(site, "plan.toml", plan)
    units_path = write(site, "units.toml", units + "\n[roles]\n")
    code, _, err = run("validate", str(definition), str(units_path), config=site / "config.toml")
    assert code == 0 and "town-a" in err and "office" not in err  # town-a owes nothing; office leads
    units_path.write_text(units + '\n[roles]\ntown = ["town-b", "town-a"]\n', encoding="utf-8")
    code, _, err = run("validate", str(definition), str(units_path), config=site / "config.toml")
    assert code == 1 and 'unit "town-b" holds role "town" itself' in err
    units_path.write_text(
        units.replace('"town"]', '"township"]') + '\n[roles]\ntown = ["town-b", "town-a"]\n', encoding="utf-8"
    )
    code, _, err = run("validate", str(definition), str(units_path), config=site / "config.toml")
    assert (code, err) == (
        1,
        f'{units_path}:{line_of(units_path, "township")}: units[2].roles[0]: role "township" is not used by mini '
        '(did you mean "town"?)\n',
    )


# -- point 2: a plan fits a smaller county -------------------------------------------------------------

MISSING = [  # the pilot's roles the county has no unit for, each with how many tasks need it
    ("supervision_bureau", 23),
    ("information_office", 9),
    ("court", 3),
    ("complaint_center", 3),
    ("administrative_service_center", 5),
    ("human_resources_bureau", 4),
    ("inspection_office", 10),
    ("staffing_office", 4),
]


def test_a_smaller_county_is_told_once_per_missing_role_with_the_tasks_that_need_it(site: Path) -> None:
    units = write(site, "units.toml", county_units())
    code, _, err = pilot(site, "validate", units)
    assert code == 1
    lines = error_lines(err)
    assert len(lines) == len(MISSING)
    for role, tasks in MISSING:
        (line,) = [line for line in lines if f'has role "{role}"' in line]
        assert f", which {tasks} tasks need: " in line
        assert line.endswith(FIX.format(role=role, units=units)), line
        assert "did you mean" not in line  # 监察局's role is not the county's justice_bureau
    supervision = next(line for line in lines if '"supervision_bureau"' in line)
    assert "T01 建立健全行政决策机制 (lead), T02 建立健全决策后评估机制 (lead)" in supervision
    assert supervision.split(" more: ")[1].startswith("T10, T11, ")
    assert "D10" in supervision


def test_the_roles_table_makes_the_pilot_fit_the_county(site: Path) -> None:
    units = write(site, "units.toml", county_units(extra=COUNTY_ROLES))
    code, out, err = pilot(site, "validate", units)
    assert (code, err) == (0, ""), err
    assert out.startswith("ok: 1 definition (rule-of-law-pilot), 1 units file (12 units)")
    code, out, err = pilot(site, "plan", units, "--year", "2026", "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    t15 = [
        r for r in rows if r["task"] == "T15"
    ]  # lead: supervision_bureau, court, justice_bureau, complaint_center
    assert t15 and all(r["lead"] == ["justice-bureau", "county-office"] for r in t15)
    t21 = {r["unit"] for r in rows if r["task"] == "T21"}  # lead includes information_office
    assert next(r["lead"] for r in rows if r["task"] == "T21")[:2] == ["county-office", "justice-bureau"]
    assert len(t21) == 11  # responsible: the three bureaus and eight townships


PLAN = plan_toml(
    workflow(
        "fit",
        "小县方案",
        contact="role:office",
        escalation=[{"after": "1wd", "to": "lead"}, {"after": "3wd", "to": "role:supervision_bureau"}],
    ),
    tasks=[
        task("T1", "决策机制", due="06-10", lead=["role:supervision_bureau"], responsible=["role:town"]),
        task(
            "T2",
            "行政调解",
            due="06-12",
            lead=["role:court"],
            responsible=["role:town", "role:court"],
            escalation=[{"after": "2wd", "to": "role:court"}],  # absent: the office is told
        ),
        task("T3", "信息公开", due="06-15", lead=["role:office"], responsible=["role:information_office"]),
    ],
    evaluation={
        "subjects": ["role:town", "role:information_office"],
        "recipients": ["role:supervision_bureau"],
    },
)
FIT_UNITS = units_toml(
    unit("office", "县政府办公室", "office"),
    unit("discipline", "县纪委监委", "discipline_office"),
    unit("town-b", "南塘镇", "town"),
    unit("town-c", "东溪乡", "town"),
    unit("town-a", "北山乡", "town"),
) + (
    "\n[roles]\n"
    'supervision_bureau = "role:discipline_office"\n'
    'information_office = ["town-a", "office"]\n'
    "court = false\n"
)


def test_duban_plan_expands_roles_through_the_roles_table(site: Path) -> None:
    definition = write(site, "plan.toml", PLAN)
    units = write(site, "units.toml", FIT_UNITS)
    code, out, err = run(
        "plan",
        str(definition),
        "--units",
        str(units),
        "--year",
        "2026",
        "--json",
        config=site / "config.toml",
    )
    assert code == 0, err
    rows = [(r["task"], r["unit"], r["lead"]) for r in map(json.loads, out.splitlines())]
    assert rows == [
        ("T1", "town-a", ["discipline"]),  # supervision_bureau → the unit with role discipline_office
        ("T1", "town-b", ["discipline"]),
        ("T1", "town-c", ["discipline"]),
        ("T2", "town-a", ["office"]),  # court is absent: its lead falls to the office, its duty to nobody
        ("T2", "town-b", ["office"]),
        ("T2", "town-c", ["office"]),
        ("T3", "office", ["office"]),  # information_office → two units by id
        ("T3", "town-a", ["office"]),
    ]
    code, _, err = run("validate", str(definition), str(units), config=site / "config.toml")
    assert code == 0, err
    assert err.splitlines() == [
        f"{units}:34: warning: roles.court: no unit here (court = false) in fit: T2 行政调解 (responsible) lose its units",
    ]


def test_a_started_program_follows_the_roles_table(tmp_path: Path) -> None:
    (tmp_path / "plan.toml").write_text(PLAN, encoding="utf-8")
    (tmp_path / "units.toml").write_text(FIT_UNITS, encoding="utf-8")
    bundle = load_bundle(tmp_path / "plan.toml", tmp_path / "units.toml")
    engine = sqlite_engine(tmp_path)
    with transaction(engine) as session:
        start_program(session, bundle, 2026, datetime(2026, 5, 1, tzinfo=UTC))
    with Session(engine) as session:
        owed = sorted((o.task, o.unit, tuple(o.lead)) for o in session.exec(select(Obligation)))
        escalations = {
            (t.task, t.step): tuple(t.recipients)
            for t in session.exec(select(Timer).where(Timer.kind == "escalation"))
        }
    assert owed == [
        ("T1", "town-a", ("discipline",)),
        ("T1", "town-b", ("discipline",)),
        ("T1", "town-c", ("discipline",)),
        ("T2", "town-a", ("office",)),
        ("T2", "town-b", ("office",)),
        ("T2", "town-c", ("office",)),
        ("T3", "office", ("office",)),
        ("T3", "town-a", ("office",)),
    ]
    # the plan's second step goes to role:supervision_bureau, that is the discipline office here;
    # T2's own step to the court, which this county has not, goes to the office
    assert escalations == {
        ("T1", 0): ("discipline",),
        ("T1", 1): ("discipline",),
        ("T2", 0): ("office",),
        ("T3", 0): ("office",),
        ("T3", 1): ("discipline",),
    }
    assert [u for u, _ in subjects_of(bundle, [])] == [
        "office",
        "town-b",
        "town-c",
        "town-a",
    ]  # the file's order
    assert bundle.units.directory.expand_all(bundle.definition.evaluation.recipients) == ("discipline",)


@pytest.mark.parametrize(
    "entry, message",
    [
        ('court = "nobody"', 'roles.court: unknown unit "nobody"'),
        ('court = "role:judge"', 'roles.court: no unit has role "judge"'),
        ('court = "role:town_gov"', 'roles.court: no unit has role "town_gov" (did you mean "town"?)'),
        ('court = ["town-a", "role:court2"]', 'roles.court[1]: no unit has role "court2"'),
        ('court = "role:supervision_bureau"', 'roles.court: "role:supervision_bureau" is mapped here too'),
        ("court = true", "roles.court: true is not a mapping"),
        ("court = []", "roles.court: an empty list: write false for a role this deployment has no unit for"),
        ('court = "bad id!"', 'roles.court[0]: bad target "bad id!"'),
        ('town = "office"', 'roles.town: unit "town-b" holds role "town" itself'),
        ("court = 3", 'roles.court: expected "role:OTHER", a unit id, a list of unit ids, or false (got 3)'),
        ('"法院" = false', 'roles.法院: bad role "法院": use letters, digits, "-" or "_"'),
    ],
)
def test_roles_table_mistakes_are_refused_at_their_line(site: Path, entry: str, message: str) -> None:
    units = write(site, "units.toml", FIT_UNITS.replace("court = false", entry))
    code, _, err = run(
        "validate", str(write(site, "plan.toml", PLAN)), str(units), config=site / "config.toml"
    )
    assert code == 1
    lines = error_lines(err)
    assert any(line.startswith(f"{units}:34: {message}") for line in lines), lines


def test_a_roles_entry_no_plan_uses_is_an_error_with_the_role_it_might_mean(site: Path) -> None:
    units = write(site, "units.toml", FIT_UNITS.replace("court = false", "cuort = false"))
    code, _, err = run(
        "validate", str(write(site, "plan.toml", PLAN)), str(units), config=site / "config.toml"
    )
    assert code == 1
    assert f'{units}:34: roles.cuort: role "cuort" is not used by fit (did you mean "court"?)' in error_lines(
        err
    )


# -- the owes-nothing warning: status and the daemon's log ---------------------------------------------


IDLE_UNIT = '\n[[units]]\nid = "town-idle"\nname = "闲置镇"\nemails = ["idle@example.gov.cn"]\nroles = []\n'


def test_status_names_a_unit_that_owes_nothing_in_any_running_program(duban_env) -> None:
    duban_env.units.write_text(duban_env.units.read_text(encoding="utf-8") + IDLE_UNIT, encoding="utf-8")
    assert duban_env.cli("start", "daemon-test", "--year", "2026").returncode == 0
    result = duban_env.cli("status")
    assert result.returncode == 0, result.stderr
    line = line_of(duban_env.units, "roles = []", after='id = "town-idle"')
    assert (
        f"警告：单位“闲置镇”（town-idle）在运行中的方案（daemon-test）里没有任何督办事项，也不会收到通知："
        f"请检查 {duban_env.units}:{line} 的 roles"
    ) in result.stdout.replace("\n", "")
    report = json.loads(duban_env.cli("status", "--json").stdout)
    assert any("town-idle" in w for w in report["warnings"])


def test_the_daemon_logs_each_unit_that_owes_nothing_at_start_and_on_reload(duban_env) -> None:
    duban_env.units.write_text(duban_env.units.read_text(encoding="utf-8") + IDLE_UNIT, encoding="utf-8")
    daemon = duban_env.start()
    event = daemon.wait_for_event("units.owe_nothing")
    line = line_of(duban_env.units, "roles = []", after='id = "town-idle"')
    assert (event["unit"], event["name"], event["at"]) == ("town-idle", "闲置镇", f"{duban_env.units}:{line}")
    assert event["level"] == "warning"
    daemon.wait_for_event("tick.done")
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_event("reload.done")
    assert sum(e.get("event") == "units.owe_nothing" for e in daemon.events()) == 2
    assert daemon.stop() == 0


def test_the_daemon_refuses_a_unit_role_no_configured_plan_uses(duban_env) -> None:
    duban_env.units.write_text(
        duban_env.units.read_text(encoding="utf-8").replace('"town"]', '"twon"]', 1), encoding="utf-8"
    )
    result = duban_env.cli("run", "--once")
    assert result.returncode == 2
    line = line_of(duban_env.units, '"twon"')
    assert (
        f'{duban_env.units}:{line}: units[1].roles[0]: role "twon" is not used by daemon-test (did you mean "town"?)'
    ) in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_new_plan_checked_against_the_deployments_units_counts_the_plans_it_runs(tmp_path):
    """``duban validate new.toml`` with config.toml's units: the roles the configured programs use are
    in use (no flood of "not used by x"), and a role no plan at all uses is still named."""
    units = tmp_path / "units.toml"
    units.write_text(
        county_units()
        + '\n[[units]]\nid = "lost"\nname = "失联单位"\nemails = ["lost@example.gov.cn"]\n'
        + 'roles = ["township_govenment"]\n',
        encoding="utf-8",
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f'[definitions]\nunits = "{units}"\n\n[[programs]]\nworkflow = "rule-of-law-pilot"\nyear = 2026\n',
        encoding="utf-8",
    )
    new = tmp_path / "new.toml"
    new.write_text(
        '[workflow]\nid = "x"\ntitle = "新方案"\n\n[[tasks]]\nid = "T1"\ntitle = "报送材料"\n'
        'due = "06-10"\nresponsible = ["role:township_government"]\n',
        encoding="utf-8",
    )
    code, _, err = run("validate", str(new), config=config)
    assert code == 1
    lines = error_lines(err)
    assert len(lines) == 1 and 'role "township_govenment"' in lines[0], lines
