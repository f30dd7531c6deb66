"""The definition-file schema (pydantic). Unknown keys are errors: a typo must not pass silently.

Field validators turn strings into typed values (offsets, month-days, targets, RRULEs) and
raise ``ValueError`` with a message naming the bad value; the loader adds file and line.
A model validator that blames one key starts its message with ``"KEY: "``: the loader then
reports it at that key's line. Checks that need the whole file (unknown phase, duplicate ids)
live in ``loader.py``.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Annotated, Literal

from dateutil.rrule import rrulestr
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from workflows.monthday import MonthDay, parse_month_day
from workflows.offsets import Offset, parse_offset
from workflows.targets import Target, parse_target

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_REF = re.compile(r"^(lead|role:[A-Za-z0-9_-]+|[A-Za-z0-9][A-Za-z0-9_.-]*)$")
_ANCHOR = re.compile(r"^register:([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$")
_DTSTART = re.compile(r"^DTSTART(?:;VALUE=DATE)?:(\d{8})(?:T(\d{6}))?$", re.IGNORECASE)
_RRULE_PART = re.compile(r"^([A-Za-z]+)=(.*)$")
_DAY_FREQS = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY")
_MAX_OFFSET = {"d": 3660, "wd": 2610, "mo": 120}
DEFAULT_TIMEZONE = "Asia/Shanghai"
"""A plan's time zone when its ``[workflow]`` names none; also the zone shown where no plan says one."""
"""The farthest an offset may reach (about ten years): plans are about a year, not a century."""


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            f'bad id "{value}": use letters, digits, "-", "_" or "." (starting with a letter or digit)'
        )
    return value


def _check_ref(value: str) -> str:
    if not _REF.match(value) or value == "lead":
        raise ValueError(f'bad unit reference "{value}": expected a unit id or "role:NAME"')
    return value


def _check_recipient(value: str) -> str:
    if not _REF.match(value):
        raise ValueError(f'bad recipient "{value}": expected "lead", "role:NAME" or a unit id')
    return value


def _one_line(value: str) -> str:
    """Titles and names go into email subjects and headers: no line breaks or control characters."""
    bad = next((ch for ch in value if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")), None)
    if bad is not None:
        raise ValueError(f"{value!r} contains a control character ({bad!r}): use one line of text")
    return value


def _bounded(value: str) -> Offset:
    offset = parse_offset(value)
    limit = _MAX_OFFSET[offset.unit]
    if abs(offset.amount) > limit:
        raise ValueError(f'offset "{value}" is too far: at most {limit}{offset.unit} either way')
    return offset


def _not_after(what: str, example: str):
    def parse(value: str) -> Offset:
        offset = _bounded(value)
        if offset.amount > 0:
            raise ValueError(
                f'{what} "{value}" would be after the due date: use a negative offset, e.g. "{example}"'
            )
        return offset

    return parse


def _window(value: str) -> Offset:
    offset = _bounded(value)
    if offset.amount > 0:
        raise ValueError(
            f'window "{value}" would open after the due date: use a negative offset, e.g. "-30d"'
        )
    return offset


def _after_due(value: str) -> Offset:
    offset = _bounded(value)
    if offset.amount < 0:
        raise ValueError(
            f'escalation after "{value}" is before the due date: use a positive offset, e.g. "1wd"'
        )
    return offset


def _phase_ending(value: str) -> Offset:
    offset = _bounded(value)
    if offset.amount > 0:
        raise ValueError(
            f'phase_ending "{value}" is after the phase ends: use a negative offset, e.g. "-3wd"'
        )
    return offset


def _q(value: str) -> str:
    """``value`` in double quotes, line breaks shown as ``\\n`` (a message is one line)."""
    return '"' + value.replace("\n", "\\n") + '"'


def _rrule_lines(value: str) -> tuple[str | None, str]:
    """Split a rule into its DTSTART line (or None) and its RRULE parameters; ValueError if malformed."""
    dtstart, rules = None, []
    for raw in value.replace("\\n", "\n").splitlines():
        line = raw.strip()
        if not line:
            continue
        upper = line.upper()
        if upper.startswith("DTSTART"):
            if not _DTSTART.match(line):
                raise ValueError(
                    f'bad rrule {_q(value)}: DTSTART must be a plain local date, e.g. "DTSTART:20260101" '
                    "(no time zone: the plan's timezone applies)"
                )
            dtstart = line
        elif upper.startswith(("EXDATE", "RDATE", "EXRULE")):
            raise ValueError(f"bad rrule {_q(value)}: only DTSTART and one RRULE are supported")
        else:
            rules.append(line[6:] if upper.startswith("RRULE:") else line)
    if len(rules) != 1:
        raise ValueError(
            f'bad rrule {_q(value)}: expected one RRULE, e.g. "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=31"'
        )
    return dtstart, rules[0]


def _rrule_params(value: str, rule: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in rule.split(";"):
        found = _RRULE_PART.match(part.strip())
        if not found:
            raise ValueError(f'bad rrule {_q(value)}: "{part}" is not NAME=VALUE')
        params[found.group(1).upper()] = found.group(2).strip().upper()
    freq = params.get("FREQ")
    if freq is None:
        raise ValueError(
            f'bad rrule {_q(value)}: FREQ is required, e.g. "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=31"'
        )
    if freq not in _DAY_FREQS:
        raise ValueError(
            f"bad rrule {_q(value)}: FREQ={freq}: expected one of {', '.join(_DAY_FREQS)} (plans are in days)"
        )
    interval = params.get("INTERVAL", "1")
    if not interval.isdigit() or int(interval) < 1:
        raise ValueError(f"bad rrule {_q(value)}: INTERVAL={interval}: expected a whole number >= 1")
    return params


def _rrule(value: str) -> str:
    """Check an RFC 5545 rule: FREQ daily or longer, an optional plain DTSTART, and at least one occurrence.

    Without DTSTART a rule starts on 01-01 of each program year, so an INTERVAL that does not divide
    a year (``FREQ=YEARLY;INTERVAL=2``) needs a DTSTART to know which years it lands in.
    """
    dtstart, rule = _rrule_lines(value)
    params = _rrule_params(value, rule)
    interval = int(params.get("INTERVAL", "1"))
    if dtstart is None and interval > 1 and not (params["FREQ"] == "MONTHLY" and 12 % interval == 0):
        raise ValueError(
            f"bad rrule {_q(value)}: INTERVAL={interval} needs a DTSTART (else it restarts on 01-01 of every "
            f'program year), e.g. "DTSTART:20260101\\nRRULE:{rule}"'
        )
    text = "\n".join(line for line in (dtstart, f"RRULE:{rule}") if line)
    try:
        parsed = rrulestr(text, dtstart=None if dtstart else datetime(2000, 1, 1), forceset=True)
        first = parsed.after(datetime(1900, 1, 1), inc=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"bad rrule {_q(value)}: {exc}") from None
    if first is None:
        raise ValueError(f"bad rrule {_q(value)}: it never occurs")
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


def _parsing(parse, kind: type, expected: str):
    """A before-validator: parse a string with ``parse``; pass a ``kind`` through; refuse anything else."""

    def validate(value):
        if isinstance(value, str):
            return parse(value)
        if isinstance(value, kind):
            return value
        if isinstance(value, date):
            raise ValueError(
                f"expected {expected}, got the date {value} (plan dates have no year: write it in quotes as MM-DD)"
            )
        raise ValueError(f"expected {expected}, got {value!r}")

    return BeforeValidator(validate)


MAX_LINE = 200  # titles, names, sections: they go into email subjects and table cells
MAX_ID = 64  # ids of workflows, phases, tasks, indicators; unit references
MAX_TEXT = 10_000  # descriptions and details (several paragraphs of a plan)

Id = Annotated[str, Field(max_length=MAX_ID), AfterValidator(_check_id)]
UnitRef = Annotated[str, Field(max_length=MAX_ID + 5), AfterValidator(_check_ref)]
RecipientRef = Annotated[str, Field(max_length=MAX_ID + 5), AfterValidator(_check_recipient)]
Line = Annotated[str, Field(min_length=1, max_length=MAX_LINE), AfterValidator(_one_line)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
_OFFSET_TEXT = 'an offset in quotes, e.g. "-7d", "-3wd" or "-6mo"'
OffsetValue = Annotated[Offset, _parsing(_not_after("reminder", "-7d"), Offset, _OFFSET_TEXT)]
WindowValue = Annotated[Offset, _parsing(_window, Offset, _OFFSET_TEXT)]
AfterValue = Annotated[Offset, _parsing(_after_due, Offset, 'an offset in quotes, e.g. "1wd" or "7d"')]
PhaseEndingValue = Annotated[Offset, _parsing(_phase_ending, Offset, _OFFSET_TEXT)]
MonthDayValue = Annotated[MonthDay, _parsing(parse_month_day, MonthDay, 'a date in quotes, "MM-DD"')]
TargetValue = Annotated[Target, _parsing(parse_target, Target, 'a target in quotes, e.g. ">= 90%"')]


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
    """A numeric target of a task. ``reported_by``: the units that report a value and are scored on it
    (default: the task's responsible units)."""

    id: Id
    name: Line
    target: TargetValue
    unit: Annotated[str, Field(max_length=MAX_LINE)] | None = None
    description: Text | None = None
    reported_by: list[UnitRef] = Field(default_factory=list)


class WorkflowInfo(_Strict):
    id: Id
    title: Line
    description: Text | None = None
    timezone: Annotated[str, AfterValidator(_timezone)] = DEFAULT_TIMEZONE
    calendar: Literal["cn-workdays", "weekdays"] = "cn-workdays"
    reminders: list[OffsetValue] = Field(default_factory=lambda: [parse_offset("-7d"), parse_offset("-1wd")])
    escalation: list[EscalationStep] = Field(default_factory=list)
    phase_ending: PhaseEndingValue | None = None
    contact: UnitRef | None = None


class Phase(_Strict):
    id: Id
    name: Line
    start: MonthDayValue
    end: MonthDayValue
    description: Text | None = None


class Task(_Strict):
    id: Id
    title: Line
    section: Line | None = None
    detail: Text | None = None
    phase: str | None = None
    lead: list[UnitRef] = Field(default_factory=list)
    responsible: list[UnitRef] = Field(default_factory=list)
    due: MonthDayValue | None = None
    rrule: Annotated[str, AfterValidator(_rrule)] | None = None
    anchor: Annotated[str, AfterValidator(_anchor)] | None = None
    window: WindowValue | None = None
    roll: Literal["forward", "backward"] = "forward"
    reminders: list[OffsetValue] | None = None
    escalation: list[EscalationStep] | None = None
    deliverable: Text | None = None
    indicators: list[Indicator] = Field(default_factory=list)
    kind: Literal["task", "duty"] = "task"

    @model_validator(mode="after")
    def _one_date_rule(self):
        rules = [name for name in ("due", "rrule", "anchor") if getattr(self, name) is not None]
        if len(rules) > 1:
            raise ValueError(f"{rules[-1]}: give only one of due, rrule, anchor (found {', '.join(rules)})")
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
    name: Line
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
    """The year-end evaluation: who is scored, who gets the scorecard, weights (points summing to 100)
    and grading bands (a score gets the band with the highest ``min`` it reaches)."""

    subjects: list[UnitRef] = Field(default_factory=list)
    recipients: list[UnitRef] = Field(default_factory=list)
    send_on: MonthDayValue | None = None
    weights: Weights = Field(default_factory=Weights)
    bands: list[Band] = Field(default_factory=_default_bands, min_length=1)
    late_days_full_penalty: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _check_points(self):
        total = self.weights.on_time + self.weights.timeliness + self.weights.indicators
        if abs(total - 100) > 1e-6:
            raise ValueError(
                f"weights: on_time + timeliness + indicators must be 100 points (they add up to {total:g})"
            )
        names = [band.name for band in self.bands]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f'bands: duplicate band name "{duplicates[0]}"')
        if min(band.min for band in self.bands) != 0:
            raise ValueError("bands: the lowest band must have min = 0 (every score needs a band)")
        return self


class Setting(_Strict):
    """A date the plan fixes by default and a deployment may set (``[[programs]] settings`` in
    config); a task takes it with ``due = "setting:NAME"`` (see settings.py)."""

    name: Line
    value: MonthDayValue
    description: Text | None = None


class Definition(_Strict):
    workflow: WorkflowInfo
    settings: dict[Annotated[str, Field(max_length=MAX_ID), AfterValidator(_check_id)], Setting] = Field(
        default_factory=dict
    )
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
