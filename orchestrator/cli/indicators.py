"""``duban indicator set|list``: the numbers each unit reports against the plan's targets."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from orchestrator.cli.common import BadInput, console, current, hhmm, now, print_json_lines
from orchestrator.cli.options import Unit, flag, json_flag

indicator_app = typer.Typer(
    help="Indicator values: the numbers each unit reports against the plan's targets.", no_args_is_help=True
)
PROGRAM_HELP = "WORKFLOW or WORKFLOW:YEAR (default: the only started workflow, its latest year)."
Program = Annotated[str | None, typer.Option("--program", "-p", metavar="WORKFLOW[:YEAR]", help=PROGRAM_HELP)]
Period = Annotated[
    str | None,
    typer.Option("--period", metavar="YYYY", help="The year the value is for (default: the program's year)."),
]


def parse_period(text: str | None) -> int | None:
    if text is None:
        return None
    if not re.fullmatch(r"\d{4}", text.strip()) or not 1900 <= int(text) <= 2200:
        raise BadInput(f'--period：年份 "{text}" 有误，应为四位数年份，如 2026')
    return int(text)


def find_program(session, ref: str | None, period: int | None = None):
    """``WORKFLOW:YEAR`` exactly; ``WORKFLOW``: the program of ``period`` if started, else the latest year;
    nothing: the same for the only workflow started. A one-line error names what exists."""
    from orchestrator.admin.refs import find_programs

    programs = find_programs(session, ref)
    if not programs:
        raise BadInput("尚未启动任何方案：请先运行 duban start 方案编号 --year 年份")
    workflows = sorted({p.workflow for p in programs})
    if len(workflows) > 1:
        started = ", ".join(f"{p.workflow}:{p.year}" for p in programs)
        raise BadInput(f"已启动多个方案（{started}）：请用 --program 指定一个")
    chosen = [p for p in programs if p.year == period] or programs
    return chosen[-1]


def load_program(ref: str | None, period: int | None = None):
    """(engine, program, its bundle) for ``--program`` and ``--period``."""
    from sqlmodel import Session

    run = current()
    engine = run.open_engine()
    with Session(engine) as session:
        program = find_program(session, ref, period)
    return engine, program, run.program_bundle(program)


def _unit(unit: str | None, bundle) -> str | None:
    """``--unit`` as a unit id: the id, or the unit's exact name in the units file."""
    from orchestrator.admin.refs import unit_id

    if unit is None:
        return None
    return unit_id(unit.strip(), {u.id: u.name for u in bundle.units.directory.units})


@indicator_app.command("set")
def indicator_set(
    indicator_id: Annotated[
        str, typer.Argument(metavar="ID", help="The indicator id (see `duban indicator list`).")
    ],
    unit: Unit = None,
    value: Annotated[
        str | None,
        typer.Option(
            "--value", metavar="V", help="The value: a rate such as 95 or 95% (0–100), or a number."
        ),
    ] = None,
    count: Annotated[
        str | None, typer.Option("--count", metavar="N", help="The numerator, e.g. 12 (documents filed)…")
    ] = None,
    of: Annotated[
        str | None, typer.Option("--of", metavar="M", help="…of the denominator, e.g. 12 (documents issued).")
    ] = None,
    not_applicable: bool = flag(
        "--na", "The indicator does not apply to this unit (counted neither met nor missing); needs --reason."
    ),
    reason: Annotated[
        str | None, typer.Option("--reason", metavar="TEXT", help="Why it does not apply (with --na).")
    ] = None,
    period: Period = None,
    program: Program = None,
    note: Annotated[
        str | None,
        typer.Option("--note", metavar="TEXT", help="A remark kept with the value (its source, a caveat)."),
    ] = None,
) -> None:
    """Record a unit's value of an indicator; it is checked against the target (met / not met).

    Examples: [bold]duban indicator set normative_doc_filing_rate --unit town-a --count 12 --of 12[/],
    [bold]duban indicator set complaint_on_time_rate --unit county-police --value 87.5[/] and
    [bold]duban indicator set normative_doc_filing_rate --unit 东溪乡人民政府 --na --reason "本乡未制定规范性文件"[/]
    """
    from notifications.labels import INDICATOR_STATUSES
    from orchestrator.evaluation.indicators import (
        check_period,
        find_indicator,
        parse_reading,
        set_value,
    )
    from orchestrator.store.audit import operator
    from orchestrator.store.db import transaction

    if not unit:
        raise BadInput("--unit：请指定填报单位，如 --unit 单位编号（或单位名称）")
    year = parse_period(period)
    engine, prog, bundle = load_program(program, year)
    _, indicator = find_indicator(bundle, indicator_id)
    reading = parse_reading(indicator, value, count, of, not_applicable=not_applicable, reason=reason)
    with transaction(engine) as session:
        period_ = check_period(session, prog, year) if year is not None else prog.year
        result = set_value(
            session, prog, bundle, indicator_id, _unit(unit, bundle), reading,
            period=period_, note=reason if not_applicable else note, now=now(), actor=operator(),
        )  # fmt: skip
    line = result.line
    status = INDICATOR_STATUSES[line.status]
    shown = reading.text(indicator.target.percent)
    suffix = "" if result.changed else "（未变化）"
    target = f"目标 {indicator.target}：{status}" if not reading.not_applicable else f"不计入考评（{reason}）"
    console.print(
        f"{indicator.id} {indicator.name} · {line.unit_name} · {line.period} 年度：{shown} — {target}{suffix}",
        markup=False,
    )


@indicator_app.command("list")
def indicator_list(
    program: Program = None,
    period: Period = None,
    unit: Unit = None,
    as_json: bool = json_flag("One JSON object per indicator and unit."),
) -> None:
    """Every indicator and reporting unit with its value and status (met / not met / missing / not applicable).

    Example: [bold]duban indicator list --unit town-a[/]
    """
    from sqlmodel import Session

    from orchestrator.evaluation.indicators import indicator_lines

    year = parse_period(period)
    engine, prog, bundle = load_program(program, year)
    with Session(engine) as session:
        if year is not None:
            from orchestrator.evaluation.indicators import check_period

            check_period(session, prog, year)
        lines = indicator_lines(session, prog, bundle, year or prog.year, unit=_unit(unit, bundle))
    if as_json:
        print_json_lines([line.as_json(prog.workflow) for line in lines])
        return
    _print_lines(prog, year, lines)


def _print_lines(prog, year, lines) -> None:
    from zoneinfo import ZoneInfo

    from rich.table import Table
    from rich.text import Text

    from notifications.labels import INDICATOR_STATUSES
    from orchestrator.evaluation.indicators import Reading

    tz = ZoneInfo(prog.timezone)
    table = Table(title=f"{prog.title} · {year or prog.year} · 指标填报（{len(lines)}项）")
    for column in ("指标", "名称", "目标", "单位", "数值", "状态", "备注", "填报"):
        table.add_column(column, overflow="fold")
    styles = {"met": "green", "not_met": "red", "missing": "yellow", "not_applicable": "dim"}
    for line in lines:
        stored = line.stored
        shown = "—"
        if stored is not None:
            reading = Reading(stored.value, stored.count, stored.of, stored.not_applicable)
            shown = reading.text(line.indicator.target.percent)
        updated = f"{stored.updated_by} {hhmm(stored.updated_at, tz)}" if stored else ""
        table.add_row(
            line.indicator.id, line.indicator.name, str(line.indicator.target), line.unit_name, shown,
            Text(INDICATOR_STATUSES[line.status], style=styles[line.status]),
            (stored.note or "") if stored else "", updated,
        )  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(indicator_app, name="indicator")


__all__ = ["find_program", "load_program", "register"]
