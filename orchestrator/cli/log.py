"""``duban log``: the audit log, in the plan's local time."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.common import EXIT_CODES, console, current, hhmm, parse_day, print_json_lines
from orchestrator.cli.options import Unit, flag, json_flag

HIDDEN_KINDS = ("notice.skipped",)  # routine (a stale reminder not sent): shown with --all


def log(
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="YYYY-MM-DD", help="From this day on (the plan's local time)."),
    ] = None,
    unit: Unit = None,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            "-k",
            metavar="KIND",
            help="Event kinds starting with this, e.g. obligation.done or mail., or one kind by its word (完成).",
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option("--actor", metavar="USER", help="Only changes by this user (duban = the daemon)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, metavar="N", help="Only the latest N events.")
    ] = None,
    everything: bool = flag("--all", "Also the routine notice.skipped events (hidden by default)."),
    as_json: bool = json_flag("One JSON object per event."),
) -> None:
    """The audit log: every change by the daemon or an operator — when, who, what, before, after.

    Times are in the plan's time zone. Skipped notices (a reminder that was no longer true) are
    left out unless --all or --kind notice.skipped is given.

    Example: [bold]duban log --kind obligation.done --since 2026-06-01[/]
    """
    from datetime import datetime, time

    from sqlmodel import Session

    from orchestrator.admin import overview
    from orchestrator.admin.audit_text import kind_of_label
    from orchestrator.admin.refs import known_unit

    kind = (kind_of_label(kind) or kind) if kind else None
    ctx = current()
    names = ctx.unit_names()
    hidden = () if everything or (kind and kind.startswith("notice")) else HIDDEN_KINDS
    with Session(ctx.open_engine()) as session:
        tz = overview.display_tz(session)
        start = datetime.combine(parse_day(since, "--since"), time(0), tz) if since else None
        rows = overview.log_rows(
            session,
            tz,
            since=start,
            unit=known_unit(session, unit, names),
            kind=kind,
            actor=actor,
            limit=limit,
            hidden=hidden,
        )
    if as_json:
        print_json_lines(rows)
        return
    _print_log(rows, names, tz)


def _print_log(rows, names, tz) -> None:
    from rich.table import Table

    from orchestrator.admin.audit_text import change_text, detail_text, kind_text

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
        table.add_row(
            hhmm(e["at"]),
            e["actor"],
            kind_text(e["kind"]),
            names.get(e["unit"], e["unit"] or ""),
            subject,
            change_text(e, tz),
            detail_text(e),
            style="bold" if e["actor"] != "duban" else "",
        )
    console.print(table)


def register(app) -> None:
    app.command("log", epilog=EXIT_CODES)(log)
