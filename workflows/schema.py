"""The definition-file schema (pydantic). Unknown keys are errors: a typo must not pass silently.

Field validators turn strings into typed values (offsets, month-days, targets, RRULEs) and
raise ``ValueError`` with a message naming the bad value; the loader adds file and line.
Checks that need the whole file (unknown phase, duplicate ids) live in ``loader.py``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from dateutil.rrule import rrulestr
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from workflows.monthday import MonthDay, parse_month_day
from workflows.offsets import Offset, parse_offset
from workflows.targets import Target, parse_target

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_REF = re.compile(r"^(lead|role:[A-Za-z0-9_-]+|[A-Za-z0-9][A-Za-z0-9_.-]*)$")
_ANCHOR = re.compile(r"^register:([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$")


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(f'bad id "{value}": use letters, digits, "-", "_" or "."')
    return value


def _check_ref(value: str) -> str:
    if not _REF.match(value) or value == "lead":
        raise ValueError(f'bad unit reference "{value}": expected a unit id or "role:NAME"')
    return value


def _check_recipient(value: str) -> str:
    if not _REF.match(value):
        raise ValueError(f'bad recipient "{value}": expected "lead", "role:NAME" or a unit id')
    return value


def _negative_offset(value: str) -> Offset:
    offset = parse_offset(value)
    if offset.amount > 0:
        raise ValueError(
            f'window "{value}" would open after the due date: use a negative offset, e.g. "-30d"'
        )
    return offset


def _positive_offset(value: str) -> Offset:
    offset = parse_offset(value)
    if offset.amount < 0:
        raise ValueError(
            f'escalation after "{value}" is before the due date: use a positive offset, e.g. "1wd"'
        )
    return offset


def _rrule(value: str) -> str:
    text = value.replace("\\n", "\n")
    if "FREQ=" not in text.upper():
        raise ValueError(
            f'bad rrule "{value}": FREQ is required, e.g. "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=31"'
        )
    try:
        rrulestr(text, dtstart=datetime(2000, 1, 1), forceset=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f'bad rrule "{value}": {exc}') from None
    return text


def _anchor(value: str) -> str:
    if not _ANCHOR.match(value):
        raise ValueError(f'bad anchor "{value}": expected "register:NAME.COLUMN"')
    return value


def _timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'unknown time zone "{value}"') from None
    return value


def _parsing(parse):
    """A before-validator: parse strings, pass already-parsed values through."""

    def validate(value):
        if isinstance(value, str):
            return parse(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and parse is parse_target:
            return parse(str(value))
        return value

    return BeforeValidator(validate)


Id = Annotated[str, AfterValidator(_check_id)]
UnitRef = Annotated[str, AfterValidator(_check_ref)]
RecipientRef = Annotated[str, AfterValidator(_check_recipient)]
OffsetValue = Annotated[Offset, _parsing(parse_offset)]
WindowValue = Annotated[Offset, _parsing(_negative_offset)]
AfterValue = Annotated[Offset, _parsing(_positive_offset)]
MonthDayValue = Annotated[MonthDay, _parsing(parse_month_day)]
TargetValue = Annotated[Target, _parsing(parse_target)]


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, str_strip_whitespace=True
    )


def _as_list(value):
    return [value] if isinstance(value, str) else value


class EscalationStep(_Strict):
    after: AfterValue
    to: Annotated[list[RecipientRef], BeforeValidator(_as_list)] = Field(min_length=1)


class Indicator(_Strict):
    id: Id
    name: str = Field(min_length=1)
    target: TargetValue
    unit: str | None = None
    description: str | None = None


class WorkflowInfo(_Strict):
    id: Id
    title: str = Field(min_length=1)
    description: str | None = None
    timezone: Annotated[str, AfterValidator(_timezone)] = "Asia/Shanghai"
    calendar: Literal["cn-workdays", "weekdays"] = "cn-workdays"
    reminders: list[OffsetValue] = Field(default_factory=lambda: [parse_offset("-7d"), parse_offset("-1wd")])
    escalation: list[EscalationStep] = Field(default_factory=list)
    phase_ending: OffsetValue | None = None
    contact: UnitRef | None = None


class Phase(_Strict):
    id: Id
    name: str = Field(min_length=1)
    start: MonthDayValue
    end: MonthDayValue
    description: str | None = None


class Task(_Strict):
    id: Id
    title: str = Field(min_length=1)
    section: str | None = None
    detail: str | None = None
    phase: str | None = None
    lead: list[UnitRef] = Field(default_factory=list)
    responsible: list[UnitRef] = Field(default_factory=list)
    due: MonthDayValue | None = None
    rrule: Annotated[str, AfterValidator(_rrule)] | None = None
    anchor: Annotated[str, AfterValidator(_anchor)] | None = None
    window: WindowValue | None = None
    reminders: list[OffsetValue] | None = None
    escalation: list[EscalationStep] | None = None
    deliverable: str | None = None
    indicators: list[Indicator] = Field(default_factory=list)
    kind: Literal["task", "duty"] = "task"

    @model_validator(mode="after")
    def _one_date_rule(self):
        rules = [name for name in ("due", "rrule", "anchor") if getattr(self, name) is not None]
        if len(rules) > 1:
            raise ValueError(f"give only one of due, rrule, anchor (found {', '.join(rules)})")
        if not rules and self.phase is None:
            raise ValueError("no date: give a phase, due, rrule or anchor")
        if self.anchor is None and not self.responsible:
            raise ValueError("responsible: list at least one unit or role")
        if self.anchor is not None and self.responsible:
            raise ValueError(
                "responsible: an anchored task is owed by each register row's unit; remove responsible"
            )
        return self

    @property
    def anchor_register(self) -> tuple[str, str] | None:
        if self.anchor is None:
            return None
        found = _ANCHOR.match(self.anchor)
        assert found
        return found.group(1), found.group(2)


class Band(_Strict):
    name: str = Field(min_length=1)
    min: float = Field(ge=0, le=100)


class Weights(_Strict):
    on_time: float = Field(default=50, ge=0)
    timeliness: float = Field(default=20, ge=0)
    indicators: float = Field(default=30, ge=0)


def _default_bands() -> list[Band]:
    return [
        Band(name="优秀", min=90),
        Band(name="良好", min=80),
        Band(name="合格", min=60),
        Band(name="不合格", min=0),
    ]


class Evaluation(_Strict):
    subjects: list[UnitRef] = Field(default_factory=list)
    recipients: list[UnitRef] = Field(default_factory=list)
    send_on: MonthDayValue | None = None
    weights: Weights = Field(default_factory=Weights)
    bands: list[Band] = Field(default_factory=_default_bands)
    late_days_full_penalty: int = Field(default=20, ge=1)


class Definition(_Strict):
    workflow: WorkflowInfo
    phases: list[Phase] = Field(default_factory=list)
    tasks: list[Task] = Field(default_factory=list)
    duties: list[Task] = Field(default_factory=list)
    evaluation: Evaluation | None = None

    @model_validator(mode="before")
    @classmethod
    def _mark_duties(cls, data):
        if isinstance(data, dict) and isinstance(data.get("duties"), list):
            data = dict(data)
            data["duties"] = [
                {**d, "kind": d.get("kind", "duty")} if isinstance(d, dict) else d for d in data["duties"]
            ]
        return data

    @property
    def all_tasks(self) -> list[Task]:
        return [*self.tasks, *self.duties]

    def phase(self, phase_id: str | None) -> Phase | None:
        return next((p for p in self.phases if p.id == phase_id), None)

    def task(self, task_id: str) -> Task | None:
        return next((t for t in self.all_tasks if t.id == task_id), None)

    @property
    def indicators(self) -> list[tuple[Task, Indicator]]:
        return [(task, ind) for task in self.all_tasks for ind in task.indicators]
