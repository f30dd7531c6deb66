"""Find definition files by workflow id, and load everything one plan needs into a ``Bundle``."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from workflows.calendar import WorkdayCalendar, load_overrides, make_calendar
from workflows.errors import DefinitionError, NotFound, Problem
from workflows.loader import (
    LoadedDefinition,
    LoadedUnits,
    check_definition_against,
    load_definition,
    load_units,
)
from workflows.registers import Register, load_register

BUILTIN_DEFINITIONS = Path(__file__).resolve().parent / "definitions"


def definition_folders(extra: Iterable[Path] = ()) -> list[Path]:
    """The configured folders first, then the shipped ``workflows/definitions``."""
    return [*extra, BUILTIN_DEFINITIONS]


def known_definitions(folders: Iterable[Path]) -> dict[str, Path]:
    """Workflow id → file, for every readable ``*.toml`` with a ``[workflow]`` id (first folder wins)."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.toml")) if Path(folder).is_dir() else ():
            try:
                workflow_id = tomllib.loads(path.read_text(encoding="utf-8"))["workflow"]["id"]
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError):
                continue
            if isinstance(workflow_id, str):
                found.setdefault(workflow_id, path)
    return found


def find_definition(ref: str, folders: Iterable[Path]) -> Path:
    """WORKFLOW is an id from the definition folders, or the path of a definition file."""
    folders = list(folders)
    known = known_definitions(folders)
    if ref in known:
        return known[ref]
    path = Path(ref)
    if path.suffix == ".toml" or path.exists() or "/" in ref:
        if not path.is_file():
            raise NotFound(f"{ref}: no such definition file")
        return path
    names = ", ".join(sorted(known)) or "none"
    raise NotFound(f'unknown workflow "{ref}" (known: {names}; or give the path of a definition file)')


@dataclass(frozen=True)
class Bundle:
    """A definition with the units, registers and calendar it is planned against."""

    loaded: LoadedDefinition
    units: LoadedUnits
    registers: Mapping[str, Register]
    calendar: WorkdayCalendar

    @property
    def definition(self):
        return self.loaded.definition


def load_registers(paths: Mapping[str, Path]) -> dict[str, Register]:
    problems: list[Problem] = []
    registers: dict[str, Register] = {}
    for name, path in paths.items():
        try:
            registers[name] = load_register(name, Path(path))
        except DefinitionError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DefinitionError(problems)
    return registers


def make_workflow_calendar(
    name: str, overrides: Path | None, on_assumed: Callable[[int, str], None] | None
) -> WorkdayCalendar:
    return make_calendar(name, load_overrides(overrides) if overrides else None, on_assumed)


def load_bundle(
    definition_path: Path,
    units_path: Path,
    register_paths: Mapping[str, Path] | None = None,
    *,
    overrides: Path | None = None,
    on_assumed: Callable[[int, str], None] | None = None,
) -> Bundle:
    """Load and cross-check a definition, a units file and registers; every problem at once."""
    problems: list[Problem] = []
    loaded = units = None
    registers: dict[str, Register] = {}
    for step in ("definition", "units", "registers"):
        try:
            if step == "definition":
                loaded = load_definition(definition_path)
            elif step == "units":
                units = load_units(units_path)
            else:
                registers = load_registers(register_paths or {})
        except DefinitionError as exc:
            problems.extend(exc.problems)
    if loaded is not None and units is not None:
        problems.extend(check_definition_against(loaded, units, registers))
    if problems:
        raise DefinitionError(problems)
    assert loaded is not None and units is not None
    cal = make_workflow_calendar(loaded.definition.workflow.calendar, overrides, on_assumed)
    return Bundle(loaded, units, registers, cal)
