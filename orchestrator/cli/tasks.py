"""``duban tasks`` (who owes what) and ``duban show REF`` (one obligation and its whole history)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import Annotated, Any

import typer

from notifications.labels import ITEM_STATES, NOTICE_KINDS, OBLIGATION_STATES, OUTBOX_STATES, label
from orchestrator.cli.common import (
    EXIT_CODES,
    BadInput,
    console,
    current,
    hhmm,
    now,
    parse_day,
    print_json_lines,
)
from orchestrator.cli.options import Occurrence, Program, Ref, Unit, flag, json_flag
from orchestrator.store.states import FINISHED_STATES, ObligationState

STATES = tuple(ObligationState)
STATE_STYLE = {
    ObligationState.OVERDUE: "red",
    ObligationState.DONE: "green",
    ObligationState.WAIVED: "dim",
    ObligationState.CANCELLED: "dim",
}


def remark(row: Mapping[str, Any]) -> str:
    """The 说明 column: days left or late, when it was done, or why it was waived."""
    from orchestrator.admin.overview import due_soon

    if row["state"] == "done":
        when = (row["done_at"] or "")[:10]
        return f"{when} 完成" + ("（逾期完成）" if row["done_late"] else "")
    if row["state"] == "waived":
        return f"免除：{row['reason'] or ''}"
    if row["days_late"] is not None:
        return f"逾期 {row['days_late']} 天"
    if row["state"] == "pending":
        return f"{row['opens']} 开始" + (f"，还剩 {row['days_left']} 天" if due_soon(row) else "")
    if row["days_left"] == 0:
        return "今日到期"
    return f"还剩 {row['days_left']} 天" if row["days_left"] is not None else ""


def row_style(row: Mapping[str, Any]) -> str:
    from orchestrator.admin.overview import due_soon, is_late

    if is_late(row):
        return "red"
    if due_soon(row):
        return "yellow"
    return STATE_STYLE.get(row["state"], "")


def _states(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    states = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in states if s not in STATES]
    if bad or not states:
        raise BadInput(f'--state：没有 "{bad[0] if bad else text}" 这种状态（可选 {"、".join(STATES)}）')
    return states


def tasks(
    program: Program = None,
    unit: Unit = None,
    state_: Annotated[
        str | None,
        typer.Option(
            "--state",
            "-s",
            metavar="STATE[,STATE]",
            help="pending, open, overdue, done, waived or cancelled; several with commas.",
        ),
    ] = None,
    phase: Annotated[
        str | None, typer.Option("--phase", metavar="PHASE", help="A phase id, e.g. implement.")
    ] = None,
    due_before: Annotated[
        str | None,
        typer.Option("--due-before", metavar="YYYY-MM-DD", help="Due on or before this day."),
    ] = None,
    before_start: bool = flag("--before-start", "Only those due before duban notified anyone (notify-from)."),
    as_json: bool = json_flag("One JSON object per obligation."),
) -> None:
    """The obligations, by due date: who owes what, how many days are left or late.

    Without --state every obligation except cancelled ones is listed.

    Example: [bold]duban tasks --state overdue[/]  ·  [bold]duban tasks --unit county-police --due-before 2026-06-30[/]
    """
    from sqlmodel import Session

    from orchestrator.admin import overview
    from orchestrator.admin.refs import find_programs, known_phase, known_unit

    states = _states(state_)
    before = parse_day(due_before, "--due-before") if due_before else None
    ctx = current()
    names = ctx.unit_names()
    at = now()
    with Session(ctx.open_engine()) as session:
        program_ids = [p.id for p in find_programs(session, program)]
        wanted = overview.TaskFilter(
            program_ids=tuple(program_ids) if program else None,
            unit=known_unit(session, unit, names),
            states=states,
            phase=known_phase(session, phase, program_ids),
            due_before=before,
            before_start=before_start,
        )
        rows = overview.task_rows(session, wanted, names, at)
    if as_json:
        print_json_lines(rows)
        return
    _print_tasks(rows)


def _print_tasks(rows: list[dict[str, Any]]) -> None:
    from orchestrator.admin.overview import count_states
    from orchestrator.cli.grid import Column, render
    from orchestrator.cli.status import state_summary

    columns = (
        Column("#", right=True),
        Column("任务"),
        Column("事项", wrap=3),
        Column("责任单位", wrap=2),
        Column("到期日"),
        Column("状态"),
        Column("说明", wrap=2),
    )
    cells = [
        (
            str(row["id"]),
            row["task"],
            row["title"] + (f"（{row['occurrence']}）" if row["occurrence"] else ""),
            row["unit_name"],
            row["due"],
            label(OBLIGATION_STATES, row["state"]),
            remark(row),
        )
        for row in rows
    ]
    table = render(console, columns, cells, [row_style(r) for r in rows], state_summary(count_states(rows)))
    console.print(table, soft_wrap=True)


def show(
    ref: Ref,
    unit: Unit = None,
    occurrence: Occurrence = None,
    program: Program = None,
    as_json: bool = json_flag("One JSON object: obligation, timers, notices, history."),
) -> None:
    """One obligation: its dates and state, every notice (sent when, to whom) and its whole history.

    Example: [bold]duban show 12[/]  ·  [bold]duban show T05 --unit county-police[/]
    """
    from zoneinfo import ZoneInfo

    from sqlmodel import Session

    from orchestrator.admin.overview import phase_name, story
    from orchestrator.admin.refs import Ref as RefOf
    from orchestrator.admin.refs import resolve
    from orchestrator.store.models import Program as ProgramRow

    ctx = current()
    names = ctx.unit_names()
    with Session(ctx.open_engine()) as session:
        obligation = resolve(session, RefOf(ref, unit, occurrence, program), names)
        found = story(session, obligation, names, now())
        tz = ZoneInfo(session.get(ProgramRow, obligation.program_id).timezone)
        phase = phase_name(session, obligation)
    if as_json:
        print_json_lines([found])
        return
    _print_story(found, tz, phase)


def _print_story(found: dict[str, Any], tz: tzinfo, phase: str | None) -> None:
    from rich.table import Table
    from rich.text import Text

    from orchestrator.admin.audit_text import change_text, detail_text, kind_text

    row = found["obligation"]
    console.print(
        Text(f"#{row['id']} {row['task']} {row['title']}", style="bold").append(
            f"（{row['occurrence']}）" if row["occurrence"] else ""
        )
    )
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim", no_wrap=True)
    facts.add_column(overflow="fold")
    facts.add_row("方案", f"{row['program_title']} {row['year']}（{row['workflow']}）")
    facts.add_row("责任单位", f"{row['unit_name']}（{row['unit']}）")
    facts.add_row("牵头单位", "、".join(row["lead_names"]) or "—")
    facts.add_row("阶段", phase or "—")
    facts.add_row("开始 / 到期", f"{row['opens']} / {row['due']}")
    state = f"{label(OBLIGATION_STATES, row['state'])}  {remark(row)}"
    facts.add_row("状态", Text(state, style=row_style(row)))
    if row["evidence"]:
        facts.add_row("完成依据", row["evidence"])
    facts.add_row("编号", row["key"])
    console.print(facts)
    notices = Table(title="通知", title_justify="left")
    for column in ("种类", "收件单位", "发送时间", "状态", "邮件"):
        notices.add_column(column, overflow="fold")
    for n in found["notices"]:
        mail = "—"
        if n["outbox_id"] is not None:
            state = label(OUTBOX_STATES, n["message_state"])
            mail = f"#{n['outbox_id']} {state} {hhmm(n['sent_at'])} → {', '.join(n['to'])}"
        notices.add_row(
            label(NOTICE_KINDS, n["kind"]),
            n["recipient_name"],
            hhmm(n["send_at"]),
            label(ITEM_STATES, n["state"]),
            mail,
        )
    console.print(notices if found["notices"] else Text("通知：尚无", style="dim"))
    upcoming = [t for t in found["timers"] if t["fired_at"] is None]
    if upcoming and row["state"] not in FINISHED_STATES:  # a done or waived one is told nothing more
        console.print(
            "计划中的通知：" + "，".join(f"{t['on']} {label(NOTICE_KINDS, t['kind'])}" for t in upcoming),
            soft_wrap=True,
        )
    if found.get("submissions"):
        _print_submissions(found["submissions"])
    history = Table(title="记录（审计日志）", title_justify="left")
    for column in ("时间", "操作人", "事件", "变化", "说明"):
        history.add_column(column, overflow="fold")
    for e in found["history"]:
        history.add_row(hhmm(e["at"]), e["actor"], kind_text(e["kind"]), change_text(e, tz), detail_text(e))
    console.print(history)


def _print_submissions(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    from orchestrator.admin.portal import DECISION_LABELS, KIND_LABELS
    from orchestrator.cli.review import printable

    table = Table(title="单位提交与审核", title_justify="left")
    for column in ("#", "种类", "提交时间", "说明", "审核", "材料"):
        table.add_column(column, overflow="fold")
    for s in rows:
        kind = KIND_LABELS.get(s["kind"], s["kind"]) + (f"（至 {s['requested']}）" if s["requested"] else "")
        decision = "待审核" if s["decision"] is None else DECISION_LABELS.get(s["decision"], s["decision"])
        if s["decided_at"] and s["decision"] != "noted":
            decision += f" {hhmm(s['decided_at'])} {printable(s['decided_by'])}"
            decision += f"：{printable(s['reason'])}" if s["reason"] else ""
        files = "\n".join(
            f"#{f['id']} {printable(f['name'])} {f['size']} B sha256 {f['sha256']}" for f in s["files"]
        )
        table.add_row(
            str(s["id"]),
            kind,
            hhmm(s["submitted_at"]),
            Text(printable(s["note"])),
            Text(decision),
            Text(files or "—"),
        )
    console.print(table)


def register(app) -> None:
    app.command("tasks", epilog=EXIT_CODES)(tasks)
    app.command("show", epilog=EXIT_CODES)(show)
