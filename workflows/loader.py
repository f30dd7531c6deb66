"""Load definition and units files, reporting every problem as ``FILE:LINE: message``.

Structure and formats are checked by the pydantic schema; the checks that need the whole file
(duplicate ids, unknown phases, dates that contradict each other) and the checks of a
definition against a units file and its registers are here. All problems of a file are
collected and raised together: the whole-file checks and the checks against the units file run
on every part of the file that is valid by itself, even when another part is not. Pydantic's
errors are turned into located problems in pydantic_problems.py (``_pydantic_problems`` is
re-exported here).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from workflows.errors import DefinitionError, Problem
from workflows.pydantic_problems import _pydantic_problems
from workflows.refs import TASK_TABLES, did_you_mean, entries, ref_lists, refs_at, role_uses
from workflows.registers import Register, check_register
from workflows.roles import missing_role
from workflows.schema import Definition, Phase, Task
from workflows.settings import SettingValues, resolve_settings, settings_digest
from workflows.source import SourceMap, format_loc, read_toml
from workflows.units import UnitDirectory, UnitsFile

_ANCHOR = re.compile(r"^register:([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$")


@dataclass(frozen=True)
class LoadedDefinition:
    """A valid definition file: the parsed definition, where it came from, and its raw TOML data."""

    definition: Definition
    path: str
    source: SourceMap
    digest: str
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def id(self) -> str:
        return self.definition.workflow.id


@dataclass(frozen=True)
class LoadedUnits:
    directory: UnitDirectory
    path: str
    source: SourceMap
    digest: str


@dataclass(frozen=True)
class DefinitionFile:
    """A definition file as read, valid or not: ``problems`` are its own (not the cross-file ones)."""

    path: str
    data: Mapping[str, Any]
    source: SourceMap
    digest: str
    definition: Definition | None
    problems: tuple[Problem, ...]

    def loaded(self) -> LoadedDefinition:
        """The valid definition; ``DefinitionError`` with every problem if it is not valid."""
        if self.problems or self.definition is None:
            raise DefinitionError(list(self.problems))
        return LoadedDefinition(self.definition, self.path, self.source, self.digest, self.data)


# -- reading ----------------------------------------------------------------------------------


# -- whole-file checks ------------------------------------------------------------------------


def _valid(model: type[BaseModel], raw: dict[str, Any]) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


class _Collector:
    """Problems of one file, each at the line of its key path."""

    def __init__(self, path: str, source: SourceMap):
        self.path, self.source, self.problems = path, source, []

    def at(self, loc: tuple, message: str) -> None:
        self.problems.append(Problem(self.path, self.source.line_of(loc), f"{format_loc(loc)}: {message}"))


def _phase_problems(data: Mapping[str, Any], out: _Collector) -> dict[str, Phase | None]:
    """Duplicate phase ids and backwards phases; returns phase id → the phase (None if invalid)."""
    phases: dict[str, tuple[int, Phase | None]] = {}
    for i, raw in entries(data, "phases"):
        pid = raw.get("id")
        if not isinstance(pid, str):
            continue
        if pid in phases:
            out.at(("phases", i, "id"), f'duplicate phase id "{pid}" (first at phases[{phases[pid][0]}])')
            continue
        phase = _valid(Phase, raw)
        phases[pid] = (i, phase)
        if phase is not None and phase.end < phase.start:
            out.at(("phases", i, "end"), f'"{phase.end}" is before the phase starts ("{phase.start}")')
    return {pid: phase for pid, (_, phase) in phases.items()}


def _task_problems(
    table: str, i: int, raw: dict[str, Any], phases: Mapping[str, Phase | None], out: _Collector
) -> None:
    """An internal key, an unknown phase, a due date before the phase starts."""
    if "kind" in raw:
        out.at((table, i, "kind"), f'unknown key "kind" ([[{table}]] sets it)')
    phase_id = raw.get("phase")
    if not isinstance(phase_id, str):
        return
    if phase_id not in phases:
        hint = did_you_mean(phase_id, phases) or "phases: " + (", ".join(phases) or "none defined")
        out.at((table, i, "phase"), f'unknown phase "{phase_id}" ({hint})')
        return
    phase = phases[phase_id]
    task = _valid(Task, {k: v for k, v in raw.items() if k != "kind"})
    if task is None or phase is None or task.due is None or task.window is not None:
        return
    if task.due < phase.start:
        out.at(
            (table, i, "due"),
            f'"{task.due}" is before its phase "{phase.id}" starts ("{phase.start}"): '
            "give a window, another phase, or no phase",
        )


def _id_problems(data: Mapping[str, Any], out: _Collector) -> None:
    """Task ids are unique across tasks and duties; indicator ids across the whole file."""
    seen_tasks: dict[str, str] = {}
    seen_indicators: dict[str, str] = {}
    for table in TASK_TABLES:
        for i, raw in entries(data, table):
            tid = raw.get("id")
            if isinstance(tid, str):
                if tid in seen_tasks:
                    out.at((table, i, "id"), f'duplicate task id "{tid}" (first at {seen_tasks[tid]})')
                seen_tasks.setdefault(tid, f"{table}[{i}]")
            for j, ind in entries(raw, "indicators"):
                iid = ind.get("id")
                if not isinstance(iid, str):
                    continue
                if iid in seen_indicators:
                    out.at(
                        (table, i, "indicators", j, "id"),
                        f'duplicate indicator id "{iid}" (first at {seen_indicators[iid]})',
                    )
                seen_indicators.setdefault(iid, f"{table}[{i}].indicators[{j}]")


def _definition_problems(data: Mapping[str, Any], path: str, source: SourceMap) -> list[Problem]:
    """Checks that need the whole file; each part is checked if it is valid by itself."""
    out = _Collector(path, source)
    phases = _phase_problems(data, out)
    _id_problems(data, out)
    for table in TASK_TABLES:
        for i, raw in entries(data, table):
            _task_problems(table, i, raw, phases, out)
    return out.problems


# -- definitions ------------------------------------------------------------------------------


def read_definition(path: Path, settings: SettingValues | None = None) -> DefinitionFile:
    """Read and check one definition file by itself; its problems are collected, not raised.

    ``settings``: a deployment's values for the plan's ``[settings]`` (settings.py); without them
    the plan's own defaults apply. Raises ``DefinitionError`` only when there is nothing to check:
    the file cannot be read, is not TOML, or is empty.
    """
    data, source, digest = read_toml(path)
    shown = str(path)
    if not data:
        raise DefinitionError(
            [Problem(shown, 1, "empty file: expected a definition with a [workflow] table")]
        )
    out = _Collector(shown, source)
    data, problems = resolve_settings(data, settings, out.at)
    problems.extend(out.problems)
    digest = settings_digest(digest, settings)
    definition: Definition | None = None
    try:
        definition = Definition.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, Definition, shown, source))
    problems.extend(_definition_problems(data, shown, source))
    if problems:
        definition = None
    return DefinitionFile(shown, data, source, digest, definition, tuple(sorted(set(problems))))


def load_definition(path: Path, settings: SettingValues | None = None) -> LoadedDefinition:
    """Load and check one definition file (alone; see :func:`check_definition_against`)."""
    return read_definition(path, settings).loaded()


# -- units ------------------------------------------------------------------------------------


def load_units(path: Path) -> LoadedUnits:
    """Load and check one units file: ids unique, addresses valid, no control characters."""
    data, source, digest = read_toml(path)
    shown = str(path)
    if not data:
        raise DefinitionError([Problem(shown, 1, "empty file: expected [[units]] tables")])
    problems: list[Problem] = []
    parsed: UnitsFile | None = None
    try:
        parsed = UnitsFile.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, UnitsFile, shown, source))
    out = _Collector(shown, source)
    seen: dict[str, int] = {}
    for i, unit in entries(data, "units"):
        uid = unit.get("id")
        if isinstance(uid, str):
            if uid in seen:
                out.at(("units", i, "id"), f'duplicate unit id "{uid}" (first at units[{seen[uid]}])')
            seen.setdefault(uid, i)
        emails = unit.get("emails")
        for j, address in enumerate(emails if isinstance(emails, list) else []):
            if isinstance(address, str) and address in emails[:j]:
                out.at(("units", i, "emails", j), f'duplicate address "{address}"')
    if parsed is not None:
        _role_map_problems(parsed, out)
    problems.extend(out.problems)
    if problems or parsed is None:
        raise DefinitionError(problems)
    return LoadedUnits(UnitDirectory(tuple(parsed.units), parsed.roles), shown, source, digest)


def _role_map_problems(parsed: UnitsFile, out: _Collector) -> None:
    """The ``[roles]`` table against the file's units: every target exists, a mapped role is not
    also held by a unit, and a ``role:X`` target is held by a unit (mappings do not chain)."""
    ids = {u.id for u in parsed.units}
    held: dict[str, str] = {}
    for unit in parsed.units:
        for role in unit.roles:
            held.setdefault(role, unit.id)
    for role, targets in parsed.roles.items():
        if role in held:
            out.at(
                ("roles", role),
                f'unit "{held[role]}" holds role "{role}" itself: a role is either held by units '
                "or mapped here, not both",
            )
        for j, target in enumerate(targets):
            loc = ("roles", role, j) if len(targets) > 1 else ("roles", role)
            if target.startswith("role:"):
                other = target[5:]
                if other in parsed.roles:
                    out.at(loc, f'"{target}" is mapped here too: map "{role}" to units or to a held role')
                elif other not in held:
                    hint = did_you_mean(other, held)
                    out.at(loc, f'no unit has role "{other}"' + (f" ({hint})" if hint else ""))
            elif target not in ids:
                hint = did_you_mean(target, ids)
                out.at(loc, f'unknown unit "{target}"' + (f" ({hint})" if hint else ""))


# -- a definition against units and registers ------------------------------------------------


def _check_refs(
    data: Mapping[str, Any], directory: UnitDirectory, units_path: str, at: Callable[[tuple, str], None]
) -> None:
    """An unknown unit id at each of its places; a role no unit holds once, at its first use, with
    every task that needs it (``roles.missing_role``)."""
    for loc, value, may_be_lead in ref_lists(data):
        for ref_loc, ref in refs_at(loc, value):
            if (may_be_lead and ref == "lead") or ref.startswith("role:") or directory.resolves(ref):
                continue
            hint = did_you_mean(ref, directory.by_id)
            at(ref_loc, f'unknown unit "{ref}" (not in {units_path}{"; " + hint if hint else ""})')
    uses = role_uses(data)
    for role, found in uses.items():
        if not directory.resolves(f"role:{role}"):
            at(found[0].loc, missing_role(role, found, directory, units_path, uses))


def _check_anchors(
    data: Mapping[str, Any],
    directory: UnitDirectory,
    registers: Mapping[str, Register],
    at: Callable[[tuple, str], None],
) -> list[Problem]:
    problems: list[Problem] = []
    for table in TASK_TABLES:
        for i, task in entries(data, table):
            found = _ANCHOR.match(task.get("anchor", "")) if isinstance(task.get("anchor"), str) else None
            if not found:
                continue
            name, column = found.groups()
            register = registers.get(name)
            if register is None:
                at(
                    (table, i, "anchor"),
                    f'no register "{name}" given (use --register {name}=FILE.csv or [registers] in config)',
                )
            else:
                problems.extend(check_register(register, column, directory))
    return problems


def check_references(
    data: Mapping[str, Any],
    source: SourceMap,
    path: str,
    units: LoadedUnits,
    registers: Mapping[str, Register] | None = None,
) -> list[Problem]:
    """Every unit reference must resolve, every role must be held, every anchor must have its register.

    Works on raw definition data, so a definition with other problems is still checked.
    """
    out = _Collector(path, source)
    _check_refs(data, units.directory, units.path, out.at)
    register_problems = _check_anchors(data, units.directory, registers or {}, out.at)
    return sorted(set(out.problems + register_problems))


def check_definition_against(
    loaded: LoadedDefinition | DefinitionFile,
    units: LoadedUnits,
    registers: Mapping[str, Register] | None = None,
) -> list[Problem]:
    """:func:`check_references` for a loaded (or read) definition."""
    data = loaded.data
    if not data and loaded.definition is not None:
        data = loaded.definition.model_dump()
    return check_references(data, loaded.source, loaded.path, units, registers)


def file_kind(data: Mapping[str, Any]) -> str:
    """Tell files apart by content: ``"definition"``, ``"units"``, ``"calendar"`` or ``"unknown"``.

    A definition has ``[workflow]``; a units file ``[[units]]``; a calendar override file only
    ``[YYYY]`` sections.
    """
    if "workflow" in data:
        return "definition"
    if "units" in data:
        return "units"
    if data and all(re.fullmatch(r"[1-9]\d{3}", str(key)) for key in data):
        return "calendar"
    return "unknown"
