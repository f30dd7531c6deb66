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

``score_card`` is pure (plain facts in, a ``Scorecard`` out); the data model is in scorecard.py,
the database reads and the evaluate phase's email hook in scoring.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from fractions import Fraction

from orchestrator.evaluation.indicators import MET, MISSING, NOT_APPLICABLE, NOT_MET
from orchestrator.evaluation.scorecard import (
    Component,
    IndicatorFact,
    IndicatorSummary,
    Item,
    ObligationFact,
    PhaseSpan,
    Score,
    Scorecard,
    SectionScore,
    Tally,
    UnitScore,
    half_up,
)
from orchestrator.store.states import ObligationState
from workflows.calendar import WorkdayCalendar
from workflows.schema import Evaluation


def band_for(score: Decimal, evaluation: Evaluation) -> str:
    """The band with the highest ``min`` that ``score`` reaches (the schema guarantees one at 0)."""
    bands = sorted(evaluation.bands, key=lambda b: -b.min)
    return next((b.name for b in bands if score >= Decimal(str(b.min))), bands[-1].name)


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
    statuses = [i.status for i in indicators if i.status != NOT_APPLICABLE]  # counted neither way
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
