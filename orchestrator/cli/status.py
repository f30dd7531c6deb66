"""``duban status``: programs and their phases, obligations by state, the outbox, the daemons."""

from __future__ import annotations

from typing import Any

from notifications.labels import DAEMON_ROLES, OBLIGATION_STATES, OUTBOX_STATES, PHASE_STATES, label
from orchestrator.cli.common import EXIT_CODES, console, current, hhmm, now, print_json_lines
from orchestrator.cli.options import json_flag


def status(as_json: bool = json_flag("One JSON object with everything shown.")) -> None:
    """Programs and their phases, obligations by state, the outbox, whether the daemon is alive.

    Warns when a running program has dates in a year the working-day calendar has no official
    schedule for, names each unit of the units file that owes nothing in any running program, and
    in December says what a year = "current" program repeats when it rolls over on 1 January.

    Example: [bold]duban status[/]
    """
    from sqlmodel import Session

    from orchestrator.admin.status import status_report
    from orchestrator.service.calendars import program_calendar
    from orchestrator.service.rollover import rollover_warnings
    from orchestrator.service.runtime import declared_workflows
    from orchestrator.service.unit_status import idle_unit_warnings

    ctx = current()
    at = now()
    with Session(ctx.open_engine()) as session:
        report = status_report(
            session,
            at,
            tick_interval=ctx.settings.daemon.tick_interval,
            calendar_of=lambda program: program_calendar(ctx.settings, program),
            unit_warnings=lambda programs: idle_unit_warnings(ctx.settings, programs),
            send_window=ctx.settings.mail.window,
            declared=declared_workflows(ctx.settings),
            config_warnings=rollover_warnings(ctx.settings, at),
        )
    if as_json:
        print_json_lines([report])
        return
    _print_status(report)


def state_summary(counts: dict[str, int]) -> str:
    from orchestrator.admin.overview import STATES

    parts = [f"{OBLIGATION_STATES[s]} {counts[s]}" for s in STATES if counts.get(s)]
    if counts.get("done_late"):
        parts.append(f"其中逾期完成 {counts['done_late']}")
    return f"共 {counts['total']} 项" + ("：" + " · ".join(parts) if parts else "")


def not_run_line(workflow: str) -> str:
    return (
        f"未运行：方案 {workflow} 不在配置文件的 [[programs]] 中，守护进程不处理它（定时器不触发，不发任何通知）；"
        f'在 [[programs]] 中加入 workflow = "{workflow}" 并重新加载（SIGHUP）后按停机后的规则补处理'
    )


def _stuck_line(row: dict[str, Any]) -> str:
    """``群机器人 wc1：1 条消息自 09:31 起发送中仍无结果；最近一次发出 09:02``."""
    channel = row["channel"]
    name = "邮件" if channel == "email" else f"群机器人 {channel.removeprefix('robot:')}"
    parts = []
    if row["sending"]:
        parts.append(f"{row['sending']} 条消息自 {_seconds(row['sending_since'])} 起发送中，仍无结果")
    if row["due"]:
        parts.append(f"{row['due']} 条消息自 {_seconds(row['due_since'])} 起已到期，仍未发出")
    last = _seconds(row["last_sent_at"]) if row["last_sent_at"] else "从未"
    return f"{name}：{'；'.join(parts)}（最近一次发出：{last}；见 duban log）"


def _print_status(report: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from orchestrator.admin.mail import OUTBOX_STATES as OUTBOX_ORDER

    console.print(f"[bold]督办 duban[/] · {hhmm(report['now'])}")
    if not report["programs"]:
        console.print("尚未启动任何方案：运行 [bold]duban start 方案编号 --year 年份[/]")
    for program in report["programs"]:
        counts = program["obligations"]
        table = Table(
            title=f"{program['title']} · {program['year']}（{program['workflow']}，#{program['id']}）"
        )
        for column in ("阶段", "起止", "状态"):
            table.add_column(column)
        for phase in program["phases"]:
            style = "bold" if phase["state"] == "active" else ("dim" if phase["state"] != "pending" else "")
            table.add_row(
                Text(phase["name"], style=style),
                f"{phase['start']} — {phase['end']}",
                Text(label(PHASE_STATES, phase["state"]), style=style),
            )
        console.print(table)
        line = Text(f"事项：{state_summary(counts)}")
        if counts["overdue"]:
            line.append(
                f"；{program['late_units']} 个单位有逾期事项（duban tasks --state overdue）", style="red"
            )
        console.print(line)
        if program["run"] is False and program["state"] == "running":
            console.print(Text(not_run_line(program["workflow"]), style="red"))
    outbox = report["outbox"]
    channels = outbox.get("channels", {})
    email = channels.get("email", outbox)
    line = Text("邮件：" + " · ".join(f"{OUTBOX_STATES[s]} {email[s]}" for s in OUTBOX_ORDER))
    if email["failed"]:
        line.append("（duban outbox --state failed）", style="red")
    if outbox["refused_recipients"]:
        line.append(f"；{outbox['refused_recipients']} 个收件地址被拒收", style="red")
    console.print(line)
    pending = report["waiting"]
    line = Text(f"待发：{pending['notices']} 条通知尚未归入邮件，{pending['messages']} 封邮件等待发送")
    if pending["next_send_at"]:
        line.append(f"；下次发送 {hhmm(pending['next_send_at'])}", style="bold")
    console.print(line)
    for stuck in report.get("stuck", []):
        console.print(Text(f"卡住：{_stuck_line(stuck)}", style="red"))
    if "robot" in channels:  # the group robots' messages: their own deliveries
        robots = channels["robot"]
        line = Text("群机器人：" + " · ".join(f"{OUTBOX_STATES[s]} {robots[s]}" for s in OUTBOX_ORDER))
        if robots["failed"]:
            line.append("（duban outbox --state failed）", style="red")
        console.print(line)
    if not report["daemons"]:
        console.print(Text("守护进程：从未在此数据库上运行（duban run）", style="red"))
    for daemon in report["daemons"]:
        alive = Text("运行中", style="green") if daemon["alive"] else Text("未运行", style="red")
        last_tick = _seconds(daemon["last_tick_at"]) if daemon["last_tick_at"] else "从未"
        console.print(
            Text("守护进程：")
            .append(alive)
            .append(
                f" · {daemon['node']}（{daemon['host']} pid {daemon['pid']}，{label(DAEMON_ROLES, daemon['role'])}）"
                f" · 最近一次定时处理 {last_tick} · 最近心跳 {_seconds(daemon['last_seen_at'])}"
            )
        )
    for message in report["warnings"]:
        console.print(Text(f"警告：{message}", style="yellow"))
    fault = report.get("evidence_fault")
    if fault:
        console.print(
            Text(
                f"故障：证据材料文件夹 {fault['folder']} 无法写入（{fault['error']}，最近一次 "
                f"{_seconds(fault['at'])}）：单位上传的材料无法保存，请检查该文件夹的权限和磁盘空间",
                style="red",
            )
        )


def _seconds(value: str) -> str:
    return hhmm(value, seconds=True)


def register(app) -> None:
    app.command("status", epilog=EXIT_CODES)(status)
