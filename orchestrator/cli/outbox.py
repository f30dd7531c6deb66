"""``duban outbox [--state S] [--json]``, ``duban outbox show ID`` and ``duban outbox retry ID|--all-failed``.

Every email duban composed is an outbox row, kept forever: pending (waiting for its send
window or a retry), sending (claimed by a daemon), sent, or failed (refused for good, or out of
attempts). ``retry`` puts failed messages back to pending, due now, with an audit event.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from notifications.labels import OUTBOX_STATES, label
from orchestrator.cli.common import EXIT_CODES, BadInput, console, current, hhmm, now, print_json_lines
from orchestrator.cli.options import flag, json_flag

outbox_app = typer.Typer()
STYLE = {"failed": "red", "pending": "yellow", "sending": "yellow"}
MessageId = Annotated[
    str, typer.Argument(metavar="ID", help="The outbox message id (as `duban outbox` shows).")
]


def _message_id(text: str, command: str) -> int:
    digits = text.strip().lstrip("#")
    if not digits.isdigit():
        raise BadInput(f'{command}：邮件编号 "{text}" 有误，应为数字，如 7')
    return int(digits)


def listing(
    ctx: typer.Context,
    state_: Annotated[
        str | None,
        typer.Option("--state", "-s", metavar="STATE", help="pending, sending, sent or failed."),
    ] = None,
    as_json: bool = json_flag("One JSON object per message."),
) -> None:
    """The outbox: every email and group-robot message with its state, recipients, attempts and last error.

    Example: [bold]duban outbox --state failed[/]  ·  [bold]duban outbox show 7[/]  ·  [bold]duban outbox retry --all-failed[/]
    """
    if ctx.invoked_subcommand is not None:
        return
    from sqlmodel import Session

    from orchestrator.admin.mail import OUTBOX_STATES as OUTBOX_ORDER
    from orchestrator.admin.mail import outbox_counts, outbox_rows
    from orchestrator.admin.overview import display_tz

    if state_ is not None and state_ not in OUTBOX_ORDER:
        raise BadInput(f'--state：没有 "{state_}" 这种状态（可选 {"、".join(OUTBOX_ORDER)}）')
    run = current()
    names = run.unit_names()
    with Session(run.open_engine()) as session:
        rows = outbox_rows(session, names, display_tz(session), state_)
        counts = outbox_counts(session)
    if as_json:
        print_json_lines(rows)
        return
    _print(rows, counts, state_)


def _print(rows: list[dict[str, Any]], counts: dict[str, int], state: str | None) -> None:
    from rich.table import Table

    from orchestrator.admin.mail import OUTBOX_STATES as OUTBOX_ORDER

    robots = counts.get("channels", {}).get("robot")
    unit = "条" if robots else "封"  # emails are 封; with group-robot messages, messages are 条
    shown = f"显示 {len(rows)} {unit}" + (f"（{OUTBOX_STATES[state]}）" if state else "")
    summary = " · ".join(f"{OUTBOX_STATES[s]} {counts[s]}" for s in OUTBOX_ORDER)
    if robots:
        summary += "；其中群机器人消息 " + " · ".join(f"{OUTBOX_STATES[s]} {robots[s]}" for s in OUTBOX_ORDER)
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
            style=STYLE.get(row["state"], ""),
        )
    console.print(table)


def channel_label(channel: str) -> str:
    """``邮件`` or ``群机器人 NAME``."""
    return "邮件" if channel == "email" else f"群机器人 {channel.removeprefix('robot:')}"


def _remark(row: dict[str, Any]) -> str:
    from orchestrator.admin.audit_text import detail_text

    error = detail_text({"detail": row["last_error"]})  # (an old row's words: in today's)
    if row["state"] == "sent":
        to = ", ".join(row["to"]) or channel_label(row.get("channel", "email"))
        text = f"{hhmm(row['sent_at'])} → {to}"
        if row["refused"]:
            text += "；拒收：" + "; ".join(f"{a} {c}" for a, c in row["refused"].items())
        return text
    if row["state"] == "failed":
        return error
    if row["next_attempt_at"]:
        text = f"{hhmm(row['next_attempt_at'])} 起发送"
        return text + (f"；上次错误：{error}" if error else "")
    return ""


def show(
    message_id: MessageId,
    as_json: bool = json_flag("One JSON object: the message, its headers, attempts and file."),
) -> None:
    """One email: its headers, recipients, attempts, the last server reply and, in maildir mode, its .eml file.

    Example: [bold]duban outbox show 7[/]
    """
    from sqlmodel import Session

    from orchestrator.admin.mail import outbox_detail
    from orchestrator.admin.overview import display_tz

    number = _message_id(message_id, "outbox show")
    run = current()
    mail = run.settings.mail
    maildir = mail.maildir if mail.transport == "maildir" else None
    with Session(run.open_engine()) as session:
        found = outbox_detail(session, number, run.unit_names(), display_tz(session), maildir=maildir)
    if as_json:
        print_json_lines([found])
        return
    _print_detail(found)


def _print_detail(found: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    console.print(Text(f"#{found['id']} {found['subject']}", style="bold"))
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim", no_wrap=True)
    facts.add_column(overflow="fold")
    facts.add_row("状态", Text(label(OUTBOX_STATES, found["state"]), style=STYLE.get(found["state"], "")))
    facts.add_row("收件单位", f"{found['recipient_name']}（{found['recipient']}）")
    facts.add_row("收件地址", ", ".join(found["to"]))
    facts.add_row("发送日", found["send_date"])
    facts.add_row("尝试次数", str(found["attempts"]))
    if found["sent_at"]:
        facts.add_row("发送时间", hhmm(found["sent_at"]))
    if found["next_attempt_at"]:
        facts.add_row("下次发送", hhmm(found["next_attempt_at"]))
    for address, reply in found["refused"].items():
        facts.add_row("拒收", f"{address} {reply}")
    facts.add_row("服务器最后答复", found["last_reply"] or "—")
    facts.add_row("Message-ID", found["message_id"])
    if found["eml"]:
        facts.add_row(".eml 文件", found["eml"])
    console.print(facts)
    headers = Table(title="邮件头", title_justify="left", show_header=False)
    headers.add_column(style="dim", no_wrap=True)
    headers.add_column(overflow="fold")
    for name, value in found["headers"].items():
        headers.add_row(name, value)
    console.print(headers)
    if found["events"]:
        from orchestrator.admin.audit_text import kind_text

        history = Table(title="记录（审计日志）", title_justify="left")
        for column in ("时间", "操作人", "事件", "答复"):
            history.add_column(column, overflow="fold")
        for e in found["events"]:
            history.add_row(hhmm(e["at"]), e["actor"], kind_text(e["kind"]), e["reply"] or "")
        console.print(history)


def retry(
    message_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="The outbox message id (as `duban outbox` shows).")
    ] = None,
    all_failed: bool = flag("--all-failed", "Every failed message."),
) -> None:
    """Send failed messages again: back to pending, due now (the daemon sends them at its next run).

    Example: [bold]duban outbox retry 7[/]  ·  [bold]duban outbox retry --all-failed[/]
    """
    from rich.text import Text

    from orchestrator.admin import operations
    from orchestrator.store.audit import operator
    from orchestrator.store.db import transaction

    if (message_id is None) == (not all_failed):
        raise BadInput("outbox retry：请给出一个邮件编号，或用 --all-failed 重发全部发送失败的邮件")
    target: int | str = operations.ALL_FAILED
    if message_id is not None:
        target = _message_id(message_id, "outbox retry")
    with transaction(current().open_engine()) as session:
        ids = operations.retry_outbox(session, target, now=now(), actor=operator())
    if not ids:
        console.print("没有发送失败的邮件，无需重发")
        return
    console.print(Text(f"{len(ids)} 封邮件重新排队发送：" + ", ".join(f"#{i}" for i in ids)))


def register(app: typer.Typer) -> None:
    outbox_app.callback(invoke_without_command=True, epilog=EXIT_CODES)(listing)
    outbox_app.command("show", epilog=EXIT_CODES)(show)
    outbox_app.command("retry", epilog=EXIT_CODES)(retry)
    app.add_typer(outbox_app, name="outbox")
