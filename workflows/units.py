"""Units: the deployment's offices, their addresses and roles. ``role:X`` expands to every unit with role X.

A units file may also map a plan's role for this deployment (its ``[roles]`` table): to another
role (``"role:X"``), to units (``"unit-id"`` or a list), or to nothing (``false``: no such unit
here — where the role leads a task, the plan's office takes the lead). Every ``role:X`` of every
plan is expanded here, through that table: ``UnitDirectory.expand``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

_UNIT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ROLE = re.compile(r"^[A-Za-z0-9_-]+$")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+$")


def _no_control(value: str) -> str:
    """Refuse control and format characters (line breaks, NUL, U+2028…): they would end up in email headers."""
    if not isinstance(value, str):
        return value
    bad = [ch for ch in value if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")]
    if bad:
        raise ValueError(
            f"{value!r} contains a control character ({bad[0]!r}): it would end up in email headers"
        )
    return value


def _check_email(value: str) -> str:
    """A plain ``local@domain.tld`` address: no display name, no spaces, a domain with a dot."""
    if any(ch.isspace() for ch in value):
        raise ValueError(f'bad email address "{value}": it contains a space')
    if value.count("@") != 1:
        raise ValueError(f'bad email address "{value}": expected exactly one "@", e.g. office@example.gov.cn')
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueError(f'bad email address "{value}": expected e.g. office@example.gov.cn')
    return value


def _raw_email(value: object) -> object:
    """Addresses are checked as written: a space, even a leading one, is an error, not trimmed."""
    return _check_email(_no_control(value)) if isinstance(value, str) else value


_PHONE = re.compile(r"^\+?[0-9][0-9 ()\-]{2,30}(?:(?:转|ext\.?|x)[0-9]{1,6})?$")


def _check_phone(value: str) -> str:
    """A phone number: digits, spaces, ``-``, ``(``, ``)``, a leading ``+``, an extension ``转123``."""
    if not _PHONE.match(value):
        raise ValueError(f'bad phone "{value}": expected e.g. "0571-8888 1234" or "0571-88881234转801"')
    return value


def _check_unit_id(value: str) -> str:
    if not _UNIT_ID.match(value):
        raise ValueError(f'bad unit id "{value}": use letters, digits, "-", "_" or "."')
    return value


_ROBOT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _check_robot(value: str) -> str:
    if not _ROBOT.match(value):
        raise ValueError(f'bad robot name "{value}": use letters, digits, "-", "_" or "."')
    return value


def _check_role(value: str) -> str:
    if not _ROLE.match(value):
        raise ValueError(f'bad role "{value}": use letters, digits, "-" or "_"')
    return value


MAX_UNIT_ID = 64  # unit ids and role names
MAX_NAME = 200  # a unit's name: it goes into the To header of every email
MAX_EMAILS = 50  # addresses of one unit

NoControl = BeforeValidator(_no_control)
"""Checked before whitespace is stripped, so a trailing line break is refused, not trimmed away."""


class Unit(BaseModel):
    """One office of the deployment: ``name`` and ``emails`` go into email headers."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: Annotated[str, NoControl, Field(max_length=MAX_UNIT_ID), AfterValidator(_check_unit_id)]
    name: Annotated[str, NoControl, Field(min_length=1, max_length=MAX_NAME)]
    emails: list[Annotated[str, BeforeValidator(_raw_email)]] = Field(min_length=1, max_length=MAX_EMAILS)
    roles: list[Annotated[str, NoControl, Field(max_length=MAX_UNIT_ID), AfterValidator(_check_role)]] = (
        Field(default_factory=list)
    )
    robots: list[Annotated[str, NoControl, Field(max_length=MAX_UNIT_ID), AfterValidator(_check_robot)]] = (
        Field(default_factory=list)
    )
    """Group robots (names in the robots file) that get one message per digest besides the email."""
    contact: Annotated[str | None, NoControl, Field(min_length=1, max_length=40)] = None  # a person
    phone: Annotated[str | None, NoControl, AfterValidator(_check_phone)] = None


ABSENT = ()
"""A ``[roles]`` entry of ``false``: no unit of this role in this deployment."""


def _role_target(value: object) -> object:
    """A ``[roles]`` value as a tuple of references: ``false`` → ``()``, a string → one reference."""
    if value is False:
        return ABSENT
    if value is True:
        raise ValueError(
            'true is not a mapping: give "role:OTHER", a unit id, a list of unit ids, '
            "or false (no such unit here)"
        )
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and not value:
        raise ValueError("an empty list: write false for a role this deployment has no unit for")
    if not isinstance(value, list):
        raise ValueError('expected "role:OTHER", a unit id, a list of unit ids, or false')
    return value


def _check_target(value: str) -> str:
    if value.startswith("role:"):
        _check_role(value[5:])
        return value
    if not _UNIT_ID.match(value):
        raise ValueError(f'bad target "{value}": expected "role:NAME" or a unit id')
    return value


RoleTarget = Annotated[
    tuple[Annotated[str, NoControl, Field(max_length=MAX_UNIT_ID + 5), AfterValidator(_check_target)], ...],
    BeforeValidator(_role_target),
    Field(max_length=MAX_EMAILS),
]
RoleName = Annotated[str, Field(max_length=MAX_UNIT_ID), AfterValidator(_check_role)]


class UnitsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    units: list[Unit] = Field(min_length=1)
    roles: dict[RoleName, RoleTarget] = Field(default_factory=dict)
    """A plan's role → this deployment's role or units, or ``()`` (absent)."""


@dataclass(frozen=True)
class UnitDirectory:
    """All units of a deployment, looked up by id and by role (in file order), and the ``[roles]``
    table that maps a plan's role for this deployment (``role_map``: role → references, ``()`` for
    a role absent here). The file's order is the order units are listed in for people (``rank``).
    """

    units: tuple[Unit, ...]
    role_map: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    by_id: dict[str, Unit] = field(init=False, repr=False, compare=False)
    by_role: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    held: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    order: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        held: dict[str, list[str]] = {}
        for unit in self.units:
            for role in unit.roles:
                held.setdefault(role, []).append(unit.id)
        object.__setattr__(self, "by_id", {u.id: u for u in self.units})
        object.__setattr__(self, "order", {u.id: i for i, u in enumerate(self.units)})
        object.__setattr__(self, "held", {r: tuple(ids) for r, ids in held.items()})
        by_role = dict(self.held)
        for role, targets in self.role_map.items():
            by_role[role] = self._targets(targets)
        object.__setattr__(self, "by_role", by_role)

    def _targets(self, targets: tuple[str, ...]) -> tuple[str, ...]:
        """A mapping's units: a ``role:X`` target is the units holding X (mappings do not chain)."""
        seen: dict[str, None] = {}
        for ref in targets:
            found = self.held.get(ref[5:], ()) if ref.startswith("role:") else (ref,)
            for unit_id in found:
                if unit_id in self.by_id:
                    seen.setdefault(unit_id, None)
        return tuple(seen)

    def absent(self, role: str) -> bool:
        """The ``[roles]`` table says this deployment has no unit of ``role`` (``role = false``)."""
        return self.role_map.get(role) == ABSENT

    def resolves(self, ref: str) -> bool:
        """``ref`` names a unit, a role some unit holds, or a role the ``[roles]`` table maps."""
        if ref.startswith("role:"):
            return ref[5:] in self.by_role
        return ref in self.by_id

    def expand(self, ref: str) -> tuple[str, ...]:
        """``role:X`` → every unit with role X (or X's ``[roles]`` mapping); a unit id → itself.
        Unknown or absent → ``()``."""
        if ref.startswith("role:"):
            return self.by_role.get(ref[5:], ())
        return (ref,) if ref in self.by_id else ()

    def expand_all(self, refs: list[str], *, absent_to: str | None = None) -> tuple[str, ...]:
        """Expand refs, keeping first-seen order and dropping duplicates; a role absent here
        stands for ``absent_to`` when given (a task's lead: the plan's office)."""
        seen: dict[str, None] = {}
        for ref in refs:
            if absent_to is not None and ref.startswith("role:") and self.absent(ref[5:]):
                ref = absent_to
            for unit_id in self.expand(ref):
                seen.setdefault(unit_id, None)
        return tuple(seen)

    def name(self, unit_id: str) -> str:
        unit = self.by_id.get(unit_id)
        return unit.name if unit else unit_id

    def rank(self, unit_id: str) -> int:
        """The unit's place in the units file: people see units in the order the deployment wrote
        them; a unit no longer in the file comes after every other."""
        return self.order.get(unit_id, len(self.units))
