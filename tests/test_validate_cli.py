"""``duban validate`` and ``duban plan`` as a user meets them: exit codes, one line per problem, no traceback.

Most runs are in-process (``main(argv)``, fast); the ones that matter as a real program (the
shipped config, a traceback that must not appear) run ``duban`` as a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from orchestrator.cli import main
from workflows.roles import FIX

REPO = Path(__file__).resolve().parent.parent
DUBAN = str(Path(sys.executable).with_name("duban"))
PILOT = REPO / "workflows/definitions/rule_of_law_pilot.toml"
REPORT = REPO / "workflows/definitions/rule_of_law_annual_report.toml"  # the example units serve both plans
EXAMPLE_UNITS = REPO / "examples/units.example.toml"
EXAMPLE_REGISTER = REPO / "examples/normative_documents.example.csv"
EXAMPLE_COUNTS = (
    f"1 units file ({EXAMPLE_UNITS.read_text(encoding='utf-8').count(chr(10) + '[[units]]')} units), "
    f"1 register ({len(EXAMPLE_REGISTER.read_text(encoding='utf-8').strip().splitlines()) - 1} rows)"
)

UNITS = """\
[[units]]
id = "office"
name = "县政府办公室"
emails = ["office@example.gov.cn"]
roles = ["lead_office"]

[[units]]
id = "town-a"
name = "甲镇人民政府"
emails = ["a@example.gov.cn"]
roles = ["town"]
"""

DEFINITION = """\
[workflow]
id = "mini"
title = "测试计划"

[[tasks]]
id = "T01"
title = "报送方案"
due = "06-10"
lead = ["role:lead_office"]
responsible = ["role:town"]
"""

BROKEN_DEFINITION = """\
[workflow]
id = "broken"
titel = "坏的"

[[tasks]]
id = "T01"
title = "报送方案"
due = "02-30"
lead = ["role:lead_office"]
responsible = ["role:township"]
reminders = ["7x"]
"""

BROKEN_UNITS = """\
[[units]]
id = "office"
name = "县政府办公室"
emails = ["office@example"]
roles = ["lead_office"]

[[units]]
id = "office"
name = "甲镇\\n人民政府"
emails = ["a@example.gov.cn"]
roles = ["town"]
"""


def run(*args: str, config: Path | None = None, cwd: Path | None = None) -> tuple[int, str, str]:
    """``duban [--config CONFIG] ARGS`` in this process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved_logging = structlog.get_config()  # the CLI binds structlog to this run's stderr: put it back after
    argv = (["--config", str(config)] if config else []) + list(args)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "200")
        patch.delenv("DUBAN_CONFIG", raising=False)
        if cwd is not None:
            patch.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    structlog.configure(**saved_logging)
    return code, out.getvalue(), err.getvalue()


def run_process(
    *args: str, cwd: Path = REPO, columns: int = 200, fake_now: str = "2025-06-01T09:00:00+08:00"
) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns), "DUBAN_FAKE_NOW": fake_now}
    env.pop("DUBAN_CONFIG", None)
    return subprocess.run([DUBAN, *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A deployment folder: config.toml (no units, no registers), a SQLite URL that must never be made."""
    (tmp_path / "config.toml").write_text('[database]\nurl = "sqlite:///var/duban.db"\n', encoding="utf-8")
    return tmp_path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert not any(line.startswith("duban: ") for line in lines), err  # bare FILE:LINE: message
    return lines


# -- validate: the pilot ------------------------------------------------------------------------------


def test_validate_with_no_arguments_checks_the_shipped_config_and_accepts_the_pilot() -> None:
    result = run_process("validate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"ok: 2 definitions (rule-of-law-annual-report, rule-of-law-pilot), {EXAMPLE_COUNTS}"
    )
    assert result.stderr == ""  # 2025 and 2026 have official schedules


def test_validate_warns_that_the_make_up_days_of_a_year_the_program_touches_are_unknown() -> None:
    result = run_process("validate", fake_now="2026-12-02T09:00:00+08:00")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"duban: 警告：{title} 2026 年度（{workflow}）：2027 年尚无国务院公布的放假安排"
        "（chinese-calendar 只有 2004—2026 年的数据，也未加载日历覆盖文件）：暂按《全国年节及纪念日放假办法》只计法定"
        "节假日，2027 年的调休上班日未知，国务院安排的调休放假也未计入；国务院办公厅公布2027年放假安排后，把 [2027] "
        "写入日历覆盖文件（格式见 examples/calendar-overrides.example.toml），并在 config.toml 的 [definitions] 中以 "
        "calendar_overrides 指向它"
        for workflow, title in (  # the shipped config runs both
            ("rule-of-law-pilot", "法治政府建设指标体系试点"),
            ("rule-of-law-annual-report", "法治政府建设年度报告"),
        )
    ]


def test_validate_the_pilot_with_the_example_units_and_register_named_by_file(site: Path) -> None:
    code, out, err = run(
        "validate",
        str(PILOT),
        str(REPORT),
        str(EXAMPLE_UNITS),
        str(EXAMPLE_REGISTER),
        config=site / "config.toml",
    )
    assert (code, err) == (0, "")
    assert (
        out.strip() == f"ok: 2 definitions (rule-of-law-pilot, rule-of-law-annual-report), {EXAMPLE_COUNTS}"
    )


def test_validate_the_pilot_without_its_register_names_the_anchor(site: Path) -> None:
    code, _, err = run("validate", str(PILOT), str(REPORT), str(EXAMPLE_UNITS), config=site / "config.toml")
    assert code == 1
    (line,) = error_lines(err)
    assert line.startswith(f"{PILOT}:")
    assert line.endswith(
        'duties[3].anchor: no register "normative_documents" given '
        "(use --register normative_documents=FILE.csv or [registers] in config)"
    )
    code, _, err = run(
        "validate",
        str(PILOT),
        str(REPORT),
        str(EXAMPLE_UNITS),
        "--register",
        f"normative_documents={EXAMPLE_REGISTER}",
        config=site / "config.toml",
    )
    assert (code, err) == (0, "")


# -- validate: broken files -----------------------------------------------------------------------------


def test_every_error_of_every_file_as_file_line_message_exit_1(site: Path) -> None:
    definition = write(site, "broken.toml", BROKEN_DEFINITION)
    units = write(site, "units.toml", BROKEN_UNITS)
    code, out, err = run("validate", str(definition), str(units), config=site / "config.toml")
    assert code == 1 and out == ""
    assert error_lines(err) == [
        f'{definition}:3: workflow: unknown key "titel" (did you mean "title"?)',
        f'{definition}:8: tasks[0].due: bad date "02-30": month 2 has no day 30',
        f'{definition}:11: tasks[0].reminders[0]: bad offset "7x": expected a signed number and a unit d (days), '
        'wd (working days) or mo (months), e.g. "-7d", "-3wd", "-6mo"',
        f'{units}:4: units[0].emails[0]: bad email address "office@example": expected e.g. office@example.gov.cn',
        f'{units}:8: units[1].id: duplicate unit id "office" (first at units[0])',
        f"{units}:9: units[1].name: '甲镇\\n人民政府' contains a control character ('\\n'): "
        "it would end up in email headers",
    ]


def test_a_definition_is_checked_against_the_units_file_even_with_problems_of_its_own(site: Path) -> None:
    definition = write(site, "broken.toml", BROKEN_DEFINITION)
    units = write(site, "units.toml", UNITS)
    code, _, err = run("validate", str(definition), str(units), config=site / "config.toml")
    assert code == 1
    lines = error_lines(err)
    assert (
        f'{definition}:10: tasks[0].responsible[0]: no unit in {units} has role "township" (did you mean '
        '"town"?), which 1 task needs: T01 报送方案 (responsible); '
        + FIX.format(role="township", units=units)
        in lines
    )
    assert (
        f'{units}:11: units[1].roles[0]: role "town" is not used by broken (did you mean "township"?)'
        in lines
    )
    assert len(lines) == 5


def test_no_traceback_and_exit_1_from_the_real_program(site: Path) -> None:
    definition = write(site, "broken.toml", BROKEN_DEFINITION)
    result = run_process("validate", str(definition), str(write(site, "units.toml", UNITS)), cwd=site)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 5
    assert result.stdout == ""


def test_debug_shows_the_traceback(site: Path) -> None:
    definition = write(site, "broken.toml", BROKEN_DEFINITION)
    result = run_process("--debug", "validate", str(definition), cwd=site)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "CheckFailed" in result.stderr


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.toml", None, "1: no such file"),
        (
            "other.toml",
            "[server]\nport = 1\n",
            "1: neither a definition ([workflow]), a units file ([[units]]) "
            "nor a calendar override file ([YYYY] sections); top-level keys: server",
        ),
        ("syntax.toml", "[workflow]\nid = \n", "2: TOML syntax: Invalid value (column 6)"),
    ],
)
def test_files_that_cannot_be_checked(site: Path, name: str, content: str | None, message: str) -> None:
    path = site / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code, _, err = run("validate", str(path), config=site / "config.toml")
    assert code == 1
    assert error_lines(err) == [f"{path}:{message}"]


def test_validate_tells_definitions_and_units_apart_by_content_not_by_name(site: Path) -> None:
    units = write(site, "plan.toml", UNITS)
    definition = write(site, "units.txt", DEFINITION)
    code, out, err = run("validate", str(units), str(definition), config=site / "config.toml")
    assert (code, err) == (0, "")
    assert out.strip() == "ok: 1 definition (mini), 1 units file (2 units)"


def test_a_units_file_alone_validates(site: Path) -> None:
    code, out, err = run("validate", str(write(site, "units.toml", UNITS)), config=site / "config.toml")
    assert (code, err) == (0, "")
    assert out.strip() == "ok: 1 units file (2 units)"


def test_a_definition_alone_is_checked_and_warned_about(site: Path) -> None:
    code, out, err = run("validate", str(write(site, "plan.toml", DEFINITION)), config=site / "config.toml")
    assert code == 0
    assert out.strip() == "ok: 1 definition (mini)"
    assert err.strip() == "duban: 警告：没有单位文件：未检查单位和角色的引用，也未检查登记表"


def test_a_definition_alone_is_checked_against_the_configured_units(site: Path) -> None:
    write(site, "units.toml", UNITS.replace('roles = ["town"]', 'roles = ["village"]'))
    config = write(site, "config.toml", '[definitions]\nunits = "units.toml"\n')
    definition = write(site, "plan.toml", DEFINITION)
    code, _, err = run("validate", str(definition), config=config)
    assert code == 1
    units = site / "units.toml"
    assert error_lines(err) == [
        f'{definition}:10: tasks[0].responsible[0]: no unit in {units} has role "town", which 1 task needs: '
        "T01 报送方案 (responsible); " + FIX.format(role="town", units=units),
        f'{units}:11: units[1].roles[0]: role "village" is not used by mini (the plan\'s roles: lead_office, town)',
    ]


def test_two_definitions_with_the_same_workflow_id(site: Path) -> None:
    first = write(site, "a.toml", DEFINITION)
    second = write(site, "b.toml", DEFINITION)
    code, _, err = run(
        "validate", str(first), str(second), str(write(site, "u.toml", UNITS)), config=site / "config.toml"
    )
    assert code == 1
    assert error_lines(err) == [
        f'{second}:2: workflow.id: "mini" is also the id of {first} (ids must be unique)'
    ]


def test_a_broken_calendar_override_file(site: Path) -> None:
    path = write(site, "holidays.toml", '[2027]\nholidays = ["2027-02-30"]\n')
    code, _, err = run("validate", str(path), config=site / "config.toml")
    assert code == 1
    (line,) = error_lines(err)
    assert line.startswith(f'{path}:2: [2027] holidays: "2027-02-30" is not a date')


def test_validate_with_no_arguments_checks_everything_configured(site: Path) -> None:
    folder = site / "definitions"
    folder.mkdir()
    write(folder, "good.toml", DEFINITION)
    broken = write(folder, "broken.toml", "[workflow]\nid = \n")  # not even TOML: must not be skipped
    write(site, "units.toml", UNITS)
    write(site, "docs.csv", "id,title,unit,expires_on\nd1,一,office,2026-01-01\nd1,二,office,2026-01-01\n")
    shutil.copy(EXAMPLE_UNITS, site / "pilot-units.toml")
    config = write(
        site,
        "config.toml",
        '[definitions]\npaths = ["definitions"]\nunits = "units.toml"\n'
        '[registers]\ndocs = "docs.csv"\n'
        '\n[[programs]]\nworkflow = "mini"\n\n[[programs]]\nworkflow = "no-such-plan"\n',
    )
    code, out, err = run("validate", config=config)
    assert code == 1 and out == ""
    lines = error_lines(err)
    assert f"{broken}:2: TOML syntax: Invalid value (column 6)" in lines
    assert f'{site / "docs.csv"}:3: id: duplicate id "d1" (first on line 2)' in lines
    assert any(
        line.startswith(f'{config}:11: programs[1].workflow: unknown workflow "no-such-plan"')
        for line in lines
    )
    # the shipped plans this config does not run are checked by themselves, not against its units
    # (which lack their roles): a county running one plan is not told of another's roles
    assert not any(line.startswith((f"{PILOT}:", f"{REPORT}:")) for line in lines)


def test_validate_and_plan_store_nothing(site: Path) -> None:
    write(site, "units.toml", UNITS)
    definition = write(site, "plan.toml", DEFINITION)
    assert run("validate", str(definition), str(site / "units.toml"), config=site / "config.toml")[0] == 0
    code, _, _ = run(
        "plan",
        str(definition),
        "--units",
        str(site / "units.toml"),
        "--year",
        "2026",
        config=site / "config.toml",
    )
    assert code == 0
    assert sorted(p.name for p in site.iterdir()) == ["config.toml", "plan.toml", "units.toml"]


# -- bad usage: exit 2, one line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["validate", "--bogus"], "duban validate: No such option: --bogus (see `duban validate --help`)"),
        (["plan"], "duban plan: Missing argument 'WORKFLOW'. (see `duban plan --help`)"),
        (["plan", "mini", "--year", "20x6"], 'duban: --year：年份 "20x6" 有误，应为四位数年份，如 2026'),
        (["plan", "mini", "--year", "1066"], "duban: --year：年份 1066 有误，应为四位数年份，如 2026"),
        (["plan", "mini"], "duban: --year：请给出方案年度，如 --year 2026"),
        (
            ["validate", "--register", "novalue"],
            'duban: --register: bad value "novalue", expected NAME=FILE.csv',
        ),
        (
            ["plan", "mini", "--year", "2026", "--register", "a b=x.csv"],
            'duban: --register: bad name "a b": use letters, digits, "-" or "_" (as in the anchor)',
        ),
    ],
)
def test_bad_usage_exits_2_with_one_clear_line(site: Path, args: list[str], message: str) -> None:
    code, out, err = run(*args, config=site / "config.toml")
    assert code == 2
    assert out == ""
    assert err.splitlines() == [message]


def test_bad_usage_from_the_real_program_is_one_line(site: Path) -> None:
    option = "--an-option-name-long-enough-to-wrap-a-narrow-terminal"
    result = run_process("plan", "rule-of-law-pilot", "--year", "20x6", option, cwd=site, columns=40)
    assert result.returncode == 2
    assert result.stderr == f"duban plan: No such option: {option} (see `duban plan --help`)\n"
    result = run_process("plan", str(site / "nope.toml"), "--year", "2026", cwd=site, columns=40)
    assert result.returncode == 2
    assert result.stderr == f"duban: {site / 'nope.toml'}: no such definition file\n"


# -- plan --------------------------------------------------------------------------------------------------


def test_plan_with_an_unknown_workflow_lists_the_known_ids(site: Path) -> None:
    code, out, err = run(
        "plan", "rule-of-law", "--units", str(EXAMPLE_UNITS), "--year", "2026", config=site / "config.toml"
    )
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        'duban: unknown workflow "rule-of-law" (known: rule-of-law-annual-report, rule-of-law-pilot; or give the path of a definition file)'
    ]


def test_plan_names_a_broken_file_in_the_definition_folders(site: Path) -> None:
    folder = site / "definitions"
    folder.mkdir()
    broken = write(folder, "mine.toml", "[workflow\n")
    config = write(site, "config.toml", '[definitions]\npaths = ["definitions"]\n')
    code, _, err = run("plan", "mine", "--units", str(EXAMPLE_UNITS), "--year", "2026", config=config)
    assert code == 2
    assert err.splitlines() == [
        f'duban: unknown workflow "mine" (known: rule-of-law-annual-report, rule-of-law-pilot; not readable as a definition: {broken} '
        "(run duban validate); or give the path of a definition file)"
    ]


def test_plan_with_a_definition_file_path(site: Path) -> None:
    write(site, "units.toml", UNITS)
    definition = write(site, "plan.toml", DEFINITION)
    code, out, err = run(
        "plan",
        str(definition),
        "--units",
        str(site / "units.toml"),
        "--year",
        "2026",
        "--json",
        config=site / "config.toml",
    )
    assert (code, err) == (0, "")
    assert [json.loads(line) for line in out.splitlines()] == [
        {
            "workflow": "mini",
            "task": "T01",
            "title": "报送方案",
            "phase": None,
            "unit": "town-a",
            "lead": ["office"],
            "occurrence": None,
            "opens": "2026-05-11",
            "due": "2026-06-10",
        }
    ]


def test_plan_with_a_missing_definition_path_or_units_file(site: Path) -> None:
    code, _, err = run(
        "plan",
        str(site / "nope.toml"),
        "--units",
        str(EXAMPLE_UNITS),
        "--year",
        "2026",
        config=site / "config.toml",
    )
    assert (code, err.splitlines()) == (2, [f"duban: {site / 'nope.toml'}: no such definition file"])
    code, _, err = run(
        "plan",
        str(PILOT),
        "--units",
        str(site / "nope.toml"),
        "--year",
        "2026",
        "--register",
        f"normative_documents={EXAMPLE_REGISTER}",
        config=site / "config.toml",
    )
    assert (code, error_lines(err)) == (2, [f"{site / 'nope.toml'}:1: no such file"])


def test_plan_without_a_units_file(site: Path) -> None:
    code, _, err = run("plan", "rule-of-law-pilot", "--year", "2026", config=site / "config.toml")
    assert (code, err.splitlines()) == (
        2,
        ["duban: --units: no units file given and none configured ([definitions] units in config)"],
    )


def test_plan_with_a_broken_units_file_reports_every_problem(site: Path) -> None:
    units = write(site, "units.toml", BROKEN_UNITS)
    definition = write(site, "plan.toml", DEFINITION)
    code, out, err = run(
        "plan", str(definition), "--units", str(units), "--year", "2026", config=site / "config.toml"
    )
    assert code == 2 and out == ""  # bad input (the README's exit codes); `validate` says 1: check failed
    assert len(error_lines(err)) == 3


def test_plan_table_reads_in_chinese_with_names_and_the_working_day_mark(site: Path) -> None:
    write(site, "units.toml", UNITS)
    definition = write(site, "plan.toml", DEFINITION.replace('due = "06-10"', 'due = "05-30"'))
    code, out, err = run(
        "plan",
        str(definition),
        "--units",
        str(site / "units.toml"),
        "--year",
        "2026",
        config=site / "config.toml",
    )
    assert (code, err) == (0, "")
    assert "测试计划 · 2026年 · 1 项督办事项" in out
    assert "2026-06-01*" in out  # 05-30 is a Saturday
    assert "甲镇人民政府" in out and "县政府办公室" in out and "报送方案" in out
    assert "顺延至下一个工作日" in out


def test_the_same_file_twice_counts_once_and_a_valid_override_file_is_recognised(site: Path) -> None:
    definition = write(site, "plan.toml", DEFINITION)
    units = write(site, "units.toml", UNITS)
    holidays = write(site, "holidays.toml", '[2027]\nholidays = ["2027-01-01"]\nworkdays = []\n')
    code, out, err = run(
        "validate",
        str(definition),
        str(site / "." / "plan.toml"),
        str(units),
        str(holidays),
        config=site / "config.toml",
    )
    assert (code, err) == (0, "")
    assert out.strip() == "ok: 1 definition (mini), 1 units file (2 units), 1 calendar override file"


def test_an_empty_file_fails_validate_as_it_fails_plan(site: Path) -> None:
    path = write(site, "plan.toml", '# [workflow]\n# id = "mini"\n')
    code, out, err = run(
        "validate", str(path), str(write(site, "units.toml", UNITS)), config=site / "config.toml"
    )
    assert (code, out) == (1, "")
    assert error_lines(err) == [
        f"{path}:1: empty file (only comments?): expected a definition ([workflow]), a units file "
        "([[units]]) or a calendar override file ([YYYY] sections)"
    ]
    code, _, err = run(
        "plan", str(path), "--units", str(site / "units.toml"), "--year", "2026", config=site / "config.toml"
    )
    assert code == 2 and error_lines(err) == [
        f"{path}:1: empty file: expected a definition with a [workflow] table"
    ]


def test_a_folder_is_validated_file_by_file(site: Path) -> None:
    folder = site / "inputs"
    folder.mkdir()
    write(folder, "plan.toml", DEFINITION)
    write(folder, "units.toml", UNITS)
    write(folder, "docs.csv", "id,title,unit,expires_on\nd1,一,office,2026-01-01\n")
    code, out, err = run("validate", str(folder), config=site / "config.toml")
    assert (code, err) == (0, "")
    assert out.strip() == "ok: 1 definition (mini), 1 units file (2 units), 1 register (1 row)"


def test_half_width_punctuation_between_chinese_characters_is_a_located_warning(site: Path) -> None:
    tmp_path = site
    text = DEFINITION.replace(
        'title = "报送方案"', 'title = "理清乡(镇)公共服务事项,报送方案"\nsection = "(三)行政监督"'
    )
    definition = write(tmp_path, "mini.toml", text)
    units = write(tmp_path, "units.toml", UNITS)
    code, out, err = run("validate", str(definition), str(units), config=tmp_path / "config.toml")
    assert code == 0, err  # a warning: the files are usable
    assert out.startswith("ok: 1 definition (mini)")
    assert err.splitlines() == [
        f'{definition}:7: warning: half-width "(" ")" "," between Chinese characters (= "理清乡(镇)公共服务): '
        'use "（" "）" "，"',
        f'{definition}:8: warning: half-width ")" between Chinese characters (= "(三)行政监督"): use "）"',
    ]
    clean = write(
        tmp_path, "clean.toml", DEFINITION.replace("报送方案", "理清乡（镇）公共服务事项，报送方案")
    )
    code, _, err = run("validate", str(clean), str(units), config=tmp_path / "config.toml")
    assert (code, err) == (0, "")


def test_the_pilot_has_no_half_width_punctuation_between_chinese_characters() -> None:
    from workflows.punctuation import half_width_warnings

    pilot = REPO / "workflows" / "definitions" / "rule_of_law_pilot.toml"
    assert [str(w) for w in half_width_warnings(pilot)] == []


def test_a_line_number_between_colons_is_never_an_emoji(tmp_path):
    """Rich reads ``:100:`` as the emoji code of 💯: ``FILE:100: message`` printed as ``FILE💯 …``."""
    folder = tmp_path / ":smile:"
    folder.mkdir()
    plan = folder / ":100:.toml"
    plan.write_text('[workflow]\nid = "x"\ntitle = "t"\n' + "# …\n" * 96 + "bogus = 1\n", encoding="utf-8")
    code, _, err = run("validate", str(plan))
    assert code == 1
    assert f"{plan}:100: workflow: unknown key" in err
    assert "💯" not in err and "😄" not in err
