"""Load definition and units files, reporting every problem as ``FILE:LINE: message``.

Structure and formats are checked by the pydantic schema; the checks that need the whole file
(duplicate ids, unknown phases, dates that contradict each other) and the checks of a
definition against a units file and its registers are here. All problems of a file are
collected and raised together.
"""

from __future__ import annotations

import difflib
import hashlib
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from workflows.errors import DefinitionError, Problem
from workflows.registers import Register, check_register
from workflows.schema import Definition
from workflows.source import SourceMap, format_loc, syntax_error_line
from workflows.units import UnitDirectory, UnitsFile


@dataclass(frozen=True)
class LoadedDefinition:
    definition: Definition
    path: str
    source: SourceMap
    digest: str

    @property
    def id(self) -> str:
        return self.definition.workflow.id


@dataclass(frozen=True)
class LoadedUnits:
    directory: UnitDirectory
    path: str
    source: SourceMap
    digest: str


def read_toml(path: Path) -> tuple[dict[str, Any], SourceMap, str]:
    """Parse a TOML file; a missing file or a syntax error is a located ``DefinitionError``."""
    shown = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DefinitionError([Problem(shown, 1, "no such file")]) from None
    except IsADirectoryError:
        raise DefinitionError([Problem(shown, 1, "is a directory, expected a TOML file")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DefinitionError([Problem(shown, 1, f"not UTF-8 ({exc.reason} at byte {exc.start})")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        raise DefinitionError(
            [Problem(shown, syntax_error_line(message), f"TOML syntax: {message}")]
        ) from None
    return data, SourceMap(text), hashlib.sha256(raw).hexdigest()[:16]


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys a model at ``loc`` would accept (for "did you mean" hints)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        for candidate in (*getattr(annotation, "__args__", ()), annotation):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                current = candidate
                break
            for inner in getattr(candidate, "__args__", ()):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    current = inner
                    break
    return list(getattr(current, "model_fields", {}))


def _pydantic_problems(exc: ValidationError, model: type[BaseModel], path: str, source: SourceMap):
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        where = format_loc(loc)
        kind = error["type"]
        value = error.get("input")
        if kind == "missing":
            message = f"{where}: required key is missing"
        elif kind == "extra_forbidden":
            allowed = [k for k in _allowed_keys(model, loc) if k != "kind"]
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = (
                f' (did you mean "{close[0]}"?)'
                if close
                else (f" (allowed: {', '.join(allowed)})" if allowed else "")
            )
            message = f'{where}: unknown key "{loc[-1]}"{hint}'
        else:
            text = error["msg"].removeprefix("Value error, ")
            shown_value = value if isinstance(value, str | int | float | bool) else None
            if shown_value is not None and str(shown_value) not in text:
                text = f"{text} (got {shown_value!r})"
            message = f"{where}: {text}" if where else text
        problems.append(Problem(path, source.line_of(loc), message))
    return problems


def _definition_problems(data: dict[str, Any], defn: Definition | None, path: str, source: SourceMap):
    """Whole-file checks; ``defn`` is None when the schema failed (then checks use raw data)."""
    problems: list[Problem] = []

    def at(loc: tuple, message: str) -> None:
        problems.append(Problem(path, source.line_of(loc), message))

    phases = [p for p in data.get("phases", []) if isinstance(p, dict)]
    phase_ids: dict[str, int] = {}
    for i, phase in enumerate(phases):
        pid = phase.get("id")
        if isinstance(pid, str):
            if pid in phase_ids:
                at(
                    ("phases", i, "id"),
                    f'phases[{i}].id: duplicate phase id "{pid}" (first at phases[{phase_ids[pid]}])',
                )
            phase_ids.setdefault(pid, i)
    seen_tasks: dict[str, str] = {}
    seen_indicators: dict[str, str] = {}
    for table in ("tasks", "duties"):
        for i, task in enumerate(data.get(table, []) if isinstance(data.get(table), list) else []):
            if not isinstance(task, dict):
                continue
            tid = task.get("id")
            if isinstance(tid, str):
                if tid in seen_tasks:
                    at(
                        (table, i, "id"),
                        f'{table}[{i}].id: duplicate id "{tid}" (first at {seen_tasks[tid]})',
                    )
                seen_tasks.setdefault(tid, f"{table}[{i}]")
            phase = task.get("phase")
            if isinstance(phase, str) and phase not in phase_ids:
                known = ", ".join(phase_ids) or "none defined"
                at((table, i, "phase"), f'{table}[{i}].phase: unknown phase "{phase}" (phases: {known})')
            for j, ind in enumerate(
                task.get("indicators", []) if isinstance(task.get("indicators"), list) else []
            ):
                iid = ind.get("id") if isinstance(ind, dict) else None
                if isinstance(iid, str):
                    if iid in seen_indicators:
                        at(
                            (table, i, "indicators"),
                            f'{table}[{i}].indicators[{j}].id: duplicate indicator id "{iid}" '
                            f"(first at {seen_indicators[iid]})",
                        )
                    seen_indicators.setdefault(iid, f"{table}[{i}]")
    if defn is None:
        return problems
    for i, phase in enumerate(defn.phases):
        if phase.end < phase.start:
            at(("phases", i, "end"), f'phases[{i}].end: "{phase.end}" is before start "{phase.start}"')
    for table, tasks in (("tasks", defn.tasks), ("duties", defn.duties)):
        for i, task in enumerate(tasks):
            phase = defn.phase(task.phase)
            if phase and task.due and task.window is None and task.due < phase.start:
                at(
                    (table, i, "due"),
                    f'{table}[{i}].due: "{task.due}" is before its phase "{phase.id}" opens on "{phase.start}"; '
                    "give a window or another phase",
                )
    if defn.evaluation and defn.evaluation.bands:
        mins = [b.min for b in defn.evaluation.bands]
        if 0 not in mins:
            at(("evaluation", "bands"), "evaluation.bands: one band must have min = 0 (the lowest grade)")
    return problems


def load_definition(path: Path) -> LoadedDefinition:
    """Load and check one definition file (alone; see :func:`check_definition_against`)."""
    data, source, digest = read_toml(path)
    shown = str(path)
    defn: Definition | None = None
    problems: list[Problem] = []
    try:
        defn = Definition.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, Definition, shown, source))
    problems.extend(_definition_problems(data, defn, shown, source))
    if problems or defn is None:
        raise DefinitionError(problems)
    return LoadedDefinition(defn, shown, source, digest)


def load_units(path: Path) -> LoadedUnits:
    """Load and check one units file: ids unique, addresses valid, no control characters."""
    data, source, digest = read_toml(path)
    shown = str(path)
    problems: list[Problem] = []
    parsed: UnitsFile | None = None
    try:
        parsed = UnitsFile.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, UnitsFile, shown, source))
    seen: dict[str, int] = {}
    for i, unit in enumerate(data.get("units", []) if isinstance(data.get("units"), list) else []):
        uid = unit.get("id") if isinstance(unit, dict) else None
        if isinstance(uid, str):
            if uid in seen:
                problems.append(
                    Problem(
                        shown, source.line_of(("units", i, "id")), f'units[{i}].id: duplicate unit id "{uid}"'
                    )
                )
            seen.setdefault(uid, i)
    if problems or parsed is None:
        raise DefinitionError(problems)
    return LoadedUnits(UnitDirectory(tuple(parsed.units)), shown, source, digest)


def check_definition_against(
    loaded: LoadedDefinition, units: LoadedUnits, registers: Mapping[str, Register] | None = None
) -> list[Problem]:
    """Every unit reference must resolve, every role must be held, every anchor must have its register."""
    defn, source, path = loaded.definition, loaded.source, loaded.path
    directory = units.directory
    problems: list[Problem] = []

    def check_refs(loc: tuple, refs: Iterable[str]) -> None:
        for ref in refs:
            if ref == "lead":
                continue
            if not directory.expand(ref):
                if ref.startswith("role:"):
                    message = f'{format_loc(loc)}: no unit in {units.path} has role "{ref[5:]}"'
                else:
                    message = f'{format_loc(loc)}: unknown unit "{ref}" (not in {units.path})'
                problems.append(Problem(path, source.line_of(loc), message))

    wf = defn.workflow
    check_refs(("workflow", "contact"), [wf.contact] if wf.contact else [])
    for step in wf.escalation:
        check_refs(("workflow", "escalation"), step.to)
    for table, tasks in (("tasks", defn.tasks), ("duties", defn.duties)):
        for i, task in enumerate(tasks):
            check_refs((table, i, "lead"), task.lead)
            check_refs((table, i, "responsible"), task.responsible)
            for step in task.escalation or ():
                check_refs((table, i, "escalation"), step.to)
            anchor = task.anchor_register
            if anchor:
                name, column = anchor
                register = (registers or {}).get(name)
                if register is None:
                    problems.append(
                        Problem(
                            path,
                            source.line_of((table, i, "anchor")),
                            f'{table}[{i}].anchor: no register "{name}" given '
                            f"(use --register {name}=FILE.csv or [registers] in config)",
                        )
                    )
                else:
                    problems.extend(check_register(register, column, directory))
    if defn.evaluation:
        check_refs(("evaluation", "subjects"), defn.evaluation.subjects)
        check_refs(("evaluation", "recipients"), defn.evaluation.recipients)
    return problems


def file_kind(data: Mapping[str, Any]) -> str:
    """Tell a definition from a units file by content: ``"definition"``, ``"units"`` or ``"unknown"``."""
    if "workflow" in data:
        return "definition"
    if "units" in data:
        return "units"
    return "unknown"
