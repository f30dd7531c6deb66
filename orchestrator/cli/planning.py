"""``duban validate``, ``duban plan`` and ``duban simulate``: the plan as data, nothing stored."""

from __future__ import annotations

import tomllib
from pathlib import Path

import typer
from rich.table import Table

from orchestrator.cli.common import BadInput, console, parse_year, print_json_lines, state, warn
from workflows.catalog import (
    definition_folders,
    find_definition,
    known_definitions,
    load_bundle,
    load_registers,
)
from workflows.errors import DefinitionError, Problem
from workflows.loader import check_definition_against, load_definition, load_units, read_toml
from workflows.plan import plan

REGISTER_HELP = (
    "A register CSV for anchored duties, as NAME=FILE (repeatable); default: [registers] in config."
)
UNITS_HELP = "The units file (default: [definitions] units in config)."


def parse_registers(values: list[str] | None) -> dict[str, Path]:
    """``--register NAME=FILE`` options over the configured ``[registers]``."""
    registers = {name: Path(path) for name, path in state.settings.registers.items()}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise BadInput(f'--register: bad value "{value}", expected NAME=FILE.csv')
        registers[name.strip()] = Path(path.strip())
    return registers


def units_path(option: Path | None) -> Path:
    path = option or state.settings.definitions.units
    if path is None:
        raise BadInput("--units: no units file given and none configured ([definitions] units in config)")
    return path


def bundle_for(workflow: str, units: Path | None, registers: list[str] | None):
    """Load the workflow's bundle; calendar warnings go to stderr once per year."""
    settings = state.settings
    path = find_definition(workflow, definition_folders(settings.definitions.paths))
    return load_bundle(
        path,
        units_path(units),
        parse_registers(registers),
        overrides=settings.definitions.calendar_overrides,
        on_assumed=lambda year, message: warn(message),
    )


def _classify(paths: list[Path]) -> tuple[list[Path], list[Path], dict[str, Path], list[Problem]]:
    definitions, units, registers, problems = [], [], {}, []
    for path in paths:
        if path.suffix.lower() == ".csv":
            registers[path.stem] = path
            continue
        try:
            data, _, _ = read_toml(path)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        kind = "definition" if "workflow" in data else "units" if "units" in data else None
        if kind is None:
            problems.append(
                Problem(str(path), 1, "neither a definition ([workflow]) nor a units file ([[units]])")
            )
        else:
            (definitions if kind == "definition" else units).append(path)
    return definitions, units, registers, problems


def validate(
    files: list[Path] = typer.Argument(
        None, help="Definition, units and register files; default: all configured."
    ),
    register: list[str] = typer.Option(None, "--register", "-r", help=REGISTER_HELP),
) -> None:
    """Check definitions and units files against each other; print every error as FILE:LINE: message.

    Example: [bold]duban validate workflows/definitions/rule_of_law_pilot.toml examples/units.example.toml[/]
    """
    settings = state.settings
    if not files:
        files = list(known_definitions(definition_folders(settings.definitions.paths)).values())
        if settings.definitions.units:
            files.append(settings.definitions.units)
    definitions, units_files, csvs, problems = _classify(list(files))
    if not units_files and settings.definitions.units and definitions:
        units_files = [settings.definitions.units]
    register_paths = {**parse_registers(register), **csvs}
    loaded_defs, loaded_units = [], []
    for path in definitions:
        try:
            loaded_defs.append(load_definition(path))
        except DefinitionError as exc:
            problems.extend(exc.problems)
    for path in units_files:
        try:
            loaded_units.append(load_units(path))
        except DefinitionError as exc:
            problems.extend(exc.problems)
    try:
        registers = load_registers(register_paths)
    except DefinitionError as exc:
        problems.extend(exc.problems)
        registers = {}
    for loaded in loaded_defs:
        for units in loaded_units:
            problems.extend(check_definition_against(loaded, units, registers))
    if problems:
        raise DefinitionError(problems)
    checked = len(definitions) + len(units_files) + len(register_paths)
    console.print(
        f"ok: {checked} file(s) checked — {len(definitions)} definition(s), {len(units_files)} units file(s)"
    )
    if definitions and not units_files:
        warn("no units file given: unit and role references were not checked")


def plan_command(
    workflow: str = typer.Argument(
        ..., help="A workflow id from the definition folders, or a definition file."
    ),
    units: Path = typer.Option(None, "--units", "-u", help=UNITS_HELP),
    year: int = typer.Option(None, "--year", "-y", help="The program year, YYYY."),
    register: list[str] = typer.Option(None, "--register", "-r", help=REGISTER_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per obligation."),
) -> None:
    """Every obligation of WORKFLOW for a year with its dates (after the working-day rule); nothing stored.

    Example: [bold]duban plan rule-of-law-pilot --units examples/units.example.toml --year 2026 --json[/]
    """
    year = parse_year(year)
    bundle = bundle_for(workflow, units, register)
    occurrences = plan(bundle.definition, bundle.units.directory, year, bundle.calendar, bundle.registers)
    if as_json:
        print_json_lines([o.as_json() for o in occurrences])
        return
    directory = bundle.units.directory
    table = Table(
        title=f"{bundle.definition.workflow.title} · {year} · {len(occurrences)} 项义务", show_lines=False
    )
    for column in ("到期", "开始", "任务", "标题", "责任单位", "阶段", "牵头单位"):
        table.add_column(column, overflow="fold")
    for o in occurrences:
        title = o.title if o.occurrence is None else f"{o.title}（{o.occurrence}）"
        lead = "、".join(directory.name(u) for u in o.lead)
        table.add_row(str(o.due), str(o.opens), o.task, title, directory.name(o.unit), o.phase or "—", lead)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("plan")(plan_command)
    try:
        from orchestrator.cli.simulate import simulate
    except ModuleNotFoundError as exc:
        if exc.name != "orchestrator.cli.simulate":
            raise
    else:
        app.command("simulate")(simulate)


__all__ = ["bundle_for", "parse_registers", "register", "tomllib"]
