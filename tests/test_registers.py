"""Registers: CSV files of the deployment (id,title,unit,<date column>) that anchored duties hang on."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from workflows.calendar import make_calendar
from workflows.catalog import load_bundle
from workflows.errors import DefinitionError
from workflows.loader import load_units
from workflows.plan import plan
from workflows.registers import check_register, load_register

UNITS = """\
[[units]]
id = "legal"
name = "县政府法制办"
emails = ["fzb@example.gov.cn"]
roles = ["legal_affairs_office"]

[[units]]
id = "police"
name = "县公安局"
emails = ["gaj@example.gov.cn"]
roles = ["law_enforcement_agency"]

[[units]]
id = "town-a"
name = "甲镇人民政府"
emails = ["a@example.gov.cn"]
roles = ["township_government"]
"""

DEFINITION = """\
[workflow]
id = "mini"
title = "测试计划"

[[duties]]
id = "D04"
title = "规范性文件有效期届满前评估"
anchor = "register:docs.expires_on"
window = "-6mo"
lead = ["role:legal_affairs_office"]
"""

REGISTER = """\
id,title,unit,expires_on
doc-1,县政府第17号令 管理办法,legal,2026-12-31
doc-2,"县公发〔2021〕3号 关于加强停放秩序管理的通告, 试行",police,2026-10-01
doc-3,城管规定,town-a,2026-08-15

doc-4,明年到期的文件,police,2027-03-31
doc-5,去年到期的文件,town-a,2025-11-30
doc-6,五月底,legal,2026-05-30
"""


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def load_problems(path: Path, name: str = "docs") -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        load_register(name, path)
    return [str(p).removeprefix(f"{path}:") for p in caught.value.problems]


def check_problems(tmp_path: Path, text: str, column: str = "expires_on") -> list[str]:
    path = write(tmp_path, "docs.csv", text)
    units = load_units(write(tmp_path, "units.toml", UNITS)).directory
    return [
        str(p).removeprefix(f"{path}:") for p in check_register(load_register("docs", path), column, units)
    ]


def test_a_register_loads_with_each_rows_first_line(tmp_path: Path) -> None:
    register = load_register("docs", write(tmp_path, "docs.csv", REGISTER))
    assert register.columns == ("id", "title", "unit", "expires_on")
    assert [(r.id, r.unit, r.line) for r in register.rows] == [
        ("doc-1", "legal", 2),
        ("doc-2", "police", 3),
        ("doc-3", "town-a", 4),
        ("doc-4", "police", 6),  # after a blank line
        ("doc-5", "town-a", 7),
        ("doc-6", "legal", 8),
    ]
    assert register.rows[1].title == "县公发〔2021〕3号 关于加强停放秩序管理的通告, 试行"


def test_a_quoted_field_spanning_lines_is_refused_and_later_lines_stay_right(tmp_path: Path) -> None:
    text = 'id,title,unit,expires_on\nd1,"两行\n标题",legal,2026-01-01\nd1,三,legal,2026-02-01\n'
    assert load_problems(write(tmp_path, "docs.csv", text)) == [
        "2: title: '两行\\n标题' contains a control character ('\\n'): it would end up in email headers",
        '4: id: duplicate id "d1" (first on line 2)',
    ]


def test_a_byte_order_mark_and_windows_line_ends_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "docs.csv", REGISTER.replace("\n", "\r\n"), encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    register = load_register("docs", path)
    assert register.columns[0] == "id"
    assert [r.line for r in register.rows] == [2, 3, 4, 6, 7, 8]


def test_missing_and_duplicate_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "docs.csv", "id,name,expires_on,expires_on\nd1,x,2026-01-01,2026-01-01\n")
    assert load_problems(path) == [
        '1: register "docs": duplicate column "expires_on"',
        '1: register "docs": missing column(s) title, unit (header: id,name,expires_on,expires_on)',
    ]


def test_duplicate_and_empty_ids_and_wrong_field_counts(tmp_path: Path) -> None:
    text = (
        "id,title,unit,expires_on\n"
        "d1,一,legal,2026-01-01\n"
        "d2,二,legal\n"
        "d1,三,legal,2026-02-01\n"
        ",四,legal,2026-03-01\n"
        "d5,五\x00,legal,2026-03-01\n"
    )
    assert load_problems(write(tmp_path, "docs.csv", text)) == [
        "3: expected 4 fields (id,title,unit,expires_on), found 3",
        '4: id: duplicate id "d1" (first on line 2)',
        "5: id: empty",
        "6: title: '五\\x00' contains a control character ('\\x00'): it would end up in email headers",
    ]


def test_bad_dates_and_unknown_units_at_their_csv_lines(tmp_path: Path) -> None:
    text = (
        "id,title,unit,expires_on\n"
        "d1,一,legal,2026-02-30\n"
        "\n"
        "d2,二,polce,2026-06-30\n"
        "d3,三,legal,2026/06/30\n"
        "d4,四,legal,20260630\n"
        "d5,五,legal,\n"
        "d6,六,legal,2026-06-30\n"
    )
    assert check_problems(tmp_path, text) == [
        '2: expires_on: bad date "2026-02-30", expected YYYY-MM-DD',
        '4: unit: unknown unit "polce" (did you mean "police"?)',
        '5: expires_on: bad date "2026/06/30", expected YYYY-MM-DD',
        '6: expires_on: bad date "20260630", expected YYYY-MM-DD',
        "7: expires_on: empty, expected YYYY-MM-DD",
    ]


def test_an_anchor_column_the_register_does_not_have(tmp_path: Path) -> None:
    assert check_problems(tmp_path, REGISTER, column="expiry") == [
        '1: register "docs" has no column "expiry" (date columns: expires_on)'
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", 'register "docs": empty file, expected a header row: id,title,unit,<date column>'),
        (b"\n\n", 'register "docs": empty file, expected a header row: id,title,unit,<date column>'),
        (
            "任务".encode("gbk") + b",title,unit\n",
            'register "docs": not UTF-8 text (byte 0xc8): save the file as UTF-8 CSV',
        ),
    ],
)
def test_files_that_are_not_registers(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "docs.csv"
    path.write_bytes(content)
    assert load_problems(path) == [f"1: {message}"]


def test_a_missing_register_file(tmp_path: Path) -> None:
    assert load_problems(tmp_path / "nope.csv") == ['1: register "docs": no such file']


def test_a_header_only_register_is_valid_and_empty(tmp_path: Path) -> None:
    assert load_register("docs", write(tmp_path, "docs.csv", "id,title,unit,expires_on\n")).rows == ()


# -- anchored duties in the plan ---------------------------------------------------------------------


def bundle(tmp_path: Path, register_text: str = REGISTER, definition: str = DEFINITION):
    return load_bundle(
        write(tmp_path, "plan.toml", definition),
        write(tmp_path, "units.toml", UNITS),
        {"docs": write(tmp_path, "docs.csv", register_text)},
    )


def test_an_anchored_duty_yields_one_obligation_per_row_due_in_the_year(tmp_path: Path) -> None:
    b = bundle(tmp_path)
    occurrences = plan(b.definition, b.units.directory, 2026, b.calendar, b.registers)
    got = [(o.occurrence, o.unit, o.opens, o.due, o.nominal_due) for o in occurrences]
    assert got == [
        # 05-30 is a Saturday: due the Monday after; opens 6 months before the anchor (11-30, a Sunday → 12-01)
        ("doc-6", "legal", date(2025, 12, 1), date(2026, 6, 1), date(2026, 5, 30)),
        # 08-15 is a Saturday: due 08-17; 02-15 is in the Spring Festival holiday: opens 02-24
        ("doc-3", "town-a", date(2026, 2, 24), date(2026, 8, 17), date(2026, 8, 15)),
        # 10-01 is National Day: due 10-08, the first working day after the holiday
        ("doc-2", "police", date(2026, 4, 1), date(2026, 10, 8), date(2026, 10, 1)),
        ("doc-1", "legal", date(2026, 6, 30), date(2026, 12, 31), date(2026, 12, 31)),
    ]
    assert all(o.task == "D04" and o.lead == ("legal",) and o.phase is None for o in occurrences)


def test_rows_due_in_another_year_belong_to_that_years_plan(tmp_path: Path) -> None:
    b = bundle(tmp_path)
    occurrences_2027 = plan(b.definition, b.units.directory, 2027, make_calendar("weekdays"), b.registers)
    assert [(o.occurrence, o.due) for o in occurrences_2027] == [("doc-4", date(2027, 3, 31))]
    occurrences_2025 = plan(b.definition, b.units.directory, 2025, b.calendar, b.registers)
    assert [(o.occurrence, o.due) for o in occurrences_2025] == [("doc-5", date(2025, 12, 1))]  # 11-30 Sunday


def test_an_anchor_whose_register_is_not_given_is_an_error_at_the_anchor(tmp_path: Path) -> None:
    definition = write(tmp_path, "plan.toml", DEFINITION)
    with pytest.raises(DefinitionError) as caught:
        load_bundle(definition, write(tmp_path, "units.toml", UNITS), {"other": tmp_path / "other.csv"})
    assert [str(p) for p in caught.value.problems] == [
        f'{definition}:8: duties[0].anchor: no register "docs" given '
        "(use --register docs=FILE.csv or [registers] in config)"
    ]


def test_a_register_with_bad_rows_stops_the_bundle_with_every_problem(tmp_path: Path) -> None:
    text = REGISTER.replace("legal,2026-12-31", "legl,2026-12-32").replace(
        "town-a,2026-08-15", "town-a,08-15"
    )
    with pytest.raises(DefinitionError) as caught:
        bundle(tmp_path, register_text=text)
    csv_path = tmp_path / "docs.csv"
    assert [str(p) for p in caught.value.problems] == [
        f'{csv_path}:2: expires_on: bad date "2026-12-32", expected YYYY-MM-DD',
        f'{csv_path}:2: unit: unknown unit "legl" (did you mean "legal"?)',
        f'{csv_path}:4: expires_on: bad date "08-15", expected YYYY-MM-DD',
    ]


def test_only_the_registers_a_definition_names_are_read(tmp_path: Path) -> None:
    b = load_bundle(
        write(tmp_path, "plan.toml", DEFINITION),
        write(tmp_path, "units.toml", UNITS),
        {"docs": write(tmp_path, "docs.csv", REGISTER), "unused": tmp_path / "missing.csv"},
    )
    assert set(b.registers) == {"docs"}
