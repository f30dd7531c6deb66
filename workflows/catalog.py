"""Find definition files by workflow id, and load everything one plan needs into a ``Bundle``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from workflows.calendar import WorkdayCalendar, load_overrides, make_calendar
from workflows.errors import DefinitionError, NotFound, Problem
from workflows.loader import (
    LoadedDefinition,
    LoadedUnits,
    check_definition_against,
    load_units,
    read_definition,
)
from workflows.registers import Register, load_register
from workflows.settings import SettingValues
from workflows.source import parse_toml

BUILTIN_DEFINITIONS = Path(__file__).resolve().parent / "definitions"


def definition_folders(extra: Iterable[Path] = ()) -> list[Path]:
    """The configured folders first, then the shipped ``workflows/definitions``."""
    return [*extra, BUILTIN_DEFINITIONS]


def definition_files(folders: Iterable[Path]) -> list[Path]:
    """Every ``*.toml`` file in ``folders`` (in folder order, sorted by name within a folder)."""
    files: list[Path] = []
    for folder in folders:
        if Path(folder).is_dir():
            files.extend(sorted(Path(folder).glob("*.toml")))
    return files


def _workflow_id(path: Path) -> str | None:
    """The ``[workflow] id`` of a definition file, or None if it is unreadable or has none."""
    try:
        workflow_id = parse_toml(path.read_text(encoding="utf-8-sig"))["workflow"]["id"]
    except (OSError, ValueError, KeyError, TypeError):  # (UnicodeDecodeError, TOML errors: ValueError)
        return None
    return workflow_id if isinstance(workflow_id, str) else None


def known_definitions(folders: Iterable[Path]) -> dict[str, Path]:
    """Workflow id → file, for every readable ``*.toml`` with a ``[workflow]`` id (first folder wins)."""
    found: dict[str, Path] = {}
    for path in definition_files(folders):
        workflow_id = _workflow_id(path)
        if workflow_id is not None:
            found.setdefault(workflow_id, path)
    return found


def find_definition(ref: str, folders: Iterable[Path]) -> Path:
    """WORKFLOW is an id from the definition folders, or the path of a definition file.

    Raises ``NotFound`` (exit 2) naming the known ids, and any file of the folders that could not
    be read (a broken file's id cannot be known: ``duban validate`` shows what is wrong with it).
    """
    folders = list(folders)
    known = known_definitions(folders)
    if ref in known:
        return known[ref]
    path = Path(ref)
    if path.is_file():
        return path
    if path.suffix == ".toml" or "/" in ref or path.exists():
        raise NotFound(f"{ref}: no such definition file")
    names = ", ".join(sorted(known)) or "none"
    unreadable = [str(p) for p in definition_files(folders) if _workflow_id(p) is None]
    broken = (
        f"; not readable as a definition: {', '.join(unreadable)} (run duban validate)" if unreadable else ""
    )
    raise NotFound(
        f'unknown workflow "{ref}" (known: {names}{broken}; or give the path of a definition file)'
    )


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


def _anchored_registers(data: Mapping, register_paths: Mapping[str, Path]) -> dict[str, Path]:
    """The registers a definition's anchors name (those given; a missing one is reported by the check)."""
    names = set()
    for table in ("tasks", "duties"):
        items = data.get(table)
        for task in items if isinstance(items, list) else ():
            anchor = task.get("anchor") if isinstance(task, dict) else None
            if isinstance(anchor, str) and anchor.startswith("register:"):
                names.add(anchor[len("register:") :].split(".", 1)[0])
    return {name: Path(path) for name, path in register_paths.items() if name in names}


def load_bundle(
    definition_path: Path,
    units_path: Path,
    register_paths: Mapping[str, Path] | None = None,
    *,
    overrides: Path | None = None,
    on_assumed: Callable[[int, str], None] | None = None,
    settings: SettingValues | None = None,
) -> Bundle:
    """Load and cross-check a definition, a units file, its registers and its calendar.

    Every problem of every file at once, as one ``DefinitionError``: the definition is checked
    against the units file even when it has problems of its own. Only the registers the
    definition's anchors name are read. ``settings``: the deployment's values for the plan's
    ``[settings]`` (its defaults without them).
    """
    problems: list[Problem] = []
    read = units = None
    registers: dict[str, Register] = {}
    try:
        read = read_definition(definition_path, settings)
        problems.extend(read.problems)
    except DefinitionError as exc:
        problems.extend(exc.problems)
    try:
        units = load_units(units_path)
    except DefinitionError as exc:
        problems.extend(exc.problems)
    if read is not None:
        try:
            registers = load_registers(_anchored_registers(read.data, register_paths or {}))
        except DefinitionError as exc:
            problems.extend(exc.problems)
        if units is not None:
            problems.extend(check_definition_against(read, units, registers))
    cal = None
    if read is not None and read.definition is not None:
        try:
            cal = make_workflow_calendar(read.definition.workflow.calendar, overrides, on_assumed)
        except DefinitionError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DefinitionError(problems)
    assert read is not None and units is not None and cal is not None
    return Bundle(read.loaded(), units, registers, cal)
