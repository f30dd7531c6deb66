"""``duban scorecard``: the year-end evaluation as a table, JSON, CSV or the HTML report."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.cli.common import EXIT_CODES, BadInput, console, now, parse_day
from orchestrator.cli.indicators import Program, load_program

if TYPE_CHECKING:
    from orchestrator.evaluation.scoring import Scorecard

FORMATS = ("table", "json", "csv", "html")


def scorecard(
    program: Program = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", metavar="YYYY-MM-DD", help="Score as of this day (default: today)."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", metavar="table|json|csv|html", help="The output format.")
    ] = "table",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="FILE", help="Write to this file instead of standard output."),
    ] = None,
) -> None:
    """The year-end evaluation: each unit's score, band and rank, per section, with its late, missing and waived items.

    The formula and weights come from the definition's evaluation section (see README.md ("The formula")).

    Example: [bold]duban scorecard --format html --out 综合考评.html[/]
    """
    from zoneinfo import ZoneInfo

    from sqlmodel import Session

    from orchestrator.evaluation.scoring import build_scorecard

    if fmt not in FORMATS:
        raise BadInput(f'--format：没有 "{fmt}" 这种格式（可选 {"、".join(FORMATS)}）')
    day = parse_day(as_of, "--as-of") if as_of else None
    if out is not None and not out.parent.is_dir():
        raise BadInput(f"--out：{out.parent} 不是文件夹")
    engine, prog, bundle = load_program(program)
    day = day or now().astimezone(ZoneInfo(prog.timezone)).date()
    with Session(engine) as session:
        card = build_scorecard(session, prog, bundle, day)
    text = _render(card, fmt)
    if out is None:
        from orchestrator.cli.terminal import neutralise, neutralise_json

        shown = neutralise_json(text) if fmt == "json" else neutralise(text)  # no raw control characters
        typer.echo(shown, nl=not text.endswith("\n"))
        return
    try:
        out.write_text(text, encoding="utf-8-sig" if fmt == "csv" else "utf-8")
    except OSError as exc:
        raise BadInput(f"--out：无法写入 {out}：{exc.strerror}") from None
    console.print(
        f"综合考评（{prog.title} {prog.year} 年度，截至 {day}）已写入 {out}：{len(card.units)} 个单位",
        markup=False,
    )


def _render(card: Scorecard, fmt: str) -> str:
    if fmt == "html":
        from orchestrator.evaluation.scoring import scorecard_html

        return scorecard_html(card)
    if fmt == "json":
        return json.dumps(card.as_json(), ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        from orchestrator.evaluation.scorecard_csv import scorecard_csv

        return scorecard_csv(card)
    return scorecard_table(card)


def _pts(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def scorecard_table(card: Scorecard) -> str:
    """The ranking, the sections and each unit's late, missing and waived items, as Rich tables."""
    from rich.table import Table

    from notifications.labels import SCORECARD_ITEMS
    from orchestrator.cli.terminal import SafeConsole
    from orchestrator.evaluation.indicators import format_number

    out = SafeConsole(file=io.StringIO(), width=max(console.width, 120), highlight=False, soft_wrap=False)
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
    app.command("scorecard", epilog=EXIT_CODES)(scorecard)


__all__ = ["register", "scorecard_table"]
