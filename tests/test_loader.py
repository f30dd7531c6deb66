"""The definition loader: every broken definition gets every problem as ``FILE:LINE: message``.

Each case is a small definition file. A line the loader must blame carries a ``# @name`` comment;
the expected problems are ``(name, message)`` pairs, so the line numbers are read from the text
itself and the table stays readable. The whole list of problems must match: nothing missing,
nothing extra.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows.errors import DefinitionError
from workflows.loader import load_definition, read_definition
from workflows.source import SourceMap

HEAD = """\
[workflow]
id = "mini"
title = "测试计划"

[[phases]]
id = "p1"
name = "阶段一"
start = "05-10"
end = "05-30"
"""

TASK = """
[[tasks]]
id = "T01"
title = "任务一"
phase = "p1"
responsible = ["role:township"]
"""


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    expected: list[tuple[str, str]]


def marked_lines(text: str) -> dict[str, int]:
    """``# @name`` markers → their 1-based line numbers."""
    found = {}
    for number, line in enumerate(text.splitlines(), start=1):
        for name in re.findall(r"# @(\w+)", line):
            found[name] = number
    return found


def problems_of(path: Path) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        load_definition(path)
    return [str(p) for p in caught.value.problems]


def expected_of(case: Case, path: Path) -> list[str]:
    lines = marked_lines(case.text)
    return sorted(
        (f"{path}:{lines[name]}: {message}" for name, message in case.expected),
        key=lambda s: (int(s.split(":")[1]), s),
    )


CASES = [
    # -- unknown keys at every level: a typo is never ignored ---------------------------------
    Case(
        "unknown top-level table",
        HEAD + '\n[[task]]  # @a\nid = "T01"\ntitle = "x"\nphase = "p1"\nresponsible = ["u"]\n',
        [("a", 'unknown key "task" (did you mean "tasks"?)')],
    ),
    Case(
        "unknown key in [workflow]: did you mean, and no 'missing title' noise",
        '[workflow]\nid = "mini"\ntitel = "测试"  # @a\n' + TASK.replace('phase = "p1"', 'due = "06-10"'),
        [("a", 'workflow: unknown key "titel" (did you mean "title"?)')],
    ),
    Case(
        "unknown key in a phase",
        HEAD.replace('end = "05-30"', 'end = "05-30"\nstrat = "05-01"  # @a') + TASK,
        [("a", 'phases[0]: unknown key "strat" (did you mean "start"?)')],
    ),
    Case(
        "unknown key in a task, nothing close: the allowed keys are listed",
        HEAD + TASK + "colour = 1  # @a\n",
        [
            (
                "a",
                'tasks[0]: unknown key "colour" (allowed: id, title, section, detail, phase, lead, '
                "responsible, due, rrule, anchor, window, roll, reminders, escalation, deliverable, indicators)",
            )
        ],
    ),
    Case(
        "unknown key in an inline indicator table, second element of a multi-line array",
        HEAD
        + TASK
        + 'indicators = [\n  { id = "i1", name = "率", target = ">= 90%" },\n'
        + '  { id = "i2", nmae = "率", target = ">= 90%" },  # @a\n]\n',
        [("a", 'tasks[0].indicators[1]: unknown key "nmae" (did you mean "name"?)')],
    ),
    Case(
        "unknown key in an inline escalation step",
        HEAD.replace(
            'title = "测试计划"', 'title = "测试计划"\nescalation = [{ after = "1wd", too = "lead" }]  # @a'
        )
        + TASK,
        [("a", 'workflow.escalation[0]: unknown key "too" (did you mean "to"?)')],
    ),
    Case(
        "unknown key in a dotted table [evaluation.weights]",
        HEAD + TASK + "\n[evaluation.weights]\nontime = 50  # @a\n",
        [("a", 'evaluation.weights: unknown key "ontime" (did you mean "on_time"?)')],
    ),
    Case(
        "unknown key in a band",
        HEAD + TASK + '\n[evaluation]\nbands = [\n  { name = "合格", min = 0, mx = 100 },  # @a\n]\n',
        [("a", 'evaluation.bands[0]: unknown key "mx" (allowed: name, min)')],
    ),
    Case(
        "kind is set by the table, not by the file",
        HEAD + TASK + 'kind = "duty"  # @a\n',
        [("a", 'tasks[0].kind: unknown key "kind" ([[tasks]] sets it)')],
    ),
    # -- missing required keys, at the table's header ------------------------------------------
    Case(
        "missing keys",
        '[workflow]  # @w\nid = "mini"\n\n[[phases]]  # @p\nid = "p1"\nname = "一"\nstart = "05-10"\n'
        + TASK.replace('title = "任务一"\n', "").replace("[[tasks]]", "[[tasks]]  # @t"),
        [
            ("w", "workflow.title: required key is missing"),
            ("p", "phases[0].end: required key is missing"),
            ("t", "tasks[0].title: required key is missing"),
        ],
    ),
    Case(
        "no [workflow] at all",
        '[[tasks]]  # @w\nid = "T01"\ntitle = "x"\ndue = "06-10"\nresponsible = ["u"]\n',
        [("w", "workflow: required key is missing")],
    ),
    # -- wrong types -----------------------------------------------------------------------------
    Case(
        "wrong types",
        HEAD.replace('title = "测试计划"', 'title = 5  # @title\nreminders = "-7d"  # @rem')
        + TASK.replace('responsible = ["role:township"]', 'responsible = "role:township"  # @resp')
        + '\n[evaluation]\nlate_days_full_penalty = 1.5  # @late\nweights = { on_time = "x" }  # @w\n',
        [
            ("title", "workflow.title: expected text in quotes, got 5"),
            ("rem", 'workflow.reminders: expected a list, e.g. ["a", "b"], got "-7d"'),
            ("resp", 'tasks[0].responsible: expected a list, e.g. ["a", "b"], got "role:township"'),
            ("late", "evaluation.late_days_full_penalty: expected a whole number, got 1.5"),
            ("w", 'evaluation.weights.on_time: expected a number, got "x"'),
        ],
    ),
    Case(
        "phases as a table instead of an array of tables",
        '[workflow]\nid = "mini"\ntitle = "x"\n\n[phases]  # @a\nid = "p1"\n',
        [("a", 'phases: expected a list, e.g. ["a", "b"], got a table')],
    ),
    Case(
        "an unknown calendar and time zone",
        HEAD.replace(
            'title = "测试计划"', 'title = "x"\ncalendar = "cn"  # @c\ntimezone = "Asia/Beijing"  # @z'
        )
        + TASK,
        [
            ("c", 'workflow.calendar: expected "cn-workdays" or "weekdays", got "cn"'),
            ("z", 'workflow.timezone: unknown time zone "Asia/Beijing"'),
        ],
    ),
    Case(
        "a title with a line break would end up in an email subject",
        HEAD + TASK.replace('title = "任务一"', 'title = "任务\\n一"  # @a'),
        [("a", "tasks[0].title: '任务\\n一' contains a control character ('\\n'): use one line of text")],
    ),
    # -- cross-references and duplicates ---------------------------------------------------------
    Case(
        "unknown phase, with a hint",
        HEAD + TASK.replace('phase = "p1"', 'phase = "p01"  # @a'),
        [("a", 'tasks[0].phase: unknown phase "p01" (did you mean "p1"?)')],
    ),
    Case(
        "unknown phase, no phase close: the phases are listed",
        HEAD + TASK.replace('phase = "p1"', 'phase = "evaluate"  # @a'),
        [("a", 'tasks[0].phase: unknown phase "evaluate" (phases: p1)')],
    ),
    Case(
        "duplicate ids: phases, tasks, a duty with a task's id, indicators",
        HEAD
        + '\n[[phases]]\nid = "p1"  # @p\nname = "二"\nstart = "06-01"\nend = "06-30"\n'
        + TASK
        + 'indicators = [{ id = "rate", name = "率", target = ">= 90%" }]\n'
        + TASK.replace('id = "T01"', 'id = "T01"  # @t')
        + 'indicators = [{ id = "rate", name = "率", target = ">= 90%" }]  # @i\n'
        + '\n[[duties]]\nid = "T01"  # @d\ntitle = "职责"\ndue = "06-10"\nresponsible = ["u"]\n',
        [
            ("p", 'phases[1].id: duplicate phase id "p1" (first at phases[0])'),
            ("t", 'tasks[1].id: duplicate task id "T01" (first at tasks[0])'),
            (
                "i",
                'tasks[1].indicators[0].id: duplicate indicator id "rate" (first at tasks[0].indicators[0])',
            ),
            ("d", 'duties[0].id: duplicate task id "T01" (first at tasks[0])'),
        ],
    ),
    Case(
        "a bad id",
        HEAD + TASK.replace('id = "T01"', 'id = "T 01"  # @a'),
        [
            (
                "a",
                'tasks[0].id: bad id "T 01": use letters, digits, "-", "_" or "." (starting with a letter or digit)',
            )
        ],
    ),
    # -- dates -------------------------------------------------------------------------------------
    Case(
        "phase dates backwards",
        HEAD.replace('start = "05-10"\nend = "05-30"', 'start = "05-30"\nend = "05-10"  # @a') + TASK,
        [("a", 'phases[0].end: "05-10" is before the phase starts ("05-30")')],
    ),
    Case(
        "impossible and malformed dates",
        HEAD
        + TASK.replace('phase = "p1"', 'due = "02-30"  # @a')
        + TASK.replace("T01", "T02").replace('phase = "p1"', 'due = "13-01"  # @b')
        + TASK.replace("T01", "T03").replace('phase = "p1"', 'due = "5-10"  # @c')
        + TASK.replace("T01", "T04").replace('phase = "p1"', "due = 2026-06-10  # @d"),
        [
            ("a", 'tasks[0].due: bad date "02-30": month 2 has no day 30'),
            ("b", 'tasks[1].due: bad date "13-01": there is no month 13'),
            ("c", 'tasks[2].due: bad date "5-10": expected "MM-DD", e.g. "05-10"'),
            (
                "d",
                'tasks[3].due: expected a date in quotes, "MM-DD", got the date 2026-06-10 '
                "(plan dates have no year: write it in quotes as MM-DD)",
            ),
        ],
    ),
    Case(
        "a due date before its phase starts",
        HEAD + TASK.replace('phase = "p1"', 'phase = "p1"\ndue = "05-01"  # @a'),
        [
            (
                "a",
                'tasks[0].due: "05-01" is before its phase "p1" starts ("05-10"): give a window, another phase, or no phase',
            )
        ],
    ),
    Case(
        "a window that would open after the due date",
        HEAD + TASK.replace('phase = "p1"', 'due = "06-10"\nwindow = "+3d"  # @a'),
        [
            (
                "a",
                'tasks[0].window: window "+3d" would open after the due date: use a negative offset, e.g. "-30d"',
            )
        ],
    ),
    Case(
        "malformed offsets in reminders, window, escalation",
        HEAD
        + TASK.replace('phase = "p1"', 'due = "06-10"\nwindow = "-d"  # @w')
        + 'reminders = [\n  "-7d",\n  "7x",  # @r\n]\n'
        + 'escalation = [{ after = "1 day", to = "lead" }]  # @e\n',
        [
            (
                "w",
                'tasks[0].window: bad offset "-d": expected a signed number and a unit d (days), '
                'wd (working days) or mo (months), e.g. "-7d", "-3wd", "-6mo"',
            ),
            (
                "r",
                'tasks[0].reminders[1]: bad offset "7x": expected a signed number and a unit d (days), '
                'wd (working days) or mo (months), e.g. "-7d", "-3wd", "-6mo"',
            ),
            (
                "e",
                'tasks[0].escalation[0].after: bad offset "1 day": expected a signed number and a unit '
                'd (days), wd (working days) or mo (months), e.g. "-7d", "-3wd", "-6mo"',
            ),
        ],
    ),
    Case(
        "offsets on the wrong side of the due date, and too far",
        HEAD
        + TASK.replace('phase = "p1"', 'due = "06-10"')
        + 'reminders = ["+1d"]  # @r\nescalation = [{ after = "-1wd", to = "lead" }]  # @e\n'
        + TASK.replace("T01", "T02").replace('phase = "p1"', 'due = "06-10"\nwindow = "-99999d"  # @f'),
        [
            (
                "r",
                'tasks[0].reminders[0]: reminder "+1d" would be after the due date: use a negative offset, e.g. "-7d"',
            ),
            (
                "e",
                'tasks[0].escalation[0].after: escalation after "-1wd" is before the due date: '
                'use a positive offset, e.g. "1wd"',
            ),
            ("f", 'tasks[1].window: offset "-99999d" is too far: at most 3660d either way'),
        ],
    ),
    Case(
        "malformed targets",
        HEAD
        + TASK
        + "indicators = [\n"
        + '  { id = "a", name = "率", target = "about 90" },  # @a\n'
        + '  { id = "b", name = "率", target = ">= 120%" },  # @b\n'
        + '  { id = "c", name = "率", target = 90 },  # @c\n'
        + "]\n",
        [
            (
                "a",
                'tasks[0].indicators[0].target: bad target "about 90": expected a comparator '
                '(>=, <=, ==, >, <) and a number, e.g. ">= 90%" or "== 100%"',
            ),
            ("b", 'tasks[0].indicators[1].target: bad target ">= 120%": a rate must be between 0% and 100%'),
            ("c", 'tasks[0].indicators[2].target: expected a target in quotes, e.g. ">= 90%", got 90'),
        ],
    ),
    # -- recurrence --------------------------------------------------------------------------------
    Case(
        "invalid rrules",
        HEAD
        + TASK.replace('phase = "p1"', 'rrule = "FREQ=FORTNIGHTLY;BYMONTH=12"  # @a')
        + TASK.replace("T01", "T02").replace('phase = "p1"', 'rrule = "every december"  # @b')
        + TASK.replace("T01", "T03").replace('phase = "p1"', 'rrule = "FREQ=HOURLY"  # @c')
        + TASK.replace("T01", "T04").replace(
            'phase = "p1"', 'rrule = "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"  # @d'
        )
        + TASK.replace("T01", "T05").replace(
            'phase = "p1"', 'rrule = "FREQ=YEARLY;INTERVAL=2;BYMONTH=11"  # @e'
        )
        + TASK.replace("T01", "T06").replace('phase = "p1"', 'rrule = "FREQ=YEARLY;BYDAY=XX"  # @f'),
        [
            (
                "a",
                'tasks[0].rrule: bad rrule "FREQ=FORTNIGHTLY;BYMONTH=12": FREQ=FORTNIGHTLY: expected one of YEARLY, MONTHLY, WEEKLY, DAILY (plans are in days)',
            ),
            ("b", 'tasks[1].rrule: bad rrule "every december": "every december" is not NAME=VALUE'),
            (
                "c",
                'tasks[2].rrule: bad rrule "FREQ=HOURLY": FREQ=HOURLY: expected one of YEARLY, MONTHLY, WEEKLY, DAILY (plans are in days)',
            ),
            ("d", 'tasks[3].rrule: bad rrule "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30": it never occurs'),
            (
                "e",
                'tasks[4].rrule: bad rrule "FREQ=YEARLY;INTERVAL=2;BYMONTH=11": INTERVAL=2 needs a DTSTART '
                "(else it restarts on 01-01 of every program year), e.g. "
                '"DTSTART:20260101\\nRRULE:FREQ=YEARLY;INTERVAL=2;BYMONTH=11"',
            ),
            ("f", "tasks[5].rrule: bad rrule \"FREQ=YEARLY;BYDAY=XX\": invalid 'BYDAY': XX"),
        ],
    ),
    Case(
        "a DTSTART with a time zone",
        HEAD
        + TASK.replace(
            'phase = "p1"', 'rrule = "DTSTART;TZID=Asia/Shanghai:20260101T090000\\nRRULE:FREQ=YEARLY"  # @a'
        ),
        [
            (
                "a",
                'tasks[0].rrule: bad rrule "DTSTART;TZID=Asia/Shanghai:20260101T090000\\nRRULE:FREQ=YEARLY": '
                'DTSTART must be a plain local date, e.g. "DTSTART:20260101" (no time zone: the plan\'s timezone applies)',
            )
        ],
    ),
    Case(
        "two date rules: blamed on the second",
        HEAD
        + TASK.replace('phase = "p1"', 'due = "06-10"\nrrule = "FREQ=YEARLY;BYMONTH=6;BYMONTHDAY=10"  # @a'),
        [("a", "tasks[0].rrule: give only one of due, rrule, anchor (found due, rrule)")],
    ),
    Case(
        "no date rule at all: blamed on the task",
        HEAD + TASK.replace('phase = "p1"\n', "").replace("[[tasks]]", "[[tasks]]  # @a"),
        [("a", "tasks[0]: no date: give a phase, due, rrule or anchor")],
    ),
    Case(
        "an anchored duty names no responsible units, and a malformed anchor",
        HEAD
        + '\n[[duties]]\nid = "D01"\ntitle = "评估"\nanchor = "register:docs.expires_on"\nwindow = "-6mo"\n'
        + 'responsible = ["u"]  # @a\n'
        + '\n[[duties]]\nid = "D02"\ntitle = "评估"\nanchor = "docs.expires_on"  # @b\n',
        [
            (
                "a",
                "duties[0].responsible: an anchored task is owed by each register row's unit; remove responsible",
            ),
            ("b", 'duties[1].anchor: bad anchor "docs.expires_on": expected "register:NAME.COLUMN"'),
        ],
    ),
    Case(
        "evaluation: weights not 100 points, no band with min = 0",
        HEAD
        + TASK
        + "\n[evaluation]\nweights = { on_time = 50, timeliness = 20, indicators = 20 }  # @w\n"
        + '\n[[evaluation.bands]]\nname = "合格"\nmin = 60\n',
        [
            (
                "w",
                "evaluation.weights: on_time + timeliness + indicators must be 100 points (they add up to 90)",
            )
        ],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_broken_definition_gets_every_problem_at_its_line(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(case.text, encoding="utf-8")
    assert problems_of(path) == expected_of(case, path)


def test_five_different_mistakes_give_five_lines_with_the_right_numbers(tmp_path: Path) -> None:
    text = (
        '[workflow]\nid = "mini"\ntitel = "测试"  # @a\n'  # 1 a typo
        '\n[[phases]]\nid = "p1"\nname = "一"\nstart = "05-30"\nend = "05-10"  # @b\n'  # 2 backwards
        + '\n[[tasks]]\nid = "T01"\ntitle = "一"\nphase = "p2"  # @c\nresponsible = ["u"]\n'  # 3 unknown phase
        + 'detail = """\nfoo = 1\n[[tasks]]\ndue = "bad"\n"""\n'  # a trap for the line finder
        + 'indicators = [\n  { id = "i1", name = "n", target = ">= 90%" },\n'
        + '  { id = "i2", name = "n", target = "about 90" },  # @d\n]\n'  # 4 a bad target
        + '\n[[tasks]]\nid = "T02"\ntitle = "二"\ndue = "02-30"  # @e\nresponsible = ["u"]\n'  # 5 a bad date
    )
    path = tmp_path / "five.toml"
    path.write_text(text, encoding="utf-8")
    problems = problems_of(path)
    lines = marked_lines(text)
    assert [int(p.split(":")[1]) for p in problems] == [lines[k] for k in "abcde"]
    assert len(problems) == 5


def test_a_multiline_string_holding_key_lines_does_not_confuse_the_line_finder(tmp_path: Path) -> None:
    text = (
        HEAD
        + TASK
        + 'detail = """\n[[tasks]]\nid = "X"\ndue = "99-99"\nfoo = 1\n"""\n'
        + "section = '''\n[evaluation.weights]\n'''\n"
        + TASK.replace("T01", "T02").replace('phase = "p1"', 'due = "06-31"  # @a')
    )
    path = tmp_path / "plan.toml"
    path.write_text(text, encoding="utf-8")
    assert problems_of(path) == [
        f'{path}:{marked_lines(text)["a"]}: tasks[1].due: bad date "06-31": month 6 has no day 31'
    ]


def test_a_nested_array_of_tables_counts_its_elements_per_parent(tmp_path: Path) -> None:
    text = (
        HEAD
        + TASK
        + '[[tasks.indicators]]\nid = "a"\nname = "一"\ntarget = ">= 90%"\n'
        + TASK.replace("T01", "T02")
        + '[[tasks.indicators]]\nid = "b"\nname = "二"\ntarget = "most"  # @a\n'
    )
    path = tmp_path / "plan.toml"
    path.write_text(text, encoding="utf-8")
    (problem,) = problems_of(path)
    assert problem.startswith(
        f'{path}:{marked_lines(text)["a"]}: tasks[1].indicators[0].target: bad target "most"'
    )


def test_dotted_keys_are_found(tmp_path: Path) -> None:
    text = HEAD + TASK + '\n[evaluation]\nweights.on_time = "half"  # @a\n'
    path = tmp_path / "plan.toml"
    path.write_text(text, encoding="utf-8")
    assert problems_of(path) == [
        f'{path}:{marked_lines(text)["a"]}: evaluation.weights.on_time: expected a number, got "half"'
    ]


# -- files that cannot be read --------------------------------------------------------------------


def test_a_toml_syntax_error_is_at_tomllibs_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(HEAD + '\n[[tasks]]\nid = "T01"\ntitle = "unterminated\n', encoding="utf-8")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:13: TOML syntax: ")
    assert "(column " in problem and "at line" not in problem


def test_a_duplicate_key_is_a_syntax_error_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(HEAD.replace('title = "测试计划"', 'title = "a"\ntitle = "b"'), encoding="utf-8")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:4: TOML syntax: ")


def test_a_syntax_error_at_the_end_of_the_file_names_the_last_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text('[workflow]\nid = "x"\ntitle = [\n', encoding="utf-8")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:3: TOML syntax: ")


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_bytes(
        HEAD.replace("测试计划", "x").encode() + '\n# 注释\ntitle = "'.encode("gbk") + "任务".encode("gbk")
    )
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:11: not UTF-8 text (byte 0x")
    assert problem.endswith("save the file as UTF-8")


def test_a_missing_file(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "nope.toml") == [f"{tmp_path / 'nope.toml'}:1: no such file"]


def test_a_directory(tmp_path: Path) -> None:
    assert problems_of(tmp_path) == [f"{tmp_path}:1: is a directory, expected a TOML file"]


@pytest.mark.parametrize("text", ["", "\n\n# only a comment\n"])
def test_an_empty_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(text, encoding="utf-8")
    assert problems_of(path) == [f"{path}:1: empty file: expected a definition with a [workflow] table"]


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_bytes(b"\xef\xbb\xbf" + (HEAD + TASK).encode("utf-8"))
    assert load_definition(path).id == "mini"


def test_a_valid_file_loads_and_keeps_its_raw_data(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(HEAD + TASK, encoding="utf-8")
    read = read_definition(path)
    assert read.problems == ()
    assert read.definition is not None and read.definition.task("T01").title == "任务一"
    assert read.loaded().data["tasks"][0]["responsible"] == ["role:township"]


def test_the_pilot_loads() -> None:
    loaded = load_definition(Path("workflows/definitions/rule_of_law_pilot.toml"))
    assert loaded.id == "rule-of-law-pilot"
    assert [t.id for t in loaded.definition.tasks] == [f"T{n:02d}" for n in range(1, 27)]
    assert [p.id for p in loaded.definition.phases] == ["mobilize", "implement", "evaluate"]


# -- the source map by itself ----------------------------------------------------------------------


def test_source_map_paths() -> None:
    text = (
        "[workflow]\n"  # 1
        'id = "x"  # a comment with = in it\n'  # 2
        '"quoted.key" = 1\n'  # 3
        "a . b = 2\n"  # 4
        "[[tasks]]\n"  # 5
        'lead = [\n  "x",\n  # comment ]\n  "y",\n]\n'  # 6-10
        "[[tasks]]\n"  # 11
        "[tasks.extra]\n"  # 12
        "k = '''\nz = 1 '''\n"  # 13-14
        "after = 1\n"  # 15
    )
    source = SourceMap(text)
    assert source.line_of(("workflow", "id")) == 2
    assert source.line_of(("workflow", "quoted.key")) == 3
    assert source.line_of(("workflow", "a", "b")) == 4
    assert source.line_of(("tasks", 0, "lead", 1)) == 9
    assert source.line_of(("tasks", 1)) == 11
    assert source.line_of(("tasks", 1, "extra", "k")) == 13
    assert source.line_of(("tasks", 1, "extra", "after")) == 15
    assert not source.has(("tasks", 1, "extra", "z"))
    assert source.line_of(("tasks", 7, "nothing")) == 5  # the array's first header
    assert source.line_of(("nowhere",)) == 1


@pytest.mark.parametrize(
    "text",
    ['x = "unterminated', "[[", "a = [1, 2", 'a = """never closed', "= = =", "a = {b = ", "\\"],
)
def test_source_map_never_raises_on_text_that_is_not_toml(text: str) -> None:
    assert SourceMap(text).line_of(("a", "b")) >= 1


# -- inputs nobody wrote by hand: mutations of the pilot -------------------------------------------

PILOT_LINES = Path("workflows/definitions/rule_of_law_pilot.toml").read_text(encoding="utf-8").splitlines()
VALUES = [
    "5",
    '"x"',
    "[]",
    "{}",
    "true",
    '"-7x"',
    '"13-01"',
    '"role:nobody"',
    "2026-01-01",
    '["a", 1]',
    '"\\n"',
]


@st.composite
def mutated_pilot(draw) -> str:
    lines = list(PILOT_LINES)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "value", "rename", "duplicate"]))
        if action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif "=" in lines[i] and not lines[i].lstrip().startswith("#"):
            key, _, _ = lines[i].partition("=")
            lines[i] = (
                f"{key}x=" + lines[i].partition("=")[2]
                if action == "rename"
                else f"{key}= {draw(st.sampled_from(VALUES))}"
            )
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated_pilot())
def test_any_mutation_of_the_pilot_loads_or_gives_located_one_line_problems(
    tmp_path: Path, text: str
) -> None:
    from workflows.loader import check_definition_against, load_units

    path = tmp_path / "mutant.toml"
    path.write_text(text, encoding="utf-8")
    units = load_units(Path("examples/units.example.toml"))
    try:
        read = read_definition(path)
    except DefinitionError as exc:
        problems = exc.problems
    else:
        problems = [*read.problems, *check_definition_against(read, units, {})]
    count = len(text.splitlines())
    for problem in problems:
        assert 1 <= problem.line <= count, problem
        assert "\n" not in str(problem) and str(problem).startswith(f"{path}:")


# -- targets -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, shown, met, not_met",
    [
        (">= 90%", ">= 90%", [90, 100], [89.99]),
        ("== 100%", "== 100%", [100], [99.9]),
        ("≥ 90％", ">= 90%", [90], [80]),  # as typed in Chinese text
        ("<= 5", "<= 5", [0, 5], [6]),
        (" > 0 ", "> 0", [1], [0]),
        ("<2.5", "< 2.5", [2], [2.5]),
    ],
)
def test_targets(text: str, shown: str, met: list[float], not_met: list[float]) -> None:
    from workflows.targets import parse_target

    target = parse_target(text)
    assert str(target) == shown
    assert all(target.met(v) for v in met) and not any(target.met(v) for v in not_met)


@pytest.mark.parametrize(
    "text", ["about 90", ">= 120%", "90%", "=> 90", ">= ninety", ">= 90%%", "", ">= -1%"]
)
def test_malformed_targets(text: str) -> None:
    from workflows.targets import parse_target

    with pytest.raises(ValueError, match=f'bad target "{re.escape(text)}"'):
        parse_target(text)
