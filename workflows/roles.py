"""A deployment's units against its plans' roles: what ``validate`` and the daemon say before
anything is sent.

- ``missing_role``: a plan's role that no unit holds and the units file does not map, said once,
  with every task that needs it and how to fix it (the units file's ``[roles]`` table).
- ``check_units``: every unit's roles and every ``[roles]`` entry against the roles the loaded plans
  use (a role no plan uses is an error at its line, with the plan roles it might mean); a unit that
  has no part in any plan (owes nothing, is sent nothing) is an error when its ``roles`` key is
  missing, else a warning; a role mapped to ``false`` is a warning naming the tasks that lose its
  units (where it leads or is told of escalations, the plan's office takes its part: said only
  when the plan has no office).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workflows.errors import Problem
from workflows.refs import RoleUse, contact_of, ref_lists, refs_at, role_uses
from workflows.source import format_loc
from workflows.units import UnitDirectory

if TYPE_CHECKING:
    from workflows.loader import LoadedUnits
    from workflows.registers import Register

FIX = (
    'give that role to a unit (roles = ["{role}"]), or map it in the [roles] table of {units}: '
    '{role} = "role:OTHER", = "UNIT-ID" or = false (none here: the office takes its lead)'
)


IN_FULL = 5  # tasks named with their titles in one line; the others by id


def _tasks_needing(uses: Iterable[RoleUse]) -> str:
    """``T01 建立健全行政决策机制 (lead), T05 … (responsible), [workflow] contact``; past ``IN_FULL``
    tasks, the rest by id (``and 18 more: T11, T12, …``)."""
    keys: dict[RoleUse, list[str]] = {}
    for use in uses:
        first = next((u for u in keys if u.label() == use.label()), use)
        wanted = keys.setdefault(first, [])
        if use.task is not None and use.key not in wanted:
            wanted.append(use.key)
    named = [f"{u.label()} ({', '.join(k)})" if k else u.label() for u, k in keys.items()]
    if len(named) <= IN_FULL + 1:
        return ", ".join(named)
    rest = [u.task[0] if u.task else u.label() for u in list(keys)[IN_FULL:]]
    return ", ".join(named[:IN_FULL]) + f" and {len(rest)} more: " + ", ".join(rest)


def missing_role(
    role: str,
    uses: Sequence[RoleUse],
    directory: UnitDirectory,
    units_path: str,
    plan_uses: Mapping[str, Any],
) -> str:
    """One line for a plan role no unit holds: what needs it and how to fix it. The did-you-mean
    names only a likely misspelling (``_misspelt``), never a role that merely looks alike."""
    close = _misspelt(role, list(directory.held), plan_uses)
    hint = f' (did you mean "{close}"?)' if close else ""
    tasks = len({u.task for u in uses if u.task is not None})
    needed = f"{tasks} task needs" if tasks == 1 else f"{tasks} tasks need" if tasks else "the plan needs"
    return (
        f'no unit in {units_path} has role "{role}"{hint}, which {needed}: '
        f"{_tasks_needing(uses)}; " + FIX.format(role=role, units=units_path)
    )


def _misspelt(role: str, held: Sequence[str], plan_uses: Mapping[str, Any]) -> str | None:
    """The units' role that ``role`` is probably a misspelling of (or the plan's misspelling of
    it): a close role the plan does not use, a very close one, or one that ``role`` begins. Never
    a role that merely shares a word (``supervision_bureau`` is not ``justice_bureau``)."""
    unused = [r for r in held if r not in plan_uses]
    close = difflib.get_close_matches(role, unused, n=1, cutoff=0.6)
    close = close or difflib.get_close_matches(role, held, n=1, cutoff=0.85)
    close = close or sorted((r for r in held if r.startswith(f"{role}_")), key=len)
    return close[0] if close else None


@dataclass(frozen=True)
class Plan:
    """A loaded plan as the checks read it: its id and raw definition data."""

    id: str
    data: Mapping[str, Any]
    registers: Mapping[str, Register] = field(default_factory=dict)


@dataclass
class UnitFindings:
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    idle: dict[str, Problem] = field(default_factory=dict)  # unit id → what is said of it


def _close_roles(role: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(role, known, n=3, cutoff=0.6)
    if not close:
        close = [k for k in known if len(role) >= 4 and (role in k or k in role)][:3]
    if close:
        return "did you mean " + " or ".join(f'"{c}"' for c in close) + "?"
    return "the plan's roles: " + ", ".join(sorted(known))


def _plans_named(plans: Sequence[Plan]) -> str:
    if len(plans) == 1:
        return plans[0].id
    return "any plan checked (" + ", ".join(p.id for p in plans) + ")"


def units_with_a_part(plans: Sequence[Plan], directory: UnitDirectory) -> set[str]:
    """Units some plan names, through a role or by id: responsible, lead (or the office that takes
    an absent role's lead), told of an escalation, the contact, scored or sent the scorecard, a
    register row's unit."""
    found: set[str] = set()
    for plan in plans:
        office = contact_of(plan.data)
        refs: set[str] = set()  # each distinct reference expanded once (a province: 50,000 units a role)
        for loc, value, _ in ref_lists(plan.data):
            supervises = loc[-1] == "lead" or "escalation" in loc  # an absent role's part: the office's
            for _, ref in refs_at(loc, value):
                absent = supervises and office and ref.startswith("role:") and directory.absent(ref[5:])
                refs.add(office if absent else ref)
        for ref in refs - {"lead"}:
            found.update(directory.expand(ref))
        for register in plan.registers.values():
            found.update(row.unit for row in register.rows)
    return found


def check_units(units: LoadedUnits, plans: Sequence[Plan]) -> UnitFindings:
    """The units file against the roles of ``plans`` (every plan loaded: the check is meaningless
    against a part of them). Nothing is checked when there is no plan."""
    findings = UnitFindings()
    if not plans:
        return findings
    directory, source, path = units.directory, units.source, units.path
    uses = {p.id: role_uses(p.data) for p in plans}
    used = sorted({role for found in uses.values() for role in found})
    plan_roles = {*used}
    mapped_to = {t[5:] for r in used for t in directory.role_map.get(r, ()) if t.startswith("role:")}
    named = _plans_named(plans)

    def at(loc: tuple, message: str, *, warning: bool = False) -> None:
        text = f"{'warning: ' if warning else ''}{format_loc(loc)}: {message}"
        (findings.warnings if warning else findings.problems).append(Problem(path, source.line_of(loc), text))

    for i, unit in enumerate(directory.units):
        for j, role in enumerate(unit.roles):
            if role not in plan_roles and role not in mapped_to:  # a plan's role mapped to it uses it
                at(
                    ("units", i, "roles", j),
                    f'role "{role}" is not used by {named} ({_close_roles(role, used)})',
                )
    for role in directory.role_map:
        if role not in plan_roles:
            at(("roles", role), f'role "{role}" is not used by {named} ({_close_roles(role, used)})')
    active = units_with_a_part(plans, directory)
    for i, unit in enumerate(directory.units):
        if unit.id in active:
            continue
        if any(role not in plan_roles and role not in mapped_to for role in unit.roles):
            continue  # its role's error says it already
        said = len(findings.problems), len(findings.warnings)
        if "roles" not in unit.model_fields_set:
            at(
                ("units", i),
                f'unit "{unit.id}" ({unit.name}) has no roles, so it owes nothing in {named}: give it '
                "roles = [...] as the plan names them, or roles = [] for a unit meant to owe nothing here",
            )
        else:
            roles = ", ".join(unit.roles) or "none"
            at(
                ("units", i, "roles"),
                f'unit "{unit.id}" ({unit.name}) owes nothing in {named} and is sent nothing '
                f"(its roles: {roles})",
                warning=True,
            )
        findings.idle[unit.id] = [*findings.problems[said[0] :], *findings.warnings[said[1] :]][0]
    for plan in plans:
        for role, found in uses[plan.id].items():
            if directory.absent(role):
                _absent(plan, role, found, directory, at)
    return findings


def _absent(plan: Plan, role: str, uses: Sequence[RoleUse], directory: UnitDirectory, at) -> None:
    """What ``role = false`` means for one plan, where it needs a look: the plan's tasks that lose
    the role's units (those left with no unit at all said so), and a lead with no office to take it
    (where the plan has one, the office leads in the role's place: that is what ``false`` says)."""
    office = contact_of(plan.data)
    if any(u.key == "contact" for u in uses):
        at(("roles", role), f'"{role}" is the office of {plan.id} ([workflow] contact): map it to a unit')
        return
    parts = []
    lost = [u for u in uses if u.key in ("responsible", "reported_by", "subjects")]
    if lost:
        empty = [u.label() for u in lost if u.key == "responsible" and not _responsible(plan, u, directory)]
        parts.append(f"{_tasks_needing(lost)} lose its units")
        if empty:
            parts.append(f"{', '.join(empty)} left with no unit to do {'it' if len(empty) == 1 else 'them'}")
    lead = [u for u in uses if u.key in ("lead", "escalation")]
    if lead and not (office and directory.expand(office)):
        parts.append(f"nobody takes its part in {_tasks_needing(lead)} (the plan names no office)")
    if parts:
        at(("roles", role), f"no unit here ({role} = false) in {plan.id}: " + "; ".join(parts), warning=True)


def _responsible(plan: Plan, use: RoleUse, directory: UnitDirectory) -> tuple[str, ...]:
    """The units a task's ``responsible`` list expands to here."""
    table, i = use.loc[0], use.loc[1]
    refs = plan.data[table][i].get("responsible")
    return directory.expand_all([ref for _, ref in refs_at((), refs)])


__all__ = ["FIX", "Plan", "UnitFindings", "check_units", "missing_role", "units_with_a_part"]
