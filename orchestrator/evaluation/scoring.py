"""The year-end evaluation (综合考评): each unit's score from its obligations and indicator values.

The formula is the definition's ``[evaluation]`` (README.md ("The formula") states it for readers):

- counted obligations: the unit's obligations due on or before the evaluation date (``as_of``),
  except waived and cancelled ones;
- on-time completion (``weights.on_time``): done on or before the due date / counted;
- timeliness (``weights.timeliness``): 1 − mean penalty; an obligation done late, or still not
  done, is ``d`` working days late (counted to the completion day, or to ``as_of``, each rolled
  forward to a working day) and loses ``min(d, late_days_full_penalty) / late_days_full_penalty``;
- indicators (``weights.indicators``): met / (met + not met + missing) over the indicators the unit
  reports (``indicators.reporters``) for the program's year;
- points of a part = weight × ratio, computed exactly and rounded half up (四舍五入) to 0.01;
- score = the sum of the parts' points; when a part does not apply (no counted obligation, or no
  indicator) the sum of the others is scaled to 100 (× 100 / their weights), rounded to 0.01;
- band: the band with the highest ``min`` that the rounded score reaches; rank: by score, ties
  share a rank (1, 2, 2, 4).

``score_card`` is pure (plain facts in, a ``Scorecard`` out); ``build_scorecard`` reads the facts
from the database; ``scorecard_attachment`` is the evaluate phase's email hook.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from notifications.report import render_scorecard_html, render_summary
from orchestrator.evaluation.indicators import MET, MISSING, NOT_MET, reporters, status_of, stored_values
from orchestrator.store.models import Obligation, PhaseRun, Program, Submission, Timer
from orchestrator.store.states import Decision, ObligationState, PhaseState, SubmissionKind, TimerKind
from workflows.calendar import WorkdayCalendar
from workflows.catalog import Bundle
from workflows.schema import Evaluation

OTHER_SECTION = "其他"
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
    status: str  # met | not_met | missing
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
        counts = {s: sum(1 for v in self.values if v.status == s) for s in (MET, NOT_MET, MISSING)}
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


def band_for(score: Decimal, evaluation: Evaluation) -> str:
    """The band with the highest ``min`` that ``score`` reaches (the schema guarantees one at 0)."""
    bands = sorted(evaluation.bands, key=lambda b: -b.min)
    return next((b.name for b in bands if score >= Decimal(str(b.min))), bands[-1].name)


# -- the formula ----------------------------------------------------------------------------------


def done_by(fact: ObligationFact, as_of: date) -> bool:
    return fact.state == ObligationState.DONE and (fact.done_on is None or fact.done_on <= as_of)


def late_days(fact: ObligationFact, as_of: date, calendar: WorkdayCalendar) -> int:
    """Working days late on ``as_of``: to the completion day, or to ``as_of`` if not done (0 if on time)."""
    end = fact.done_on if done_by(fact, as_of) else as_of
    if end is None or end <= fact.due:
        return 0
    return calendar.workdays_between(fact.due, calendar.next_workday(end))


def _tally(
    obligations: Sequence[ObligationFact],
    indicators: Sequence[IndicatorFact],
    evaluation: Evaluation,
    calendar: WorkdayCalendar,
    as_of: date,
) -> tuple[Tally, Fraction]:
    """The counts, and the summed timeliness loss of the counted obligations."""
    counted = [
        o
        for o in obligations
        if o.due <= as_of and o.state not in (ObligationState.WAIVED, ObligationState.CANCELLED)
    ]
    full = evaluation.late_days_full_penalty
    on_time = done_late = not_done = overdue = days = 0
    loss = Fraction(0)
    for fact in counted:
        late = late_days(fact, as_of, calendar)
        days += late
        loss += Fraction(min(late, full), full)
        if not done_by(fact, as_of):
            not_done += 1
            overdue += fact.due < as_of
        elif fact.done_on is None or fact.done_on <= fact.due:
            on_time += 1
        else:
            done_late += 1
    statuses = [i.status for i in indicators]
    tally = Tally(
        counted=len(counted),
        on_time=on_time,
        done_late=done_late,
        not_done=not_done,
        overdue=overdue,
        waived=sum(1 for o in obligations if o.state == ObligationState.WAIVED),
        late_days=days,
        indicators=len(statuses),
        met=statuses.count(MET),
        not_met=statuses.count(NOT_MET),
        missing=statuses.count(MISSING),
    )
    return tally, loss


def _total(parts: Sequence[Component]) -> Decimal | None:
    """The sum of the points as shown; scaled to 100 when a part does not apply; None if none applies."""
    applies = [p for p in parts if p.ratio is not None]
    weight = sum(Fraction(p.weight) for p in applies)
    if not applies or weight <= 0:
        return None
    shown = sum((p.points for p in applies), Decimal(0))
    return shown if weight == 100 else half_up(Fraction(shown) * 100 / weight)


def score(
    obligations: Sequence[ObligationFact],
    indicators: Sequence[IndicatorFact],
    evaluation: Evaluation,
    calendar: WorkdayCalendar,
    as_of: date,
) -> Score:
    """The score of one set of obligations and indicator values (a unit, a section, or all)."""
    tally, loss = _tally(obligations, indicators, evaluation, calendar, as_of)
    w, n = evaluation.weights, tally.counted
    parts = (
        Component(w.on_time, Fraction(tally.on_time, n) if n else None),
        Component(w.timeliness, 1 - loss / n if n else None),
        Component(w.indicators, Fraction(tally.met, tally.indicators) if tally.indicators else None),
    )
    total = _total(parts)
    return Score(tally, *parts, total, None if total is None else band_for(total, evaluation))


def _items(
    obligations: Iterable[ObligationFact], indicators: Iterable[IndicatorFact], calendar, as_of: date
) -> tuple[tuple[Item, ...], tuple[Item, ...], tuple[Item, ...]]:
    late, missing, waived = [], [], []
    for o in sorted(obligations, key=lambda o: (o.due, o.task, o.occurrence or "")):
        base = dict(
            ref=f"#{o.id}", task=o.task, title=o.title, section=o.section, occurrence=o.occurrence, due=o.due
        )
        if o.state == ObligationState.WAIVED:
            waived.append(Item("waived", reason=o.reason, **base))
        elif o.state == ObligationState.CANCELLED or o.due > as_of:
            continue
        elif done_by(o, as_of):
            if o.done_on is not None and o.done_on > o.due:
                late.append(Item("late", done_on=o.done_on, late_days=late_days(o, as_of, calendar), **base))
        else:
            missing.append(Item("missing", late_days=late_days(o, as_of, calendar), **base))
    for fact in indicators:
        if fact.status == MISSING:
            missing.append(
                Item("missing", None, fact.task, fact.name, fact.section, indicator=fact.indicator)
            )
    return tuple(late), tuple(missing), tuple(waived)


def _ranks(scores: Sequence[Decimal | None]) -> list[int | None]:
    """Competition ranking (1, 2, 2, 4) of scores already sorted high to low; None stays unranked."""
    ranks: list[int | None] = []
    for position, value in enumerate(scores):
        if value is None:
            ranks.append(None)
        elif position and value == scores[position - 1]:
            ranks.append(ranks[-1])
        else:
            ranks.append(position + 1)
    return ranks


def score_card(
    *,
    workflow: str,
    title: str,
    year: int,
    as_of: date,
    evaluation: Evaluation,
    calendar: WorkdayCalendar,
    subjects: Sequence[tuple[str, str]],  # (unit id, name), in units-file order
    sections: Sequence[str],  # in definition order
    obligations: Sequence[ObligationFact],
    indicators: Sequence[IndicatorFact],  # every reporting unit's facts
    phases: Sequence[PhaseSpan] = (),
) -> Scorecard:
    """The whole scorecard; pure: the same facts give the same card."""
    subject_ids = {unit for unit, _ in subjects}
    mine = [o for o in obligations if o.unit in subject_ids]
    scored_indicators = [i for i in indicators if i.unit in subject_ids]
    units = []
    for unit, name in subjects:
        own = [o for o in mine if o.unit == unit]
        own_ind = [i for i in scored_indicators if i.unit == unit]
        per_section = tuple(
            SectionScore(s, score(_in(own, s), _in(own_ind, s), evaluation, calendar, as_of))
            for s in sections
            if _in(own, s) or _in(own_ind, s)
        )
        units.append(
            (
                unit,
                name,
                score(own, own_ind, evaluation, calendar, as_of),
                per_section,
                tuple(own_ind),
                _items(own, own_ind, calendar, as_of),
            )
        )
    order = {unit: i for i, (unit, _) in enumerate(subjects)}
    units.sort(key=lambda u: (u[2].total is None, -(u[2].total or 0), order[u[0]]))
    ranks = _ranks([u[2].total for u in units])
    ranked = tuple(
        UnitScore(unit, name, rank, sc, secs, ind, *items)
        for rank, (unit, name, sc, secs, ind, items) in zip(ranks, units, strict=True)
    )
    return Scorecard(
        workflow=workflow,
        title=title,
        year=year,
        as_of=as_of,
        evaluation=evaluation,
        phases=tuple(phases),
        units=ranked,
        sections=tuple(
            SectionScore(s, score(_in(mine, s), _in(scored_indicators, s), evaluation, calendar, as_of))
            for s in sections
            if _in(mine, s) or _in(scored_indicators, s)
        ),
        overall=score(mine, scored_indicators, evaluation, calendar, as_of),
        indicators=_indicator_summaries(indicators),
        deadlines=_deadlines(mine, as_of),
    )


def _in(facts, section: str) -> list:
    return [f for f in facts if f.section == section]


def _indicator_summaries(indicators: Sequence[IndicatorFact]) -> tuple[IndicatorSummary, ...]:
    grouped: dict[str, list[IndicatorFact]] = {}
    for fact in indicators:
        grouped.setdefault(fact.indicator, []).append(fact)
    return tuple(
        IndicatorSummary(f[0].indicator, f[0].name, f[0].task, f[0].section, f[0].target, tuple(f))
        for f in grouped.values()
    )


def _deadlines(obligations: Sequence[ObligationFact], as_of: date) -> tuple[tuple[date, int, int], ...]:
    days: dict[date, list[int]] = {}
    for o in obligations:
        if o.state in (ObligationState.CANCELLED, ObligationState.WAIVED):
            continue
        entry = days.setdefault(o.due, [0, 0])
        entry[0] += 1
        entry[1] += o.due <= as_of and not done_by(o, as_of)
    return tuple((d, n, late) for d, (n, late) in sorted(days.items()))


# -- from the database ----------------------------------------------------------------------------


def evaluation_of(bundle: Bundle) -> Evaluation:
    return bundle.definition.evaluation or Evaluation()


def _sections(bundle: Bundle) -> tuple[dict[str, str], list[str]]:
    by_task = {t.id: t.section or OTHER_SECTION for t in bundle.definition.all_tasks}
    return by_task, list(dict.fromkeys(by_task.values()))


def obligation_facts(session: Session, program: Program, bundle: Bundle) -> list[ObligationFact]:
    tz = ZoneInfo(program.timezone)
    sections, _ = _sections(bundle)
    rows = session.exec(
        select(Obligation).where(
            Obligation.program_id == program.id, Obligation.state != ObligationState.CANCELLED
        )
    )
    return [
        ObligationFact(
            id=o.id,
            task=o.task,
            title=o.title,
            section=sections.get(o.task, OTHER_SECTION),
            unit=o.unit,
            occurrence=o.occurrence,
            due=o.due,
            state=o.state,
            done_on=o.done_at.astimezone(tz).date() if o.done_at else None,
            reason=o.reason,
        )
        for o in rows
    ]


def indicator_facts(session: Session, program: Program, bundle: Bundle) -> list[IndicatorFact]:
    """Every reporting unit's value (or its absence) of every indicator, for the program's year."""
    stored = stored_values(session, program.id, program.year)
    directory = bundle.units.directory
    facts = []
    for task, indicator in bundle.definition.indicators:
        for unit in reporters(bundle, task, indicator):
            row = stored.get((indicator.id, unit))
            facts.append(
                IndicatorFact(
                    indicator=indicator.id,
                    name=indicator.name,
                    task=task.id,
                    section=task.section or OTHER_SECTION,
                    target=str(indicator.target),
                    percent=indicator.target.percent,
                    unit=unit,
                    unit_name=directory.name(unit),
                    value=row.value if row else None,
                    count=row.count if row else None,
                    of=row.of if row else None,
                    status=status_of(indicator, row.value if row else None),
                    note=row.note if row else None,
                )
            )
    return facts


def subjects_of(bundle: Bundle, obligations: Sequence[ObligationFact]) -> list[tuple[str, str]]:
    """The evaluation's subjects; without any, every unit that owes something in the program."""
    directory = bundle.units.directory
    evaluation = evaluation_of(bundle)
    if evaluation.subjects:
        ids = directory.expand_all(evaluation.subjects)
    else:
        owing = {o.unit for o in obligations}
        ids = tuple(u.id for u in directory.units if u.id in owing)
    return [(unit, directory.name(unit)) for unit in ids]


def build_scorecard(session: Session, program: Program, bundle: Bundle, as_of: date) -> Scorecard:
    """The scorecard of ``program`` on ``as_of`` from the stored obligations and indicator values."""
    obligations = obligation_facts(session, program, bundle)
    runs = session.exec(
        select(PhaseRun).where(PhaseRun.program_id == program.id, PhaseRun.state != PhaseState.CANCELLED)
    )
    phases = sorted((PhaseSpan(r.phase, r.name, r.start, r.end) for r in runs), key=lambda p: (p.start, p.id))
    card = score_card(
        workflow=program.workflow,
        title=program.title,
        year=program.year,
        as_of=as_of,
        evaluation=evaluation_of(bundle),
        calendar=bundle.calendar,
        subjects=subjects_of(bundle, obligations),
        sections=_sections(bundle)[1],
        obligations=obligations,
        indicators=indicator_facts(session, program, bundle),
        phases=phases,
    )
    return replace(card, extensions=extensions_of(session, program))


def extensions_of(session: Session, program: Program) -> tuple[Extension, ...]:
    """The program's approved extensions (延期), each with the due date before and after."""
    rows = session.exec(
        select(Submission, Obligation)
        .join(Obligation, Obligation.id == Submission.obligation_id)
        .where(
            Obligation.program_id == program.id,
            Submission.kind == SubmissionKind.EXTENSION,
            Submission.decision == Decision.APPROVED,
        )
    )
    found = [
        Extension(o.unit, o.task, o.title, o.occurrence, s.previous_due or o.due, o.due, s.note)
        for s, o in rows
    ]
    return tuple(sorted(found, key=lambda e: (e.unit, e.task, e.occurrence or "", e.before)))


def evaluation_day(session: Session, program: Program) -> date:
    """The day the scorecard is as of when the daemon sends it: its timer's day (``[evaluation] send_on``).

    Without a fired scorecard timer: the local day of the program's latest fired timer, else 31 December.
    """
    day = session.exec(
        select(Timer.on)
        .where(Timer.program_id == program.id, Timer.kind == TimerKind.SCORECARD, Timer.fired_at.is_not(None))
        .order_by(Timer.on.desc())
    ).first()
    if day is not None:
        return day
    fired = session.exec(
        select(Timer.fired_at)
        .where(Timer.program_id == program.id, Timer.fired_at.is_not(None))
        .order_by(Timer.fired_at.desc())
    ).first()
    if fired is not None:
        return fired.astimezone(ZoneInfo(program.timezone)).date()
    return date(program.year, 12, 31)


def attachment_name(card: Scorecard) -> str:
    return f"scorecard-{card.workflow}-{card.year}-{card.as_of:%Y%m%d}.html"


def scorecard_html(card: Scorecard) -> str:
    """The scorecard as one self-contained HTML file (``duban scorecard --format html``)."""
    return render_scorecard_html(card.as_json())


def scorecard_attachment(
    session: Session, program: Program, bundle: Bundle
) -> tuple[str, tuple[str, str, bytes]]:
    """The evaluate phase's email: (summary text for the body, (file name, "text/html", the report))."""
    card = build_scorecard(session, program, bundle, evaluation_day(session, program))
    data = card.as_json()
    html = render_scorecard_html(data)
    return render_summary(data), (attachment_name(card), "text/html", html.encode("utf-8"))
