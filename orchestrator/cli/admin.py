"""The admin CLI: ``status``, ``tasks``, ``show``, ``done``, ``waive``, ``reopen``, ``log``, ``calendar export``.

Each command parses its arguments, calls one function of ``overview`` (to read) or
``operations`` (to change, in one transaction with an audit event), and prints: a Rich table for
a person (unit names from the units file, overdue in red, due within 3 days in yellow, counts and
totals), or JSON lines with stable field names (``--json``; see docs/admin-cli.md).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from datetime import datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from rich.text import Text
from sqlmodel import Session, select

from notifications.labels import (
    ITEM_STATES,
    NOTICE_KINDS,
    OBLIGATION_STATES,
    OUTBOX_STATES,
    PHASE_STATES,
    label,
)
from orchestrator.admin import operations, overview
from orchestrator.admin.refs import Ref, find_programs, resolve, unit_id
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
from orchestrator.engine.outbox.waiting import waiting
from orchestrator.service.runtime import load_bundle_for
from orchestrator.store.audit import operator
from orchestrator.store.db import transaction
from orchestrator.store.models import Event, Obligation, PhaseRun, Program
from orchestrator.store.states import ObligationState, OutboxState, PhaseState, ProgramState
from workflows.catalog import Bundle
from workflows.errors import DubanError, NotFound
from workflows.loader import load_units

EXIT_CODES = (
    "Exit codes: 0 ok · 1 the action or check failed · 2 bad usage or bad input "
    "(one line on stderr naming what is wrong; --debug shows a traceback)."
)
STATE_STYLE = {
    ObligationState.OVERDUE: "red",
    ObligationState.DONE: "green",
    ObligationState.WAIVED: "dim",
    ObligationState.CANCELLED: "dim",
}

REF_HELP = "An obligation id (12 or #12), an obligation key, or a TASK_ID with --unit."
UNIT_HELP = "A unit id, or its exact name from the units file."
PROGRAM_HELP = "WORKFLOW or WORKFLOW:YEAR, when several programs are running."

calendar_app = typer.Typer(help="Calendar files (.ics) of the open obligations.", no_args_is_help=True)


# -- shared helpers -----------------------------------------------------------------------------


def unit_names() -> dict[str, str]:
    """Unit id → name from the configured units file; ids stand in (with a warning) if it cannot be read."""
    path = state.settings.definitions.units
    if path is None:
        return {}
    try:
        return {u.id: u.name for u in load_units(path).directory.units}
    except DubanError as exc:
        warn(f"unit names unavailable, showing ids ({str(exc).splitlines()[0]})")
        return {}


def known_unit(session: Session, text: str | None, names: Mapping[str, str]) -> str | None:
    """``--unit`` as a unit id; ``NotFound`` when neither the units file nor any obligation has it."""
    if text is None:
        return None
    unit = unit_id(text.strip(), names)
    if unit in names or session.exec(select(Obligation.id).where(Obligation.unit == unit).limit(1)).first():
        return unit
    if session.exec(select(Event.id).where(Event.unit == unit).limit(1)).first():
        return unit
    raise NotFound(f'--unit: unknown unit "{text}"')


def program_bundle(program: Program, on_assumed: Callable[[int, str], None] | None = None) -> Bundle:
    """The bundle a program was started from: its workflow id, else the definition file it recorded."""
    settings = state.settings
    try:
        return load_bundle_for(settings, program.workflow, on_assumed=on_assumed)
    except NotFound:
        return load_bundle_for(settings, program.definition_path, on_assumed=on_assumed)


def make_ref(ref: str, unit: str | None, occurrence: str | None, program: str | None) -> Ref:
    return Ref(ref, unit=unit, occurrence=occurrence, program=program)


def _styled(value: str, style: str | None) -> Text:
    return Text(value, style=style or "")


def remark(row: Mapping[str, Any]) -> str:
    """The 说明 column: days left or late, when it was done, or why it was waived."""
    if row["state"] == ObligationState.DONE:
        when = (row["done_at"] or "")[:10]
        return f"{when} 完成" + ("（逾期完成）" if row["done_late"] else "")
    if row["state"] == ObligationState.WAIVED:
        return f"免除：{row['reason'] or ''}"
    if row["days_late"] is not None:
        return f"逾期 {row['days_late']} 天"
    if row["state"] == ObligationState.PENDING:
        return f"{row['opens']} 开始" + (f"，还剩 {row['days_left']} 天" if overview.due_soon(row) else "")
    if row["days_left"] == 0:
        return "今日到期"
    return f"还剩 {row['days_left']} 天" if row["days_left"] is not None else ""


def row_style(row: Mapping[str, Any]) -> str | None:
    if overview.is_late(row):
        return "red"
    if overview.due_soon(row):
        return "yellow"
    return STATE_STYLE.get(row["state"])


def state_summary(counts: Mapping[str, int]) -> str:
    parts = [f"{OBLIGATION_STATES[s]} {counts[s]}" for s in overview.STATES if counts.get(s)]
    if counts.get("done_late"):
        parts.append(f"其中逾期完成 {counts['done_late']}")
    return f"共 {counts['total']} 项" + ("：" + " · ".join(parts) if parts else "")


def _local_midnight(day_text: str, what: str, tz: ZoneInfo) -> datetime:
    return datetime.combine(parse_day(day_text, what), time(0), tz)


# -- status -------------------------------------------------------------------------------------


def status(
    as_json: bool = typer.Option(False, "--json", help="One JSON object with everything shown."),
) -> None:
    """Programs and their phases, obligations by state, the outbox, whether the daemon is alive.

    Warns when a running program has dates in a year the working-day calendar has no official
    schedule for.

    Example: [bold]duban status[/]
    """
    settings = state.settings
    at = now()
    engine = open_engine()
    with Session(engine) as session:
        tz = overview.display_tz(session)
        programs = overview.program_rows(session)
        outbox = overview.outbox_counts(session)
        daemons = overview.daemon_rows(session, at, settings.daemon.tick_interval, tz)
        pending = waiting(session, at).as_json(lambda t: overview.iso(t, tz))
        warnings = calendar_warnings(session)
    report = {
        "now": overview.iso(at, tz),
        "programs": programs,
        "outbox": outbox,
        "waiting": pending,
        "daemons": daemons,
        "daemon_alive": any(d["alive"] for d in daemons),
        "last_tick_at": max((d["last_tick_at"] for d in daemons if d["last_tick_at"]), default=None),
        "warnings": warnings,
    }
    if as_json:
        print_json_lines([report])
        return
    _print_status(report)


def calendar_warnings(session: Session) -> list[str]:
    """One line per (running program, year it touches) without official working-day data."""
    found = []
    for program in session.exec(select(Program).where(Program.state == ProgramState.RUNNING)):
        try:
            calendar = program_bundle(program).calendar
        except DubanError as exc:
            found.append(
                f"{program.workflow} {program.year}: calendar not checked ({str(exc).splitlines()[0]})"
            )
            continue
        for year in overview.years_touched(session, program):
            if not calendar.has_official_data(year):
                found.append(f"{program.workflow} {program.year}: {calendar.warning_for(year)}")
    return found


def _print_status(report: dict[str, Any]) -> None:
    console.print(f"[bold]督办 duban[/] · {report['now'][:16].replace('T', ' ')}")
    if not report["programs"]:
        console.print("no program started yet: run [bold]duban start WORKFLOW --year YYYY[/]")
    for program in report["programs"]:
        counts = program["obligations"]
        table = Table(
            title=f"{program['title']} · {program['year']}（{program['workflow']}，#{program['id']}）"
        )
        for column in ("阶段", "起止", "状态"):
            table.add_column(column)
        for phase in program["phases"]:
            style = (
                "bold"
                if phase["state"] == PhaseState.ACTIVE
                else ("dim" if phase["state"] != PhaseState.PENDING else None)
            )
            table.add_row(
                _styled(phase["name"], style),
                f"{phase['start']} — {phase['end']}",
                _styled(label(PHASE_STATES, phase["state"]), style),
            )
        console.print(table)
        line = Text(f"事项：{state_summary(counts)}")
        if counts[ObligationState.OVERDUE]:
            line.append(
                f"；{program['late_units']} 个单位有逾期事项（duban tasks --state overdue）", style="red"
            )
        console.print(line)
    outbox = report["outbox"]
    channels = outbox.get("channels", {})
    email = channels.get("email", outbox)
    line = Text("邮件：" + " · ".join(f"{OUTBOX_STATES[s]} {email[s]}" for s in overview.OUTBOX_STATES))
    if email[OutboxState.FAILED]:
        line.append("（duban outbox --state failed）", style="red")
    if outbox["refused_recipients"]:
        line.append(f"；{outbox['refused_recipients']} 个收件地址被拒收", style="red")
    console.print(line)
    pending = report["waiting"]
    line = Text(f"待发：{pending['notices']} 条通知尚未归入邮件，{pending['messages']} 封邮件等待发送")
    if pending["next_send_at"]:
        line.append(f"；下次发送 {pending['next_send_at'][:16].replace('T', ' ')}", style="bold")
    console.print(line)
    if "robot" in channels:  # the group robots' messages: their own deliveries
        robots = channels["robot"]
        line = Text(
            "群机器人：" + " · ".join(f"{OUTBOX_STATES[s]} {robots[s]}" for s in overview.OUTBOX_STATES)
        )
        if robots[OutboxState.FAILED]:
            line.append("（duban outbox --state failed）", style="red")
        console.print(line)
    if not report["daemons"]:
        console.print(Text("守护进程：从未在此数据库上运行（duban run）", style="red"))
    for daemon in report["daemons"]:
        alive = Text("运行中", style="green") if daemon["alive"] else Text("未运行", style="red")
        last_tick = (daemon["last_tick_at"] or "从未")[:19].replace("T", " ")
        seen = daemon["last_seen_at"][:19].replace("T", " ")
        console.print(
            Text("守护进程：")
            .append(alive)
            .append(
                f" · {daemon['node']}（{daemon['host']} pid {daemon['pid']}，{daemon['role']}）"
                f" · 最近一次 tick {last_tick} · 最近心跳 {seen}"
            )
        )
    for message in report["warnings"]:
        console.print(Text(f"警告：{message}", style="yellow"))


# -- tasks --------------------------------------------------------------------------------------


def _states(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    states = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in states if s not in overview.STATES]
    if bad or not states:
        raise BadInput(
            f'--state: unknown state "{bad[0] if bad else text}" (one of {", ".join(overview.STATES)})'
        )
    return states


def _phase(session: Session, phase: str | None, program_ids: list[int]) -> str | None:
    if phase is None:
        return None
    known = sorted(set(session.exec(select(PhaseRun.phase).where(PhaseRun.program_id.in_(program_ids)))))
    if phase not in known:
        raise NotFound(f'--phase: unknown phase "{phase}" (phases: {", ".join(known) or "none"})')
    return phase


def tasks(
    program: str = typer.Option(None, "--program", "-p", help=PROGRAM_HELP),
    unit: str = typer.Option(None, "--unit", "-u", help=UNIT_HELP),
    state_: str = typer.Option(
        None, "--state", "-s", help="pending, open, overdue, done, waived or cancelled; several with commas."
    ),
    phase: str = typer.Option(None, "--phase", help="A phase id, e.g. implement."),
    due_before: str = typer.Option(None, "--due-before", help="Due on or before this day (YYYY-MM-DD)."),
    before_start: bool = typer.Option(
        False, "--before-start", help="Only those due before duban notified anyone (notify-from)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per obligation."),
) -> None:
    """The obligations, by due date: who owes what, how many days are left or late.

    Without --state every obligation except cancelled ones is listed.

    Example: [bold]duban tasks --state overdue[/]  ·  [bold]duban tasks --unit county-police --due-before 2026-06-30[/]
    """
    states = _states(state_)
    before = parse_day(due_before, "--due-before") if due_before else None
    names = unit_names()
    at = now()
    with Session(open_engine()) as session:
        program_ids = [p.id for p in find_programs(session, program)]
        wanted = overview.TaskFilter(
            program_ids=tuple(program_ids) if program else None,
            unit=known_unit(session, unit, names),
            states=states,
            phase=_phase(session, phase, program_ids),
            due_before=before,
            before_start=before_start,
        )
        rows = overview.task_rows(session, wanted, names, at)
    if as_json:
        print_json_lines(rows)
        return
    _print_tasks(rows)


def _print_tasks(rows: list[dict[str, Any]]) -> None:
    table = Table(caption=state_summary(overview.count_states(rows)), caption_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("任务", no_wrap=True)
    table.add_column("事项", overflow="fold", ratio=3)
    table.add_column("责任单位", overflow="fold", ratio=2)
    table.add_column("到期日", no_wrap=True)
    table.add_column("状态", no_wrap=True)
    table.add_column("说明", overflow="fold", ratio=2)
    for row in rows:
        title = row["title"] + (f"（{row['occurrence']}）" if row["occurrence"] else "")
        table.add_row(
            str(row["id"]),
            row["task"],
            title,
            row["unit_name"],
            row["due"],
            label(OBLIGATION_STATES, row["state"]),
            remark(row),
            style=row_style(row),
        )
    console.print(table)


# -- show ---------------------------------------------------------------------------------------


def show(
    ref: str = typer.Argument(..., metavar="REF", help=REF_HELP),
    unit: str = typer.Option(None, "--unit", "-u", help=UNIT_HELP),
    occurrence: str = typer.Option(None, "--occurrence", help="The occurrence key of a recurring duty."),
    program: str = typer.Option(None, "--program", "-p", help=PROGRAM_HELP),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object: obligation, timers, notices, history."
    ),
) -> None:
    """One obligation: its dates and state, every notice (sent when, to whom) and its whole history.

    Example: [bold]duban show 12[/]  ·  [bold]duban show T05 --unit county-police[/]
    """
    names = unit_names()
    with Session(open_engine()) as session:
        obligation = resolve(session, make_ref(ref, unit, occurrence, program), names)
        found = overview.story(session, obligation, names, now())
    if as_json:
        print_json_lines([found])
        return
    _print_story(found)


def _print_story(found: dict[str, Any]) -> None:
    row = found["obligation"]
    style = row_style(row)
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
    facts.add_row("阶段", row["phase"] or "—")
    facts.add_row("开始 / 到期", f"{row['opens']} / {row['due']}")
    facts.add_row("状态", _styled(f"{label(OBLIGATION_STATES, row['state'])}  {remark(row)}", style))
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
            sent = (n["sent_at"] or "")[:16].replace("T", " ")
            mail = (
                f"#{n['outbox_id']} {label(OUTBOX_STATES, n['message_state'])} {sent} → {', '.join(n['to'])}"
            )
        notices.add_row(
            label(NOTICE_KINDS, n["kind"]),
            n["recipient_name"],
            (n["send_at"] or "")[:16].replace("T", " "),
            label(ITEM_STATES, n["state"]),
            mail,
        )
    console.print(notices if found["notices"] else Text("通知：尚无", style="dim"))
    upcoming = [t for t in found["timers"] if t["fired_at"] is None]
    if upcoming:
        console.print(
            "计划中的通知：" + "，".join(f"{t['on']} {label(NOTICE_KINDS, t['kind'])}" for t in upcoming),
            soft_wrap=True,
        )
    if found["submissions"]:
        _print_submissions(found["submissions"])
    history = Table(title="记录（审计日志）", title_justify="left")
    for column in ("时间", "操作人", "事件", "变化", "说明"):
        history.add_column(column, overflow="fold")
    for e in found["history"]:
        history.add_row(e["at"][:16].replace("T", " "), e["actor"], e["kind"], _change(e), e["detail"] or "")
    console.print(history)


def _print_submissions(rows: list[dict[str, Any]]) -> None:
    from orchestrator.admin.portal import DECISION_LABELS, KIND_LABELS
    from orchestrator.cli.review import printable

    table = Table(title="单位提交与审核", title_justify="left")
    for column in ("#", "种类", "提交时间", "说明", "审核", "材料"):
        table.add_column(column, overflow="fold")
    for s in rows:
        kind = KIND_LABELS.get(s["kind"], s["kind"]) + (f"（至 {s['requested']}）" if s["requested"] else "")
        decision = "待审核" if s["decision"] is None else DECISION_LABELS.get(s["decision"], s["decision"])
        if s["decided_at"] and s["decision"] != "noted":
            decision += f" {s['decided_at'][:16].replace('T', ' ')} {printable(s['decided_by'])}"
            decision += f"：{printable(s['reason'])}" if s["reason"] else ""
        files = "\n".join(
            f"#{f['id']} {printable(f['name'])} {f['size']} B sha256 {f['sha256']}" for f in s["files"]
        )
        table.add_row(
            str(s["id"]),
            kind,
            s["submitted_at"][:16].replace("T", " "),
            Text(printable(s["note"])),
            Text(decision),
            Text(files or "—"),
        )
    console.print(table)


def _change(event: Mapping[str, Any]) -> str:
    before, after = event["before"] or {}, event["after"] or {}
    if "state" in before or "state" in after:
        text = f"{before.get('state', '')} → {after.get('state', '')}".strip()
        extra = {k: v for k, v in after.items() if k != "state" and v not in (None, "")}
        return text + (" " + ", ".join(f"{k}={v}" for k, v in extra.items()) if extra else "")
    if "to" in after:
        return "→ " + ", ".join(after["to"])
    return ", ".join(f"{k}={v}" for k, v in after.items())


# -- done / waive / reopen ----------------------------------------------------------------------


def _apply(change: Callable[[Session, Mapping[str, str]], operations.Change]) -> operations.Change:
    names = unit_names()
    with transaction(open_engine()) as session:
        result = change(session, names)
        obligation = session.get(Obligation, result.obligation_id)
        label = f"#{obligation.id} {obligation.task} {names.get(obligation.unit, obligation.unit)}"
    line = Text(f"{label}：{OBLIGATION_STATES[result.before]} → {OBLIGATION_STATES[result.after]}")
    if result.done_late is not None:
        line.append(
            "（逾期完成）" if result.done_late else "（按时完成）",
            style="red" if result.done_late else "green",
        )
    if result.withdrawn:
        line.append(f"；撤回 {result.withdrawn} 条待发通知")
    console.print(line)
    return result


def done(
    ref: str = typer.Argument(..., metavar="REF", help=REF_HELP),
    unit: str = typer.Option(None, "--unit", "-u", help=UNIT_HELP),
    occurrence: str = typer.Option(None, "--occurrence", help="The occurrence key of a recurring duty."),
    program: str = typer.Option(None, "--program", "-p", help=PROGRAM_HELP),
    evidence: str = typer.Option(
        None, "--evidence", "-e", help="What shows it is done (a document number, a link)."
    ),
) -> None:
    """Mark an obligation done (on time or late, by today's date); no more reminders or escalations.

    A pending obligation may be done early. A waived one must be reopened first.

    Example: [bold]duban done 12 --evidence "县公安局〔2026〕15号"[/]
    """
    ref_ = make_ref(ref, unit, occurrence, program)
    at = now()
    _apply(
        lambda s, names: operations.mark_done(
            s, ref_, evidence=evidence, now=at, actor=operator(), names=names
        )
    )


def waive(
    ref: str = typer.Argument(..., metavar="REF", help=REF_HELP),
    unit: str = typer.Option(None, "--unit", "-u", help=UNIT_HELP),
    occurrence: str = typer.Option(None, "--occurrence", help="The occurrence key of a recurring duty."),
    program: str = typer.Option(None, "--program", "-p", help=PROGRAM_HELP),
    reason: str = typer.Option(None, "--reason", "-r", help="Why the obligation does not apply (required)."),
) -> None:
    """Waive an obligation (it does not apply, or is handled elsewhere); a reason is required.

    Example: [bold]duban waive T05 --unit town-a --reason "本镇无此项执法职能"[/]
    """
    if reason is None or not reason.strip():
        raise BadInput('--reason: a waiver needs a reason, e.g. --reason "本镇无此项执法职能"')
    ref_ = make_ref(ref, unit, occurrence, program)
    at = now()
    _apply(lambda s, names: operations.waive(s, ref_, reason=reason, now=at, actor=operator(), names=names))


def reopen(
    ref: str = typer.Argument(..., metavar="REF", help=REF_HELP),
    unit: str = typer.Option(None, "--unit", "-u", help=UNIT_HELP),
    occurrence: str = typer.Option(None, "--occurrence", help="The occurrence key of a recurring duty."),
    program: str = typer.Option(None, "--program", "-p", help=PROGRAM_HELP),
    reason: str = typer.Option(None, "--reason", "-r", help="Why it is reopened (kept in the audit log)."),
) -> None:
    """Reopen a done or waived obligation: open or overdue again by today's date.

    Notices whose time passed while it was done or waived are not sent again; later ones are.

    Example: [bold]duban reopen 12 --reason "材料不全，退回补充"[/]
    """
    ref_ = make_ref(ref, unit, occurrence, program)
    at = now()
    _apply(lambda s, names: operations.reopen(s, ref_, now=at, actor=operator(), reason=reason, names=names))


# -- log ----------------------------------------------------------------------------------------


def log(
    since: str = typer.Option(None, "--since", help="From this day on (YYYY-MM-DD, local time)."),
    unit: str = typer.Option(None, "--unit", "-u", help=UNIT_HELP),
    kind: str = typer.Option(
        None, "--kind", "-k", help="Event kinds starting with this, e.g. obligation.done or mail."
    ),
    actor: str = typer.Option(None, "--actor", help="Only changes by this user (duban = the daemon)."),
    limit: int = typer.Option(None, "--limit", "-n", min=1, help="Only the latest N events."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event."),
) -> None:
    """The audit log: every change by the daemon or an operator — when, who, what, before, after.

    Example: [bold]duban log --kind obligation.done --since 2026-06-01[/]
    """
    names = unit_names()
    with Session(open_engine()) as session:
        tz = overview.display_tz(session)
        start = _local_midnight(since, "--since", tz) if since else None
        rows = overview.log_rows(
            session,
            tz,
            since=start,
            unit=known_unit(session, unit, names),
            kind=kind,
            actor=actor,
            limit=limit,
        )
    if as_json:
        print_json_lines(rows)
        return
    table = Table(caption=f"共 {len(rows)} 条", caption_justify="left")
    for column, options in (
        ("时间", {"no_wrap": True}),
        ("操作人", {"no_wrap": True}),
        ("事件", {"no_wrap": True}),
        ("单位", {"overflow": "fold"}),
        ("事项", {"overflow": "fold"}),
        ("变化", {"overflow": "fold"}),
        ("说明", {"overflow": "fold"}),
    ):
        table.add_column(column, **options)
    for e in rows:
        subject = f"#{e['obligation_id']}" if e["obligation_id"] else (e["subject"] or "")
        style = "bold" if e["actor"] != "duban" else None
        table.add_row(
            e["at"][:16].replace("T", " "),
            e["actor"],
            e["kind"],
            names.get(e["unit"], e["unit"] or ""),
            subject,
            _change(e),
            e["detail"] or "",
            style=style,
        )
    console.print(table)


# -- calendar export ----------------------------------------------------------------------------


def export(
    out: Path = typer.Option(None, "--out", "-o", help="The .ics file to write."),
    unit: str = typer.Option(None, "--unit", "-u", help=UNIT_HELP),
    program: str = typer.Option(None, "--program", "-p", help=PROGRAM_HELP),
) -> None:
    """Write an .ics file with one to-do (VTODO) per open obligation, with the same UIDs as the emails.

    Importing it again, or receiving an email about the same deadline, updates the to-do instead of
    adding a second one.

    Example: [bold]duban calendar export --unit county-police --out county-police.ics[/]
    """
    if out is None:
        raise BadInput("--out: give the .ics file to write, e.g. --out deadlines.ics")
    if not out.parent.is_dir():
        raise BadInput(f"--out: {out.parent} is not a directory")
    names = unit_names()
    at = now()
    with Session(open_engine()) as session:
        programs = find_programs(session, program)
        wanted = known_unit(session, unit, names)
        obligations = overview.open_obligations(session, wanted, [p.id for p in programs])
        bundles = {
            p.workflow: program_bundle(p) for p in programs if any(o.program_id == p.id for o in obligations)
        }
        data = overview.calendar_export(
            session, obligations, bundles, domain=state.settings.mail.domain, now=at
        )
    if data is None:
        who = f" for {wanted}" if wanted else ""
        raise NothingToExport(f"no open obligation{who}: nothing written to {out}")
    _write_atomically(out, data)
    console.print(f"{out}: {len(obligations)} 项待办（VTODO）")


class NothingToExport(DubanError):
    """``calendar export`` found no open obligation (exit 1: the action failed)."""

    exit_code = 1


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise DubanError(f"--out: cannot write {path}: {exc.strerror}") from None


# -- registration -------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    """Add the admin commands to ``app``; each --help ends with the exit codes."""
    if not app.info.epilog:
        app.info.epilog = EXIT_CODES
    for name, command in (
        ("status", status),
        ("tasks", tasks),
        ("show", show),
        ("done", done),
        ("waive", waive),
        ("reopen", reopen),
        ("log", log),
    ):
        app.command(name, epilog=EXIT_CODES)(command)
    calendar_app.command("export", epilog=EXIT_CODES)(export)
    app.add_typer(calendar_app, name="calendar")
