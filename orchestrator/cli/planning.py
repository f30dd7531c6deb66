"""``duban validate``, ``duban plan`` and ``duban simulate``: the plan as data, nothing stored."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from orchestrator.cli.common import (
    EXIT_CODES,
    BadInput,
    console,
    current,
    err_console,
    now,
    parse_year,
    print_json_lines,
    warn,
)
from orchestrator.cli.options import REGISTER_HELP, UNITS_HELP, Registers, Units, Workflow, Year, json_flag

if TYPE_CHECKING:
    from rich.table import Table

    from workflows.catalog import Bundle
    from workflows.check import Inputs
    from workflows.errors import Problem
    from workflows.plan import Occurrence


def parse_registers(values: list[str] | None, *, configured: bool = True) -> dict[str, Path]:
    """``--register NAME=FILE`` options, over the configured ``[registers]`` when ``configured``."""
    registers = (
        {name: Path(path) for name, path in current().settings.registers.items()} if configured else {}
    )
    for value in values or []:
        name, sep, path = value.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise BadInput(f'--register: bad value "{value}", expected NAME=FILE.csv')
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise BadInput(
                f'--register: bad name "{name}": use letters, digits, "-" or "_" (as in the anchor)'
            )
        registers[name] = Path(path)
    return registers


def units_path(option: Path | None) -> Path:
    path = option or current().settings.definitions.units
    if path is None:
        raise BadInput("--units: no units file given and none configured ([definitions] units in config)")
    return path


def bundle_for(workflow: str, units: Path | None, registers: list[str] | None):
    """Load the workflow's bundle (with the settings config gives it); calendar warnings go to
    stderr once per year."""
    from orchestrator.service.runtime import load_bundle_for
    from workflows.catalog import definition_folders, find_definition

    settings = current().settings
    register_files = parse_registers(registers)
    path = find_definition(workflow, definition_folders(settings.definitions.paths))  # (before --units)
    return load_bundle_for(
        settings,
        str(path),
        units=units_path(units),
        registers=register_files,
        on_assumed=lambda year, message: warn(message),
    )


def parse_year_text(text: str | None) -> int:
    """``--year`` as given: four digits, 1900–2200 (BadInput, exit 2, otherwise)."""
    if text is None:
        raise BadInput("--year：请给出方案年度，如 --year 2026")
    if not text.strip().isdigit():
        raise BadInput(f'--year：年份 "{text}" 有误，应为四位数年份，如 2026')
    return parse_year(int(text))


def configured_inputs() -> Inputs:
    """Everything config.toml names: every definition file in the definition folders (the shipped
    ones too), the units file, the registers, the calendar override file, and [[programs]]."""
    from orchestrator.service.runtime import program_setting_values
    from workflows.catalog import BUILTIN_DEFINITIONS, definition_files, definition_folders, find_definition
    from workflows.check import Inputs
    from workflows.errors import NotFound

    settings = current().settings
    inputs = Inputs()
    folders = definition_folders(settings.definitions.paths)
    declared = _declared_paths(settings, folders)
    for path in definition_files(folders):
        inputs.add(path)
        if path.parent == BUILTIN_DEFINITIONS and path.resolve() not in declared:
            inputs.alone.add(path.resolve())  # a shipped plan this deployment does not run
    for i, entry in enumerate(settings.programs):
        try:
            path = find_definition(entry.workflow, folders)
        except NotFound as exc:
            inputs.problems.append(
                _config_problem(("programs", i, "workflow"), f"programs[{i}].workflow: {exc}")
            )
            continue
        inputs.add(path)
        given = program_setting_values(settings, path)
        if given is not None:
            inputs.settings[path.resolve()] = given
    if settings.definitions.units:
        inputs.add(settings.definitions.units)
    for name, path in settings.registers.items():
        inputs.registers[name] = path
    if settings.definitions.calendar_overrides:
        inputs.calendars.append(settings.definitions.calendar_overrides)
    return inputs


def _declared_definitions(settings) -> list[Path]:
    """The definition files of the programs config.toml runs (those that can be found)."""
    from workflows.catalog import definition_folders

    return sorted(_declared_paths(settings, definition_folders(settings.definitions.paths)))


def _declared_paths(settings, folders) -> set[Path]:
    """The definition files ``[[programs]]`` runs (those that can be found)."""
    from workflows.catalog import find_definition
    from workflows.errors import DubanError

    found = set()
    for entry in settings.programs:
        try:
            found.add(find_definition(entry.workflow, folders).resolve())
        except DubanError:
            continue
    return found


def _config_problem(loc: tuple, message: str) -> Problem:
    from workflows.errors import DefinitionError, Problem
    from workflows.loader import read_toml

    path = current().settings.path
    if path is None:
        return Problem("config.toml", 1, message)
    try:
        line = read_toml(path)[1].line_of(loc)
    except DefinitionError:
        line = 1
    return Problem(str(path), line, message)


def validate(
    files: list[Path] = typer.Argument(
        None,
        help="Definition, units, calendar override (.toml) and register (.csv) files; default: all configured.",
        show_default=False,
    ),
    register: Registers = None,
) -> None:
    r"""Check definitions, units files and registers against each other; every error as FILE:LINE: message.

    The robots file (\[im] robots_file) is checked too (its mode, every robot's secrets), and every
    unit's robots = \[...] against it.

    Files are told apart by content. With no FILE, everything config.toml names is checked. A
    definition given without a units file is checked against the configured units file.
    A register file is named by its file name up to the first dot (or give --register NAME=FILE).

    Half-width punctuation (, ( ) : ;) between Chinese characters is a warning (FILE:LINE), not an error.

    Example: [bold]duban validate workflows/definitions/rule_of_law_pilot.toml examples/units.example.toml[/]
    """
    from workflows.check import Inputs
    from workflows.errors import CheckFailed

    settings = current().settings
    if files:
        inputs = Inputs()
        for path in files:
            inputs.add(path)
        inputs.registers = {
            **parse_registers(register, configured=bool(inputs.definitions)),
            **inputs.registers,
        }
        if inputs.definitions and not inputs.units and settings.definitions.units:
            inputs.add(settings.definitions.units)
            inputs.context = _declared_definitions(settings)  # the deployment's units serve its plans too
    else:
        inputs = configured_inputs()
        inputs.registers.update(parse_registers(register, configured=False))
    from orchestrator.service.runtime import program_calendar_warnings

    report = check_with_robots(inputs)
    for note in inputs.notes:
        warn(note)
    for warning in report.warnings:  # FILE:LINE: warning: …, and the exit code stays 0
        err_console.print(str(warning), markup=False, highlight=False, soft_wrap=True)
    if report.problems:
        raise CheckFailed(report.problems)
    console.print(f"ok: {report.summary()}", markup=False)
    for message in program_calendar_warnings(settings, now()):  # make-up days unknown
        warn(message)
    if report.definitions and not report.units:
        warn("没有单位文件：未检查单位和角色的引用，也未检查登记表")


def check_with_robots(inputs: Inputs):
    """``check_inputs``, and the robots file and the units' robots (``validate`` and ``check``)."""
    from orchestrator.service.robots import check_robots, robots_path
    from workflows.check import check_inputs

    settings = current().settings
    report = check_inputs(inputs)
    if report.units or robots_path(settings)[0] is not None:  # the robots file, and the units' robots
        report.problems = sorted({*report.problems, *check_robots(settings, report.units)})
    return report


def _rolled(o: Occurrence) -> str:
    """The due date, marked ``*`` if moved forward to a working day, ``†`` if moved back."""
    if o.due == o.nominal_due:
        return str(o.due)
    return f"{o.due}*" if o.due > o.nominal_due else f"{o.due}†"


def _title(bundle: Bundle, o: Occurrence) -> str:
    """The task's title; for a register row, with the row's own title (the document it is about)."""
    task = bundle.definition.task(o.task)
    anchor = task.anchor_register if task else None
    if anchor is None or o.occurrence is None:
        return o.title
    register = bundle.registers.get(anchor[0])
    row = next((r for r in register.rows if r.id == o.occurrence), None) if register else None
    return f"{o.title}：{row.title if row else o.occurrence}"


def plan_table(bundle: Bundle, year: int, occurrences: list[Occurrence], width: int = 160) -> Table:
    from rich.table import Table

    """The Rich table of ``duban plan``: one row per obligation, in Chinese, names instead of ids.

    A due date moved by the working-day rule is marked ``*`` and explained in the caption. Below
    120 columns the phase and lead columns are left out, so that titles and names stay readable.
    """
    directory = bundle.units.directory
    definition = bundle.definition
    wide = width >= 120
    table = Table(
        title=f"{definition.workflow.title} · {year}年 · {len(occurrences)} 项督办事项", expand=True
    )
    table.add_column("截止日期", no_wrap=True)
    table.add_column("开始日期", no_wrap=True)
    table.add_column("编号", no_wrap=True)
    table.add_column("事项", overflow="fold", ratio=3)
    table.add_column("责任单位", overflow="fold", ratio=2)
    if wide:
        table.add_column("阶段", overflow="fold", ratio=1)
        table.add_column("牵头单位", overflow="fold", ratio=2)
    for o in occurrences:
        cells = [_rolled(o), str(o.opens), o.task, _title(bundle, o), directory.name(o.unit)]
        if wide:
            phase = definition.phase(o.phase)
            cells += [phase.name if phase else "—", "、".join(directory.name(u) for u in o.lead) or "—"]
        table.add_row(*cells)
    captions = []
    if any(o.due > o.nominal_due for o in occurrences):
        captions.append("* 原定截止日逢法定节假日或周末，顺延至下一个工作日")
    if any(o.due < o.nominal_due for o in occurrences):
        captions.append(
            "† 须在原定日期前完成（如规范性文件有效期届满前），逢法定节假日或周末提前至前一个工作日"
        )
    assumed = sorted(bundle.calendar.assumed_years())
    if assumed:
        from rich.markup import escape

        from workflows.calendar import OVERRIDE_HOWTO

        years = "、".join(str(y) for y in assumed)
        how = getattr(bundle.calendar, "howto", OVERRIDE_HOWTO)
        captions.append(
            f"注意：{years}年尚无国务院公布的放假安排，仅按《全国年节及纪念日放假办法》计法定节假日，调休上班日未知，"
            f"上表日期可能还会变化。国务院办公厅公布放假安排后，把该年的放假和调休写入{escape(how)}，再运行本命令核对"
        )
    if captions:
        table.caption = "\n".join(captions)
    return table


def plan_command(
    workflow: Workflow,
    units: Units = None,
    year: Year = None,
    register: Registers = None,
    as_json: bool = json_flag("One JSON object per obligation."),
) -> None:
    """Every obligation of WORKFLOW for a year with its dates (after the working-day rule); nothing stored.

    Example: [bold]duban plan rule-of-law-pilot --units examples/units.example.toml --year 2026 --json[/]
    """
    from workflows.plan import plan

    program_year = parse_year_text(year)
    bundle = bundle_for(workflow, units, register)
    occurrences = plan(
        bundle.definition, bundle.units.directory, program_year, bundle.calendar, bundle.registers
    )
    if as_json:
        print_json_lines([o.as_json() for o in occurrences])
        return
    console.print(plan_table(bundle, program_year, occurrences, console.width))


def register(app: typer.Typer) -> None:
    app.command("validate", epilog=EXIT_CODES)(validate)
    app.command("plan", epilog=EXIT_CODES)(plan_command)


__all__ = ["REGISTER_HELP", "UNITS_HELP", "bundle_for", "parse_registers", "parse_year_text", "register"]
