"""The scorecard's data model: the facts scoring reads (ObligationFact, IndicatorFact) and what it
produces (Item, Component, Tally, Score, SectionScore, UnitScore, IndicatorSummary, PhaseSpan,
Extension, Scorecard), each with its ``as_json``; and ``half_up``, the rounding the points use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from orchestrator.evaluation.indicators import MET, MISSING, NOT_APPLICABLE, NOT_MET
from workflows.schema import Evaluation

CENT = Decimal("0.01")


@dataclass(frozen=True)
class ObligationFact:
    """What scoring needs of one obligation."""

    id: int
    task: str
    title: str
    section: str
    unit: str
    occurrence: str | None
    due: date
    state: str
    done_on: date | None  # local day of completion
    reason: str | None = None


@dataclass(frozen=True)
class IndicatorFact:
    """One unit's value (or its absence) for one indicator in the program's year."""

    indicator: str
    name: str
    task: str
    section: str
    target: str
    percent: bool
    unit: str
    unit_name: str
    value: float | None
    count: int | None
    of: int | None
    status: str  # met | not_met | missing | not_applicable
    note: str | None = None

    def as_json(self) -> dict:
        return {
            "indicator": self.indicator,
            "name": self.name,
            "task": self.task,
            "section": self.section,
            "target": self.target,
            "percent": self.percent,
            "unit": self.unit,
            "unit_name": self.unit_name,
            "value": self.value,
            "count": self.count,
            "of": self.of,
            "status": self.status,
            "note": self.note,
        }


@dataclass(frozen=True)
class Item:
    """A unit's late (done late), missing (not done, or indicator not reported) or waived item."""

    kind: str  # late | missing | waived
    ref: str | None
    task: str
    title: str
    section: str
    occurrence: str | None = None
    due: date | None = None
    done_on: date | None = None
    late_days: int | None = None  # working days
    reason: str | None = None
    indicator: str | None = None

    def as_json(self) -> dict:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "task": self.task,
            "indicator": self.indicator,
            "title": self.title,
            "section": self.section,
            "occurrence": self.occurrence,
            "due": _iso(self.due),
            "done_on": _iso(self.done_on),
            "late_days": self.late_days,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Component:
    """One weighted part of a score; ``ratio`` is None when the part does not apply."""

    weight: float
    ratio: Fraction | None

    @property
    def points(self) -> Decimal | None:
        return None if self.ratio is None else half_up(Fraction(self.weight) * self.ratio)

    def as_json(self) -> dict:
        return {
            "weight": self.weight,
            "ratio": None if self.ratio is None else float(half_up(self.ratio, Decimal("0.0001"))),
            "points": None if self.points is None else float(self.points),
        }


@dataclass(frozen=True)
class Tally:
    counted: int = 0  # due by as_of, not waived or cancelled
    on_time: int = 0
    done_late: int = 0
    not_done: int = 0  # due by as_of and not done by then (includes overdue)
    overdue: int = 0  # not done and due before as_of
    waived: int = 0
    late_days: int = 0  # working days late, summed (uncapped)
    indicators: int = 0
    met: int = 0
    not_met: int = 0
    missing: int = 0

    def as_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Score:
    tally: Tally
    on_time: Component
    timeliness: Component
    indicators: Component
    total: Decimal | None
    band: str | None

    def as_json(self) -> dict:
        return {
            "score": None if self.total is None else float(self.total),
            "band": self.band,
            "on_time": self.on_time.as_json(),
            "timeliness": self.timeliness.as_json(),
            "indicators": self.indicators.as_json(),
            "tally": self.tally.as_json(),
        }


@dataclass(frozen=True)
class SectionScore:
    section: str
    score: Score

    def as_json(self) -> dict:
        return {"section": self.section, **self.score.as_json()}


@dataclass(frozen=True)
class UnitScore:
    unit: str
    name: str
    rank: int | None
    score: Score
    sections: tuple[SectionScore, ...]
    indicators: tuple[IndicatorFact, ...]
    late: tuple[Item, ...]
    missing: tuple[Item, ...]
    waived: tuple[Item, ...]

    def as_json(self) -> dict:
        return {
            "rank": self.rank,
            "unit": self.unit,
            "name": self.name,
            **self.score.as_json(),
            "sections": [s.as_json() for s in self.sections],
            "indicator_values": [i.as_json() for i in self.indicators],
            "late": [i.as_json() for i in self.late],
            "missing": [i.as_json() for i in self.missing],
            "waived": [i.as_json() for i in self.waived],
        }


@dataclass(frozen=True)
class IndicatorSummary:
    indicator: str
    name: str
    task: str
    section: str
    target: str
    values: tuple[IndicatorFact, ...]  # every reporting unit, subjects or not

    def as_json(self) -> dict:
        statuses = (MET, NOT_MET, MISSING, NOT_APPLICABLE)
        counts = {s: sum(1 for v in self.values if v.status == s) for s in statuses}
        return {
            "indicator": self.indicator,
            "name": self.name,
            "task": self.task,
            "section": self.section,
            "target": self.target,
            **counts,
            "values": [v.as_json() for v in self.values],
        }


@dataclass(frozen=True)
class PhaseSpan:
    id: str
    name: str
    start: date
    end: date


@dataclass(frozen=True)
class Extension:
    """An approved 延期申请: the obligation is scored against its new due date (listed in the appendix)."""

    unit: str
    task: str
    title: str
    occurrence: str | None
    before: date  # the due date when the unit asked
    after: date  # the due date the office approved
    reason: str | None

    def as_json(self) -> dict:
        return {
            "unit": self.unit,
            "task": self.task,
            "title": self.title,
            "occurrence": self.occurrence,
            "before": self.before.isoformat(),
            "after": self.after.isoformat(),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Scorecard:
    workflow: str
    title: str
    year: int
    as_of: date
    evaluation: Evaluation
    phases: tuple[PhaseSpan, ...]
    units: tuple[UnitScore, ...]  # ranked
    sections: tuple[SectionScore, ...]  # all subjects together, per section
    overall: Score  # all subjects together
    indicators: tuple[IndicatorSummary, ...]
    deadlines: tuple[tuple[date, int, int], ...]  # (due date, obligations, of them not done by as_of)
    extensions: tuple[Extension, ...] = ()  # approved 延期申请, by unit and task

    def as_json(self) -> dict:
        ev = self.evaluation
        return {
            "workflow": self.workflow,
            "title": self.title,
            "year": self.year,
            "as_of": self.as_of.isoformat(),
            "weights": {
                "on_time": ev.weights.on_time,
                "timeliness": ev.weights.timeliness,
                "indicators": ev.weights.indicators,
            },
            "bands": [{"name": b.name, "min": b.min} for b in sorted(ev.bands, key=lambda b: -b.min)],
            "late_days_full_penalty": ev.late_days_full_penalty,
            "phases": [
                {"id": p.id, "name": p.name, "start": p.start.isoformat(), "end": p.end.isoformat()}
                for p in self.phases
            ],
            "overall": self.overall.as_json(),
            "units": [u.as_json() for u in self.units],
            "sections": [s.as_json() for s in self.sections],
            "indicators": [i.as_json() for i in self.indicators],
            "deadlines": [
                {"due": d.isoformat(), "count": n, "not_done": late} for d, n, late in self.deadlines
            ],
            "extensions": [e.as_json() for e in self.extensions],
        }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def half_up(value: Fraction, step: Decimal = CENT) -> Decimal:
    """Round an exact fraction half up (四舍五入) to ``step``."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return exact.quantize(step, rounding=ROUND_HALF_UP)
