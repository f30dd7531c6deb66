"""The year-end evaluation (综合考评) from the database: the facts of a program's obligations and
indicator values, its scorecard (``build_scorecard``), the day it is as of, and
``scorecard_attachment``, the evaluate phase's email hook.

The formula is in formula.py, the data model in scorecard.py; both are re-exported here, so
``from orchestrator.evaluation.scoring import …`` keeps working for every name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from notifications.report import render_scorecard_html, render_summary
from orchestrator.evaluation.formula import _ranks, band_for, done_by, late_days, score, score_card
from orchestrator.evaluation.indicators import reporters, status_of, stored_values
from orchestrator.evaluation.scorecard import (
    CENT,
    Component,
    Extension,
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
from orchestrator.store.models import Obligation, PhaseRun, Program, Submission, Timer
from orchestrator.store.states import Decision, ObligationState, PhaseState, SubmissionKind, TimerKind
from workflows.catalog import Bundle
from workflows.schema import Evaluation

OTHER_SECTION = "其他"
DUTY_SECTION = "常规工作"  # duties outside the plan's areas (e.g. 「三、工作步骤」): one group of their own

__all__ = [
    "CENT",
    "DUTY_SECTION",
    "OTHER_SECTION",
    "Component",
    "Extension",
    "IndicatorFact",
    "IndicatorSummary",
    "Item",
    "ObligationFact",
    "PhaseSpan",
    "Score",
    "Scorecard",
    "SectionScore",
    "Tally",
    "UnitScore",
    "_ranks",
    "attachment_name",
    "band_for",
    "build_scorecard",
    "done_by",
    "evaluation_day",
    "evaluation_of",
    "extensions_of",
    "half_up",
    "indicator_facts",
    "late_days",
    "obligation_facts",
    "score",
    "score_card",
    "scorecard_attachment",
    "scorecard_html",
    "subjects_of",
]


def evaluation_of(bundle: Bundle) -> Evaluation:
    return bundle.definition.evaluation or Evaluation()


def _sections(bundle: Bundle) -> tuple[dict[str, str], list[str]]:
    """Task id → section, and the sections in order. The sections are the plan's areas: the
    sections of its tasks. A duty counts in its area when its section is one; other duties (a
    chapter such as 「三、工作步骤」) are grouped as 「常规工作」, after the areas."""
    definition = bundle.definition
    by_task = {t.id: t.section or OTHER_SECTION for t in definition.tasks}
    areas = list(dict.fromkeys(by_task.values()))
    for duty in definition.duties:
        by_task[duty.id] = duty.section if duty.section in areas else DUTY_SECTION
    order = [*areas, *([DUTY_SECTION] if DUTY_SECTION in by_task.values() else [])]
    return by_task, order


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
                    section=_sections(bundle)[0].get(task.id, OTHER_SECTION),
                    target=str(indicator.target),
                    percent=indicator.target.percent,
                    unit=unit,
                    unit_name=directory.name(unit),
                    value=row.value if row else None,
                    count=row.count if row else None,
                    of=row.of if row else None,
                    status=status_of(
                        indicator, row.value if row else None, row.not_applicable if row else False
                    ),
                    note=row.note if row else None,
                )
            )
    return facts


def subjects_of(bundle: Bundle, obligations: Sequence[ObligationFact]) -> list[tuple[str, str]]:
    """The evaluation's subjects; without any, every unit that owes something in the program. In the
    units file's order (the scorecard's order for equal scores)."""
    directory = bundle.units.directory
    evaluation = evaluation_of(bundle)
    if evaluation.subjects:
        ids = tuple(sorted(directory.expand_all(evaluation.subjects), key=directory.rank))
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
