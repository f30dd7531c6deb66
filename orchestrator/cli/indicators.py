"""``duban indicator set|list`` and ``duban scorecard``: indicator values and the year-end evaluation."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import Session

from notifications.labels import INDICATOR_STATUSES, SCORECARD_ITEMS
from orchestrator.admin.refs import find_programs
from orchestrator.cli.common import (
    BadInput,
    console,
    now,
    open_engine,
    parse_day,
    print_json_lines,
    state,
    warn,
)
from orchestrator.evaluation.indicators import (
    Reading,
    find_indicator,
    format_number,
    indicator_lines,
    parse_reading,
    set_value,
)
from orchestrator.evaluation.scoring import Score, Scorecard, build_scorecard, scorecard_html
from orchestrator.service.runtime import load_bundle_for
from orchestrator.store.audit import operator
from orchestrator.store.db import transaction
from orchestrator.store.models import Program
from workflows.catalog import Bundle
from workflows.errors import NotFound

indicator_app = typer.Typer(
    help="Indicator values: the numbers each unit reports against the plan's targets.", no_args_is_help=True
)
FORMATS = ("table", "json", "csv", "html")
PROGRAM_HELP = "WORKFLOW or WORKFLOW:YEAR (default: the only started workflow, its latest year)."


# -- shared: which program, which bundle ----------------------------------------------------------


def parse_period(text: str | None) -> int | None:
    if text is None:
        return None
    if not re.fullmatch(r"\d{4}", text.strip()) or not 1900 <= int(text) <= 2200:
        raise BadInput(f'--period: bad year "{text}", expected YYYY')
    return int(text)


def find_program(session: Session, ref: str | None, period: int | None = None) -> Program:
    """``WORKFLOW:YEAR`` exactly; ``WORKFLOW``: the program of ``period`` if started, else the latest year;
    nothing: the same for the only workflow started. A one-line error names what exists."""
    programs = find_programs(session, ref)
    if not programs:
        raise BadInput("no program started yet: run `duban start WORKFLOW --year YYYY` first")
    workflows = sorted({p.workflow for p in programs})
    if len(workflows) > 1:
        started = ", ".join(f"{p.workflow}:{p.year}" for p in programs)
        raise BadInput(f"several programs are started ({started}): choose one with --program")
    chosen = [p for p in programs if p.year == period] or programs
    return chosen[-1]


def bundle_of(program: Program) -> Bundle:
    """The program's definition with the configured units and registers."""
    settings = state.settings
    try:
        return load_bundle_for(settings, program.workflow, on_assumed=lambda y, m: warn(m))
    except NotFound:
        return load_bundle_for(settings, program.definition_path, on_assumed=lambda y, m: warn(m))


def _load(ref: str | None, period: int | None = None):
    engine = open_engine()
    with Session(engine) as session:
        program = find_program(session, ref, period)
    return engine, program, bundle_of(program)


# -- duban indicator set / list -------------------------------------------------------------------


@indicator_app.command("set")
def indicator_set(
    indicator_id: str = typer.Argument(
        ..., metavar="ID", help="The indicator id (see `duban indicator list`)."
    ),
    unit: str = typer.Option(None, "--unit", "-u", help="The unit whose value this is (a unit id)."),
    value: str = typer.Option(
        None, "--value", help="The value: a rate such as 95 or 95% (0–100), or a number."
    ),
    count: str = typer.Option(None, "--count", help="The numerator, e.g. 12 (documents filed)…"),
    of: str = typer.Option(None, "--of", help="…of the denominator, e.g. 12 (documents issued)."),
    period: str = typer.Option(
        None, "--period", help="The year the value is for (default: the program's year)."
    ),
    program: str = typer.Option(None, "--program", "-p", help=PROGRAM_HELP),
    note: str = typer.Option(None, "--note", help="A remark kept with the value (its source, a caveat)."),
) -> None:
    """Record a unit's value of an indicator; it is checked against the target (met / not met).

    Examples: [bold]duban indicator set normative_doc_filing_rate --unit town-a --count 12 --of 12[/]
    and [bold]duban indicator set complaint_on_time_rate --unit county-police --value 87.5[/]
    """
    if not unit:
        raise BadInput("--unit: whose value is it? give --unit UNIT_ID")
    year = parse_period(period)
    engine, prog, bundle = _load(program, year)
    _, indicator = find_indicator(bundle, indicator_id)
    reading = parse_reading(indicator, value, count, of)
    with transaction(engine) as session:
        result = set_value(
            session, prog, bundle, indicator_id, unit, reading,
            period=year or prog.year, note=note, now=now(), actor=operator(),
        )  # fmt: skip
    line = result.line
    status = INDICATOR_STATUSES[line.status]
    shown = reading.text(indicator.target.percent)
    suffix = "" if result.changed else "（未变化）"
    console.print(
        f"{indicator.id} {indicator.name} · {line.unit_name} · {line.period}: {shown}"
        f" — 目标 {indicator.target}：{status}{suffix}",
        markup=False,
    )


@indicator_app.command("list")
def indicator_list(
    program: str = typer.Option(None, "--program", "-p", help=PROGRAM_HELP),
    period: str = typer.Option(None, "--period", help="The year (default: the program's year)."),
    unit: str = typer.Option(None, "--unit", "-u", help="Only this unit."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per indicator and unit."),
) -> None:
    """Every indicator and reporting unit with its value and status (met / not met / missing).

    Example: [bold]duban indicator list --unit town-a[/]
    """
    year = parse_period(period)
    engine, prog, bundle = _load(program, year)
    with Session(engine) as session:
        lines = indicator_lines(session, prog, bundle, year or prog.year, unit=unit)
    if as_json:
        print_json_lines([line.as_json(prog.workflow) for line in lines])
        return
    table = Table(title=f"{prog.title} · {year or prog.year} · 指标填报（{len(lines)}项）")
    for column in ("指标", "名称", "目标", "单位", "数值", "状态", "备注", "填报"):
        table.add_column(column, overflow="fold")
    for line in lines:
        stored = line.stored
        shown = "—"
        if stored is not None:
            shown = Reading(stored.value, stored.count, stored.of).text(line.indicator.target.percent)
        style = {"met": "green", "not_met": "red", "missing": "yellow"}[line.status]
        updated = f"{stored.updated_by} {stored.updated_at:%Y-%m-%d}" if stored else ""
        table.add_row(
            line.indicator.id, line.indicator.name, str(line.indicator.target), line.unit_name, shown,
            f"[{style}]{INDICATOR_STATUSES[line.status]}[/]", (stored.note or "") if stored else "", updated,
        )  # fmt: skip
    console.print(table)


# -- duban scorecard ------------------------------------------------------------------------------


def scorecard(
    program: str = typer.Option(None, "--program", "-p", help=PROGRAM_HELP),
    as_of: str = typer.Option(None, "--as-of", help="Score as of this day, YYYY-MM-DD (default: today)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, csv or html."),
    out: Path = typer.Option(None, "--out", "-o", help="Write to this file instead of standard output."),
) -> None:
    """The year-end evaluation: each unit's score, band and rank, per section, with its late, missing and waived items.

    The formula and weights come from the definition's evaluation section (see README.md ("The formula")).

    Example: [bold]duban scorecard --format html --out 综合考评.html[/]
    """
    if fmt not in FORMATS:
        raise BadInput(f'--format: unknown format "{fmt}" (choose one of: {", ".join(FORMATS)})')
    day = parse_day(as_of, "--as-of") if as_of else None
    if out is not None and not out.parent.is_dir():
        raise BadInput(f"--out: {out.parent} is not a directory")
    engine, prog, bundle = _load(program)
    day = day or now().astimezone(ZoneInfo(prog.timezone)).date()
    with Session(engine) as session:
        card = build_scorecard(session, prog, bundle, day)
    text = _render(card, fmt)
    if out is None:
        typer.echo(text, nl=not text.endswith("\n"))
        return
    try:
        out.write_text(text, encoding="utf-8-sig" if fmt == "csv" else "utf-8")
    except OSError as exc:
        raise BadInput(f"--out: cannot write {out}: {exc.strerror}") from None
    console.print(
        f"scorecard of {prog.workflow} {prog.year} as of {day} written to {out} ({len(card.units)} units)"
    )


def _render(card: Scorecard, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(card.as_json(), ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        return scorecard_csv(card)
    if fmt == "html":
        return scorecard_html(card)
    return scorecard_table(card)


def _pts(value) -> str:
    return "—" if value is None else f"{value:.2f}"


CSV_COLUMNS = (
    "名次", "单位标识", "单位", "领域", "综合得分", "等次",
    "按期完成得分", "按期完成", "应完成", "完成及时得分", "逾期工作日", "指标达标得分", "指标达标", "应填报指标",
    "逾期完成", "尚未完成", "免除", "指标未达标", "指标未填报",
)  # fmt: skip


def _csv_row(rank, unit: str, name: str, section: str, score: Score) -> list:
    t = score.tally
    return [
        rank or "", unit, name, section, _pts(score.total), score.band or "",
        _pts(score.on_time.points), t.on_time, t.counted, _pts(score.timeliness.points), t.late_days,
        _pts(score.indicators.points), t.met, t.indicators, t.done_late, t.not_done, t.waived, t.not_met, t.missing,
    ]  # fmt: skip


def scorecard_csv(card: Scorecard) -> str:
    """One row per unit (领域 = 全部) followed by its sections; then all units together, per section."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for u in card.units:
        writer.writerow(_csv_row(u.rank, u.unit, u.name, "全部", u.score))
        for s in u.sections:
            writer.writerow(_csv_row(None, u.unit, u.name, s.section, s.score))
    writer.writerow(_csv_row(None, "", "全部考评单位", "全部", card.overall))
    for s in card.sections:
        writer.writerow(_csv_row(None, "", "全部考评单位", s.section, s.score))
    return buffer.getvalue()


def scorecard_table(card: Scorecard) -> str:
    """The ranking, the sections and each unit's late, missing and waived items, as Rich tables."""
    out = Console(file=io.StringIO(), width=max(console.width, 120), highlight=False, soft_wrap=False)
    w = card.evaluation.weights
    ranking = Table(title=f"{card.title} · {card.year}年度综合考评（截至 {card.as_of}）")
    for column in ("名次", "单位", "得分", "等次", f"按期{format_number(w.on_time)}", "按期/应完成",
                   f"及时{format_number(w.timeliness)}", "逾期工作日",
                   f"指标{format_number(w.indicators)}", "达标/应报"):  # fmt: skip
        ranking.add_column(
            column,
            justify="left" if column in ("单位", "等次") else "right",
            no_wrap=column in ("单位", "等次"),
        )
    for u in card.units:
        t = u.score.tally
        ranking.add_row(
            str(u.rank or "—"), u.name, _pts(u.score.total), u.score.band or "—",
            _pts(u.score.on_time.points), f"{t.on_time}/{t.counted}",
            _pts(u.score.timeliness.points), str(t.late_days),
            _pts(u.score.indicators.points), f"{t.met}/{t.indicators}",
        )  # fmt: skip
    out.print(ranking)
    sections = Table(title="分领域（全部考评单位）")
    for column in ("领域", "应完成", "按期完成", "逾期完成", "尚未完成", "免除", "指标达标", "得分", "等次"):
        sections.add_column(column, justify="left" if column == "领域" else "right", no_wrap=column == "等次")
    for s in card.sections:
        t = s.score.tally
        sections.add_row(
            s.section, str(t.counted), str(t.on_time), str(t.done_late), str(t.not_done), str(t.waived),
            f"{t.met}/{t.indicators}", _pts(s.score.total), s.score.band or "—",
        )  # fmt: skip
    out.print(sections)
    items = Table(title="各单位逾期、缺报、免除事项")
    for column in ("单位", "类别", "编号", "任务", "事项", "截止", "情况"):
        items.add_column(column, overflow="fold")
    for u in card.units:
        for item in (*u.late, *u.missing, *u.waived):
            kind = "指标未填报" if item.indicator else SCORECARD_ITEMS[item.kind]
            items.add_row(
                u.name, kind, item.ref or "", item.task, item.title, str(item.due or ""), _situation(item)
            )
    if items.row_count:
        out.print(items)
    else:
        out.print("各单位均无逾期、缺报、免除事项。")
    return out.file.getvalue()


def _situation(item) -> str:
    if item.kind == "waived":
        return f"理由：{item.reason or '—'}"
    if item.indicator:
        return "未填报"
    if item.kind == "late":
        return f"{item.done_on} 完成，逾期{item.late_days}个工作日"
    return f"已逾期{item.late_days}个工作日" if item.late_days else "今日到期"


def register(app: typer.Typer) -> None:
    app.add_typer(indicator_app, name="indicator")
    app.command("scorecard")(scorecard)


__all__ = ["find_program", "register", "scorecard_csv", "scorecard_table"]
