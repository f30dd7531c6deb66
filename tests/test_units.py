"""Units files: ids, names, addresses and roles checked; ``role:X`` expands to every unit with role X."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflows.calendar import make_calendar
from workflows.errors import DefinitionError
from workflows.loader import check_definition_against, load_definition, load_units
from workflows.plan import plan
from workflows.roles import FIX
from workflows.units import UnitDirectory

UNITS = """\
[[units]]
id = "legal"
name = "县政府法制办"
emails = ["fzb@example.gov.cn"]
roles = ["legal_affairs_office", "leading_group_office"]

[[units]]
id = "town-a"
name = "甲镇人民政府"
emails = ["a@example.gov.cn", "a.office@example.cn"]
roles = ["township_government"]

[[units]]
id = "town-b"
name = "乙乡人民政府"
emails = ["b@example.gov.cn"]
roles = ["township_government", "law_enforcement_agency"]

[[units]]
id = "police"
name = "县公安局"
emails = ["gaj@example.gov.cn"]
roles = ["law_enforcement_agency"]
"""

DEFINITION = """\
[workflow]
id = "mini"
title = "测试计划"

[[tasks]]
id = "T01"
title = "报送方案"
due = "06-10"
lead = ["role:legal_affairs_office"]
responsible = ["role:township_government", "role:law_enforcement_agency", "police"]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def unit_problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, "units.toml", text)
    with pytest.raises(DefinitionError) as caught:
        load_units(path)
    return [str(p).removeprefix(f"{path}:") for p in caught.value.problems]


def one_unit(**fields: str) -> str:
    values = {
        "id": '"u1"',
        "name": '"县审计局"',
        "emails": '["sjj@example.gov.cn"]',
        "roles": '["audit"]',
    } | fields
    return "[[units]]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())


def test_a_valid_units_file_loads_in_file_order(tmp_path: Path) -> None:
    units = load_units(write(tmp_path, "units.toml", UNITS))
    directory = units.directory
    assert [u.id for u in directory.units] == ["legal", "town-a", "town-b", "police"]
    assert list(directory.by_id["town-a"].emails) == ["a@example.gov.cn", "a.office@example.cn"]
    assert directory.by_role["law_enforcement_agency"] == ("town-b", "police")
    assert directory.name("police") == "县公安局"


@pytest.mark.parametrize(
    "address, message",
    [
        ("a@b", 'bad email address "a@b": expected e.g. office@example.gov.cn'),
        ("no-at", 'bad email address "no-at": expected exactly one "@", e.g. office@example.gov.cn'),
        ("x@@y.cn", 'bad email address "x@@y.cn": expected exactly one "@", e.g. office@example.gov.cn'),
        ("fa zhi@example.gov.cn", 'bad email address "fa zhi@example.gov.cn": it contains a space'),
        (" fzb@example.gov.cn", 'bad email address " fzb@example.gov.cn": it contains a space'),
        (
            "县<fzb@example.gov.cn>",
            'bad email address "县<fzb@example.gov.cn>": expected e.g. office@example.gov.cn',
        ),
        ("fzb@example..cn", 'bad email address "fzb@example..cn": expected e.g. office@example.gov.cn'),
        ("", 'bad email address "": expected exactly one "@", e.g. office@example.gov.cn'),
    ],
)
def test_bad_addresses_are_refused_at_their_line(tmp_path: Path, address: str, message: str) -> None:
    text = one_unit(emails=f'[\n  "ok@example.gov.cn",\n  "{address}",\n]')
    assert unit_problems(tmp_path, text) == [f"6: units[0].emails[1]: {message}"]


@pytest.mark.parametrize(
    "escape, shown",
    [("\\n", "\\n"), ("\\r", "\\r"), ("\\u0000", "\\x00"), ("\\u2028", "\\u2028"), ("\\t", "\\t")],
)
def test_control_characters_in_names_and_addresses_are_refused(
    tmp_path: Path, escape: str, shown: str
) -> None:
    text = one_unit(name=f'"县审计局{escape}"', emails=f'["sjj@example.gov.cn{escape}"]')
    problems = unit_problems(tmp_path, text)
    assert problems == [
        f"3: units[0].name: '县审计局{shown}' contains a control character ('{shown}'): "
        "it would end up in email headers",
        f"4: units[0].emails[0]: 'sjj@example.gov.cn{shown}' contains a control character ('{shown}'): "
        "it would end up in email headers",
    ]


def test_a_trailing_line_break_is_refused_not_trimmed(tmp_path: Path) -> None:
    text = one_unit(name='"""\n县审计局\n"""')
    (problem,) = unit_problems(tmp_path, text)
    assert problem.startswith("3: units[0].name: '县审计局\\n' contains a control character")


def test_duplicate_unit_ids_and_addresses(tmp_path: Path) -> None:
    text = one_unit(emails='["a@example.cn", "a@example.cn"]') + "\n" + one_unit(name='"另一个"')
    assert unit_problems(tmp_path, text) == [
        '4: units[0].emails[1]: duplicate address "a@example.cn"',
        '8: units[1].id: duplicate unit id "u1" (first at units[0])',
    ]


def test_bad_ids_roles_and_missing_fields(tmp_path: Path) -> None:
    text = (
        one_unit(id='"审计局"', roles='["audit office"]') + "\n[[units]]\n" + 'id = "u2"\n' + "emails = []\n"
    )
    assert unit_problems(tmp_path, text) == [
        '2: units[0].id: bad unit id "审计局": use letters, digits, "-", "_" or "."',
        '5: units[0].roles[0]: bad role "audit office": use letters, digits, "-" or "_"',
        "7: units[1].name: required key is missing",
        "9: units[1].emails: must not be empty",
    ]


def test_unknown_keys_are_errors_with_a_hint(tmp_path: Path) -> None:
    text = one_unit().replace("emails =", "email =") + '\n[[unit]]\nid = "x"\n'
    assert unit_problems(tmp_path, text) == [
        '4: units[0]: unknown key "email" (did you mean "emails"?)',
        '7: unknown key "unit" (did you mean "units"?)',
    ]


def test_an_address_given_as_a_string_not_a_list(tmp_path: Path) -> None:
    text = one_unit(emails='"sjj@example.gov.cn"')
    assert unit_problems(tmp_path, text) == [
        '4: units[0].emails: expected a list, e.g. ["a", "b"], got "sjj@example.gov.cn"'
    ]


@pytest.mark.parametrize("text", ["", "# 没有单位\n"])
def test_an_empty_units_file(tmp_path: Path, text: str) -> None:
    assert unit_problems(tmp_path, text) == ["1: empty file: expected [[units]] tables"]


def test_a_units_file_with_an_empty_list(tmp_path: Path) -> None:
    assert unit_problems(tmp_path, "units = []\n") == ["1: units: must not be empty"]


def test_every_problem_of_a_units_file_at_once(tmp_path: Path) -> None:
    text = (
        one_unit(emails='["a@b"]')
        + "\n"
        + one_unit(id='"u2"', name='"x\\ny"')
        + "\n"
        + one_unit(id='"u2"', roles='"audit"')
    )
    assert unit_problems(tmp_path, text) == [
        '4: units[0].emails[0]: bad email address "a@b": expected e.g. office@example.gov.cn',
        "9: units[1].name: 'x\\ny' contains a control character ('\\n'): it would end up in email headers",
        '14: units[2].id: duplicate unit id "u2" (first at units[1])',
        '17: units[2].roles: expected a list, e.g. ["a", "b"], got "audit"',
    ]


# -- role expansion ---------------------------------------------------------------------------------


def test_expand_roles_and_ids() -> None:
    from workflows.units import Unit

    directory = UnitDirectory(
        (
            Unit(id="a", name="甲", emails=["a@example.cn"], roles=["x", "y"]),
            Unit(id="b", name="乙", emails=["b@example.cn"], roles=["y"]),
        )
    )
    assert directory.expand("role:y") == ("a", "b")
    assert directory.expand("role:x") == ("a",)
    assert directory.expand("role:z") == ()
    assert directory.expand("b") == ("b",)
    assert directory.expand("c") == ()
    assert directory.expand_all(["role:y", "a", "role:x"]) == ("a", "b")


def test_every_unit_with_the_role_gets_its_own_obligation(tmp_path: Path) -> None:
    units = load_units(write(tmp_path, "units.toml", UNITS))
    loaded = load_definition(write(tmp_path, "plan.toml", DEFINITION))
    assert check_definition_against(loaded, units) == []
    occurrences = plan(loaded.definition, units.directory, 2026, make_calendar("cn-workdays"))
    # town-b holds both roles and police is named twice (by role and by id): one obligation each.
    assert [(o.task, o.unit, o.lead) for o in occurrences] == [
        ("T01", "police", ("legal",)),
        ("T01", "town-a", ("legal",)),
        ("T01", "town-b", ("legal",)),
    ]


def test_a_role_no_unit_has_is_an_error_at_the_definitions_line(tmp_path: Path) -> None:
    units_path = write(tmp_path, "units.toml", UNITS)
    text = DEFINITION.replace(
        'responsible = ["role:township_government", "role:law_enforcement_agency", "police"]',
        'responsible = [\n  "role:township_government",\n  "role:township",\n  "role:court",\n]',
    )
    definition_path = write(tmp_path, "plan.toml", text)
    problems = check_definition_against(load_definition(definition_path), load_units(units_path))
    assert [str(p) for p in problems] == [
        f'{definition_path}:12: tasks[0].responsible[1]: no unit in {units_path} has role "township" '
        '(did you mean "township_government"?), which 1 task needs: T01 报送方案 (responsible); '
        + FIX.format(role="township", units=units_path),
        f'{definition_path}:13: tasks[0].responsible[2]: no unit in {units_path} has role "court", '
        "which 1 task needs: T01 报送方案 (responsible); " + FIX.format(role="court", units=units_path),
    ]


def test_an_unknown_unit_id_is_an_error_everywhere_units_are_named(tmp_path: Path) -> None:
    units_path = write(tmp_path, "units.toml", UNITS)
    text = (
        DEFINITION.replace('title = "测试计划"', 'title = "测试计划"\ncontact = "legl"')
        .replace('"police"]', '"polce"]')
        .replace(
            'lead = ["role:legal_affairs_office"]',
            'lead = ["role:legal_affairs_office"]\nescalation = [{ after = "1wd", to = ["lead", "nobody"] }]',
        )
        + '\n[evaluation]\nsubjects = ["role:township_government"]\nrecipients = ["role:inspection_office"]\n'
    )
    definition_path = write(tmp_path, "plan.toml", text)
    problems = check_definition_against(load_definition(definition_path), load_units(units_path))
    assert [str(p).removeprefix(f"{definition_path}:") for p in problems] == [
        f'4: workflow.contact: unknown unit "legl" (not in {units_path}; did you mean "legal"?)',
        f'11: tasks[0].escalation[0].to[1]: unknown unit "nobody" (not in {units_path})',
        f'12: tasks[0].responsible[2]: unknown unit "polce" (not in {units_path}; did you mean "police"?)',
        f'16: evaluation.recipients[0]: no unit in {units_path} has role "inspection_office", '
        "which the plan needs: [evaluation] recipients; "
        + FIX.format(role="inspection_office", units=units_path),
    ]


def test_the_example_units_file_holds_every_role_the_pilot_uses() -> None:
    units = load_units(Path("examples/units.example.toml"))
    loaded = load_definition(Path("workflows/definitions/rule_of_law_pilot.toml"))
    from workflows.catalog import load_registers

    registers = load_registers({"normative_documents": Path("examples/normative_documents.example.csv")})
    assert check_definition_against(loaded, units, registers) == []
    for unit in units.directory.units:
        assert all(
            address.endswith((".example.gov.cn", "@example.gov.cn", "@example.cn")) for address in unit.emails
        )
    assert 18 <= len(units.directory.by_role["law_enforcement_agency"]) <= 25
    assert 8 <= len(units.directory.by_role["township_government"]) <= 12


def test_indicator_reporters_are_checked_too(tmp_path: Path) -> None:
    units_path = write(tmp_path, "units.toml", UNITS)
    text = (
        DEFINITION
        + 'indicators = [{ id = "rate", name = "率", target = ">= 90%", reported_by = ["role:county"] }]\n'
    )
    definition_path = write(tmp_path, "plan.toml", text)
    problems = check_definition_against(load_definition(definition_path), load_units(units_path))
    assert [str(p) for p in problems] == [
        f'{definition_path}:11: tasks[0].indicators[0].reported_by[0]: no unit in {units_path} has role "county", '
        "which 1 task needs: T01 报送方案 (reported_by); " + FIX.format(role="county", units=units_path)
    ]


def test_a_unit_may_name_its_contact_person_and_phone(tmp_path: Path) -> None:
    text = one_unit(contact='"王敏"', phone='"0571-8888 1234转801"')
    units = load_units(write(tmp_path, "units.toml", text))
    (unit,) = units.directory.units
    assert (unit.contact, unit.phone) == ("王敏", "0571-8888 1234转801")
    assert load_units(write(tmp_path, "plain.toml", one_unit())).directory.units[0].contact is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"phone": '"call me"'}, 'units[0].phone: bad phone "call me": expected e.g. "0571-8888 1234"'),
        ({"contact": '"王敏\\n"'}, "units[0].contact: '王敏\\n' contains a control character"),
        ({"phone": '"0571\\u2028123"'}, "units[0].phone: '0571\\u2028123' contains a control character"),
    ],
)
def test_bad_contacts_and_phones_are_refused_at_their_line(
    tmp_path: Path, fields: dict, message: str
) -> None:
    (problem,) = unit_problems(tmp_path, one_unit(**fields))
    assert problem.startswith(f"6: {message}"), problem
