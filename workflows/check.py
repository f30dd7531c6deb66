"""Check a set of input files against each other: what ``duban validate`` does, without the CLI.

Definitions, units files, registers and calendar override files are told apart by content
(registers by their ``.csv`` suffix); each is checked by itself, then every definition against
every units file and the registers. Every problem of every file is collected, none raised.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from workflows.calendar import load_overrides
from workflows.errors import DefinitionError, DubanError, Problem
from workflows.loader import (
    DefinitionFile,
    LoadedUnits,
    check_definition_against,
    file_kind,
    load_units,
    read_definition,
    read_toml,
)
from workflows.punctuation import half_width_warnings
from workflows.registers import Register, load_register
from workflows.roles import Plan, check_units
from workflows.settings import SettingValues


def register_name(path: Path) -> str:
    """A register given as a file is named by its file name up to the first dot.

    ``normative_documents.example.csv`` → ``normative_documents`` (what ``anchor`` names).
    """
    return path.name.split(".", 1)[0]


@dataclass
class Inputs:
    """The files to check, by kind, and the problems met while telling them apart."""

    definitions: list[Path] = field(default_factory=list)
    units: list[Path] = field(default_factory=list)
    registers: dict[str, Path] = field(default_factory=dict)
    calendars: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settings: dict[Path, SettingValues] = field(default_factory=dict)  # a deployment's, by resolved path
    alone: set[Path] = field(default_factory=set)  # checked by themselves only: plans not run here
    # plans read only for the roles they use (the deployment's running plans, when a new definition
    # is checked against the deployment's units): their own problems are not this check's
    context: list[Path] = field(default_factory=list)
    _seen: set[Path] = field(default_factory=set, repr=False)

    def add(self, path: Path) -> None:
        """Add one file, by content: a definition, a units file, a calendar override file or a register.

        A file added twice (under any name) counts once; a folder adds its ``*.toml`` and ``*.csv`` files.
        """
        if path.is_dir():
            for child in sorted([*path.glob("*.toml"), *path.glob("*.csv")]):
                self.add(child)
            return
        resolved = Path(path).resolve()
        if resolved in self._seen:
            return
        self._seen.add(resolved)
        if path.suffix.lower() == ".csv":
            self.registers[register_name(path)] = path
            return
        try:
            data, _, _ = read_toml(path)
        except DefinitionError as exc:
            self.problems.extend(exc.problems)
            return
        kind = file_kind(data)
        if kind == "definition":
            self.definitions.append(path)
        elif kind == "units":
            self.units.append(path)
        elif kind == "calendar":
            self.calendars.append(path)
        elif not data:  # `plan` refuses it too: a file given to check must hold something
            message = (
                "empty file (only comments?): expected a definition ([workflow]), a units file "
                "([[units]]) or a calendar override file ([YYYY] sections)"
            )
            self.problems.append(Problem(str(path), 1, message))
        else:
            message = (
                "neither a definition ([workflow]), a units file ([[units]]) nor a calendar override "
                f"file ([YYYY] sections); top-level keys: {', '.join(map(str, data))}"
            )
            self.problems.append(Problem(str(path), 1, message))


@dataclass
class Report:
    """What was checked, and every problem found."""

    definitions: list[DefinitionFile] = field(default_factory=list)
    units: list[LoadedUnits] = field(default_factory=list)
    registers: dict[str, Register] = field(default_factory=dict)
    calendars: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # shown, but the files are usable

    def summary(self) -> str:
        """E.g. ``1 definition (rule-of-law-pilot), 1 units file (43 units), 1 register (12 rows)``."""
        parts = []
        if self.definitions:
            ids = ", ".join(d.definition.workflow.id for d in self.definitions if d.definition)
            parts.append(_count(len(self.definitions), "definition") + (f" ({ids})" if ids else ""))
        if self.units:
            total = sum(len(u.directory.units) for u in self.units)
            parts.append(f"{_count(len(self.units), 'units file')} ({_count(total, 'unit')})")
        if self.registers:
            rows = sum(len(r.rows) for r in self.registers.values())
            parts.append(f"{_count(len(self.registers), 'register')} ({_count(rows, 'row')})")
        if self.calendars:
            parts.append(_count(len(self.calendars), "calendar override file"))
        return ", ".join(parts) or "nothing"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def check_inputs(inputs: Inputs) -> Report:
    """Check every file of ``inputs`` by itself and against the others; collect every problem."""
    report = Report(problems=list(inputs.problems), calendars=list(inputs.calendars))
    for path in inputs.definitions:
        try:
            read = read_definition(path, inputs.settings.get(Path(path).resolve()))
        except DefinitionError as exc:
            report.problems.extend(exc.problems)
            continue
        report.definitions.append(read)
        report.problems.extend(read.problems)
    for path in inputs.units:
        try:
            report.units.append(load_units(path))
        except DefinitionError as exc:
            report.problems.extend(exc.problems)
    for name, path in inputs.registers.items():
        try:
            report.registers[name] = load_register(name, path)
        except DefinitionError as exc:
            report.problems.extend(exc.problems)
    against = [read for read in report.definitions if Path(read.path).resolve() not in inputs.alone]
    for read in against:
        for units in report.units:
            report.problems.extend(check_definition_against(read, units, report.registers))
    report.problems.extend(duplicate_workflow_ids(report.definitions))
    plans = [Plan(_workflow_id(read), read.data, report.registers) for read in against]
    plans += _context_plans(inputs, against, report.registers)
    every_plan_read = len(report.definitions) == len(inputs.definitions)
    for units in report.units if every_plan_read else ():  # roles against every plan, or none
        findings = check_units(units, plans)
        report.problems.extend(findings.problems)
        report.warnings.extend(findings.warnings)
    for path in inputs.calendars:
        report.problems.extend(_calendar_problems(path))
    report.problems = sorted(set(report.problems))
    for path in [*inputs.definitions, *inputs.units]:
        report.warnings.extend(half_width_warnings(path))
    report.warnings.sort()
    return report


def _context_plans(inputs: Inputs, against: list[DefinitionFile], registers) -> list[Plan]:
    """The context plans not already checked, read for their roles only (unreadable ones skipped)."""
    given = {Path(read.path).resolve() for read in against}
    plans = []
    for path in inputs.context:
        if Path(path).resolve() in given:
            continue
        try:
            read = read_definition(path, inputs.settings.get(Path(path).resolve()))
        except DefinitionError:
            continue
        plans.append(Plan(_workflow_id(read), read.data, registers))
    return plans


def _workflow_id(read: DefinitionFile) -> str:
    workflow = read.data.get("workflow")
    workflow_id = workflow.get("id") if isinstance(workflow, dict) else None
    return workflow_id if isinstance(workflow_id, str) else read.path


def duplicate_workflow_ids(definitions: Iterable[DefinitionFile]) -> list[Problem]:
    """Two definition files with the same ``[workflow] id``: only the first would ever be found."""
    first: dict[str, str] = {}
    problems = []
    for read in definitions:
        workflow = read.data.get("workflow")
        workflow_id = workflow.get("id") if isinstance(workflow, dict) else None
        if not isinstance(workflow_id, str):
            continue
        if workflow_id in first:
            line = read.source.line_of(("workflow", "id"))
            message = (
                f'workflow.id: "{workflow_id}" is also the id of {first[workflow_id]} (ids must be unique)'
            )
            problems.append(Problem(read.path, line, message))
        first.setdefault(workflow_id, read.path)
    return problems


def _calendar_problems(path: Path) -> list[Problem]:
    try:
        load_overrides(path)
    except DefinitionError as exc:
        return list(exc.problems)
    except DubanError as exc:
        return [Problem(str(path), 1, str(exc).removeprefix(f"{path}: "))]
    return []


__all__ = ["Inputs", "Report", "check_inputs", "duplicate_workflow_ids", "register_name"]
