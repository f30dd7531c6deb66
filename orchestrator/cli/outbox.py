"""``duban outbox [--state S] [--json]`` and ``duban outbox retry ID|--all-failed``.

Every email duban composed is an outbox row, kept forever: pending (waiting for its send
window or a retry), sending (claimed by a daemon), sent, or failed (refused for good, or out of
attempts). ``retry`` puts failed messages back to pending, due now, with an audit event.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table
from rich.text import Text
from sqlmodel import Session

from notifications.labels import OUTBOX_STATES, label
from orchestrator.admin import operations, overview
from orchestrator.cli.admin import EXIT_CODES, unit_names
from orchestrator.cli.common import BadInput, console, now, open_engine, print_json_lines
from orchestrator.store.audit import operator
from orchestrator.store.db import transaction
from orchestrator.store.states import OutboxState

outbox_app = typer.Typer()
STYLE = {OutboxState.FAILED: "red", OutboxState.PENDING: "yellow", OutboxState.SENDING: "yellow"}


def listing(
    ctx: typer.Context,
    state_: str = typer.Option(None, "--state", "-s", help="pending, sending, sent or failed."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per message."),
) -> None:
    """The outbox: every email and group-robot message with its state, recipients, attempts and last error.

    Example: [bold]duban outbox --state failed[/]  ·  [bold]duban outbox retry --all-failed[/]
    """
    if ctx.invoked_subcommand is not None:
        return
    if state_ is not None and state_ not in overview.OUTBOX_STATES:
        raise BadInput(f'--state: unknown state "{state_}" (one of {", ".join(overview.OUTBOX_STATES)})')
    names = unit_names()
    with Session(open_engine()) as session:
        tz = overview.display_tz(session)
        rows = overview.outbox_rows(session, names, tz, state_)
        counts = overview.outbox_counts(session)
    if as_json:
        print_json_lines(rows)
        return
    _print(rows, counts, state_)


def _print(rows: list[dict[str, Any]], counts: dict[str, int], state: str | None) -> None:
    robots = counts.get("channels", {}).get("robot")
    unit = "条" if robots else "封"  # emails are 封; with group-robot messages, messages are 条
    shown = f"显示 {len(rows)} {unit}" + (f"（{OUTBOX_STATES[state]}）" if state else "")
    summary = " · ".join(f"{OUTBOX_STATES[s]} {counts[s]}" for s in overview.OUTBOX_STATES)
    if robots:
        summary += "；其中群机器人消息 " + " · ".join(
            f"{OUTBOX_STATES[s]} {robots[s]}" for s in overview.OUTBOX_STATES
        )
    table = Table(caption=f"{shown}；全部 {counts['total']} {unit}：{summary}", caption_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("状态", no_wrap=True)
    table.add_column("渠道", overflow="fold", no_wrap=False)
    table.add_column("收件单位", overflow="fold", ratio=2)
    table.add_column("主题", overflow="fold", ratio=3)
    table.add_column("日期", no_wrap=True)
    table.add_column("次数", justify="right", no_wrap=True)
    table.add_column("说明", overflow="fold", ratio=3)
    for row in rows:
        table.add_row(
            str(row["id"]),
            label(OUTBOX_STATES, row["state"]),
            channel_label(row.get("channel", "email")),
            row["recipient_name"],
            row["subject"],
            row["send_date"],
            str(row["attempts"]),
            _remark(row),
            style=STYLE.get(row["state"]),
        )
    console.print(table)


def channel_label(channel: str) -> str:
    """``邮件`` or ``群机器人 NAME``."""
    return "邮件" if channel == "email" else f"群机器人 {channel.removeprefix('robot:')}"


def _remark(row: dict[str, Any]) -> str:
    if row["state"] == OutboxState.SENT:
        to = ", ".join(row["to"]) or channel_label(row.get("channel", "email"))
        text = f"{(row['sent_at'] or '')[:16].replace('T', ' ')} → {to}"
        if row["refused"]:
            text += "；拒收：" + "; ".join(f"{a} {c}" for a, c in row["refused"].items())
        return text
    if row["state"] == OutboxState.FAILED:
        return row["last_error"] or ""
    if row["next_attempt_at"]:
        text = f"{row['next_attempt_at'][:16].replace('T', ' ')} 起发送"
        return text + (f"；上次错误：{row['last_error']}" if row["last_error"] else "")
    return ""


def retry(
    message_id: str = typer.Argument(
        None, metavar="ID", help="The outbox message id (as `duban outbox` shows)."
    ),
    all_failed: bool = typer.Option(False, "--all-failed", help="Every failed message."),
) -> None:
    """Send failed messages again: back to pending, due now (the daemon sends them at its next run).

    Example: [bold]duban outbox retry 7[/]  ·  [bold]duban outbox retry --all-failed[/]
    """
    if (message_id is None) == (not all_failed):
        raise BadInput("outbox retry: give one message ID or --all-failed")
    target: int | str = operations.ALL_FAILED
    if message_id is not None:
        digits = message_id.strip().lstrip("#")
        if not digits.isdigit():
            raise BadInput(f'outbox retry: bad message ID "{message_id}", expected a number such as 7')
        target = int(digits)
    with transaction(open_engine()) as session:
        ids = operations.retry_outbox(session, target, now=now(), actor=operator())
    if not ids:
        console.print("no failed message: nothing to retry")
        return
    console.print(Text(f"{len(ids)} 封邮件重新排队发送：" + ", ".join(f"#{i}" for i in ids)))


def register(app: typer.Typer) -> None:
    outbox_app.callback(invoke_without_command=True, epilog=EXIT_CODES)(listing)
    outbox_app.command("retry", epilog=EXIT_CODES)(retry)
    app.add_typer(outbox_app, name="outbox")
