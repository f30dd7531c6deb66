"""REF: how an operator names one obligation on the command line.

A REF is one of:

- an obligation id, ``12`` or ``#12`` (the number ``duban tasks`` shows and every email carries);
- an obligation key, ``rule-of-law-pilot/2026/T05/county-police/-``;
- a task id with ``--unit UNIT`` (a unit id, or its exact name from the units file), and where
  the task recurs ``--occurrence KEY``, and where several programs have it
  ``--program WORKFLOW[:YEAR]``. A task with one obligation needs no ``--unit``.

Whatever cannot be resolved to exactly one obligation is a ``DubanError`` (exit 2) whose one line
names what is wrong: an unknown task, unit, occurrence or program is ``NotFound``; several
matches are ``AmbiguousRef`` listing the candidates with their ids.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, select

from orchestrator.store.models import Obligation, Program
from workflows.errors import DubanError, NotFound

_ID = re.compile(r"^#?(\d+)$")
_MAX_LISTED = 8
MAX_ID = 2**63 - 1  # the largest id a row can have (SQLite's INTEGER, PostgreSQL's bigint)


def row_id(text: str | int) -> int | None:
    """``12``, ``#12`` or ``"12"`` as a row id; None for anything else, a number past ``MAX_ID``
    included (no row has it; the drivers refuse to even look it up)."""
    found = _ID.match(str(text).strip())
    number = int(found.group(1)) if found else None
    return number if number is not None and number <= MAX_ID else None


class AmbiguousRef(DubanError):
    """A REF that matches more than one obligation (exit 2); the message lists the candidates."""


class BadRef(DubanError):
    """A REF, or an option with it, that is malformed (exit 2)."""


@dataclass(frozen=True)
class Ref:
    """What the operator typed: REF and the options that narrow it."""

    text: str
    unit: str | None = None
    occurrence: str | None = None
    program: str | None = None

    def __str__(self) -> str:
        parts = [self.text]
        for flag, value in (
            ("--unit", self.unit),
            ("--occurrence", self.occurrence),
            ("--program", self.program),
        ):
            if value is not None:
                parts.append(f"{flag} {value}")
        return " ".join(parts)


def parse_program(text: str) -> tuple[str, int | None]:
    """``WORKFLOW`` or ``WORKFLOW:YEAR`` → (workflow, year or None)."""
    workflow, sep, year = text.strip().partition(":")
    if not workflow or (sep and not re.fullmatch(r"\d{4}", year)):
        raise BadRef(f'--program: bad value "{text}", expected WORKFLOW or WORKFLOW:YYYY')
    return workflow, int(year) if sep else None


def find_programs(session: Session, spec: str | None) -> list[Program]:
    """Programs matching ``--program`` (all programs when ``spec`` is None); ``NotFound`` if none."""
    programs = list(session.exec(select(Program).order_by(Program.workflow, Program.year)))
    if spec is None:
        return programs
    workflow, year = parse_program(spec)
    chosen = [p for p in programs if p.workflow == workflow and (year is None or p.year == year)]
    if not chosen:
        known = ", ".join(f"{p.workflow}:{p.year}" for p in programs) or "none started"
        raise NotFound(f'--program: no program "{spec}" (programs: {known})')
    return chosen


def unit_id(text: str, names: Mapping[str, str]) -> str:
    """A unit id, or the id of the unit whose name is exactly ``text`` (``names``: id → name)."""
    if text in names:
        return text
    by_name = [uid for uid, name in names.items() if name == text]
    return by_name[0] if len(by_name) == 1 else text


def configured_unit_names(path, on_problem=None) -> dict[str, str]:
    """Unit id → name from the units file at ``path`` (``{}`` without one). A file that cannot be
    read gives ``{}`` and its first problem to ``on_problem``: listings then show ids."""
    if path is None:
        return {}
    quick = _names_from_toml(path)  # names only: the full check (``duban validate``) costs more
    if quick is not None:
        return quick
    from workflows.loader import load_units

    try:
        return {u.id: u.name for u in load_units(path).directory.units}
    except DubanError as exc:
        if on_problem is not None:
            on_problem(f"无法读取单位名称，以下以单位编号显示（{str(exc).splitlines()[0]}）")
        return {}


def _names_from_toml(path) -> dict[str, str] | None:
    """id → name read straight from a well-formed units file; None (the full load decides) for
    anything unexpected: a syntax error, a missing or non-text id or name, a control character."""
    import tomllib
    import unicodedata

    try:
        with open(path, "rb") as file:
            units = tomllib.load(file).get("units")
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(units, list) or not units:
        return None
    names = {}
    for unit in units:
        uid, name = (unit.get("id"), unit.get("name")) if isinstance(unit, dict) else (None, None)
        if not isinstance(uid, str) or not isinstance(name, str) or not name.strip():
            return None
        if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in uid + name):
            return None
        names[uid.strip()] = name.strip()
    return names


def known_unit(session: Session, text: str | None, names: Mapping[str, str]) -> str | None:
    """``--unit`` (a unit id or its exact name) as a unit id; ``NotFound`` when neither the units
    file nor any obligation or event has it. None stays None (no filter)."""
    if text is None:
        return None
    from orchestrator.store.models import Event

    unit = unit_id(text.strip(), names)
    if unit in names or session.exec(select(Obligation.id).where(Obligation.unit == unit).limit(1)).first():
        return unit
    if session.exec(select(Event.id).where(Event.unit == unit).limit(1)).first():
        return unit
    raise NotFound(f'--unit: unknown unit "{text}"')


def known_phase(session: Session, phase: str | None, program_ids: Sequence[int]) -> str | None:
    """``--phase`` checked against the phases of the programs; None stays None."""
    if phase is None:
        return None
    from orchestrator.store.models import PhaseRun

    query = select(PhaseRun.phase).where(PhaseRun.program_id.in_(list(program_ids)))
    known = sorted(set(session.exec(query)))
    if phase not in known:
        raise NotFound(f'--phase: unknown phase "{phase}" (phases: {", ".join(known) or "none"})')
    return phase


def resolve(session: Session, ref: Ref | str | int, names: Mapping[str, str] | None = None) -> Obligation:
    """The one obligation ``ref`` names, or a one-line ``DubanError`` saying why there is not one."""
    if not isinstance(ref, Ref):
        ref = Ref(str(ref))
    text = ref.text.strip()
    found = _ID.match(text)
    if found or "/" in text:
        if ref.unit is not None or ref.occurrence is not None or ref.program is not None:
            raise BadRef(
                f"{text} names one obligation already: --unit, --occurrence and --program go with a TASK_ID"
            )
        if found:
            number = row_id(text)
            obligation = session.get(Obligation, number) if number is not None else None
            if obligation is None:
                raise NotFound(f"no obligation #{found.group(1)} (`duban tasks` lists them)")
            return obligation
        obligation = session.exec(select(Obligation).where(Obligation.key == text)).first()
        if obligation is None:
            raise NotFound(f'no obligation with the key "{text}"')
        return obligation
    if not text:
        raise BadRef("REF is empty: give an obligation id (#12) or a TASK_ID with --unit UNIT_ID")
    return _by_task(session, ref, text, names or {})


def _by_task(session: Session, ref: Ref, task: str, names: Mapping[str, str]) -> Obligation:
    program_ids = [p.id for p in find_programs(session, ref.program)]
    base = select(Obligation).where(Obligation.program_id.in_(program_ids))
    candidates = list(session.exec(base.where(func.upper(Obligation.task) == task.upper())))
    if not candidates:
        where = f" in {ref.program}" if ref.program else ""
        raise NotFound(f'unknown task "{task}"{where}: no obligation has it (`duban tasks` lists them)')
    if ref.unit is not None:
        unit = unit_id(ref.unit.strip(), names)
        known_unit = session.exec(select(Obligation.id).where(Obligation.unit == unit).limit(1)).first()
        if known_unit is None and unit not in names:
            raise NotFound(f'--unit: unknown unit "{ref.unit}"')
        mine = [o for o in candidates if o.unit == unit]
        if not mine:
            units = sorted({o.unit for o in candidates})
            raise NotFound(
                f'{candidates[0].task} has no obligation for unit "{ref.unit}" (its units: {_listed(units)})'
            )
        candidates = mine
    if ref.occurrence is not None:
        wanted = ref.occurrence.strip()
        mine = [o for o in candidates if (o.occurrence or "-") == wanted]
        if not mine:
            occurrences = sorted({o.occurrence or "-" for o in candidates})
            raise NotFound(
                f'{candidates[0].task} has no occurrence "{wanted}" for that unit (occurrences: {_listed(occurrences)})'
            )
        candidates = mine
    if len(candidates) > 1:
        raise AmbiguousRef(_ambiguous(ref, candidates, session))
    return candidates[0]


def _listed(values: Sequence[str]) -> str:
    shown = ", ".join(values[:_MAX_LISTED])
    return shown + (f", … {len(values) - _MAX_LISTED} more" if len(values) > _MAX_LISTED else "")


def _ambiguous(ref: Ref, candidates: list[Obligation], session: Session) -> str:
    years = {p.id: f"{p.workflow}:{p.year}" for p in session.exec(select(Program))}
    candidates = sorted(candidates, key=lambda o: (o.program_id, o.unit, o.occurrence or "", o.id))
    hint = []
    if len({o.program_id for o in candidates}) > 1:
        hint.append("--program")
    if len({o.unit for o in candidates}) > 1:
        hint.append("--unit")
    if len({o.occurrence for o in candidates}) > 1:
        hint.append("--occurrence")
    listed = [
        f"#{o.id} {o.unit}"
        + (f" {o.occurrence}" if o.occurrence else "")
        + f" ({years.get(o.program_id, '?')})"
        for o in candidates
    ]
    return (
        f'"{ref}" matches {len(candidates)} obligations; add {" / ".join(hint) or "--unit"} or use an id: '
        + _listed(listed)
    )
