"""``duban simulate``: every email the plan would send, with a fake clock; nothing stored, nothing sent."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from notifications.labels import NOTICE_KINDS, label
from orchestrator.cli.common import console, parse_day, print_json_lines, state
from orchestrator.cli.planning import REGISTER_HELP, UNITS_HELP, bundle_for, parse_year_text
from orchestrator.engine.simulate import simulate as run_simulation
from orchestrator.service.runtime import make_renderer, send_policy


def simulate(
    workflow: str = typer.Argument(
        ..., help="A workflow id from the definition folders, or a definition file."
    ),
    units: Path = typer.Option(None, "--units", "-u", help=UNITS_HELP),
    year: str = typer.Option(None, "--year", "-y", help="The program year, YYYY."),
    from_: str = typer.Option(
        None, "--from", help="Start the fake clock on this day (YYYY-MM-DD; default 01-01)."
    ),
    until: str = typer.Option(
        None, "--until", help="Stop after this day (YYYY-MM-DD; default 01-31 of next year)."
    ),
    register: list[str] = typer.Option(None, "--register", "-r", help=REGISTER_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per email, in send order."),
) -> None:
    """Every email WORKFLOW would send in a year, in send order; runs the real engine on a fake clock.

    Example: [bold]duban simulate rule-of-law-pilot --units examples/units.example.toml --year 2026 --json[/]
    """
    year = parse_year_text(year)
    start = parse_day(from_, "--from") if from_ else None
    end = parse_day(until, "--until") if until else None
    if start and end and end < start:
        from orchestrator.cli.common import BadInput

        raise BadInput(f"--until {end} is before --from {start}")
    bundle = bundle_for(workflow, units, register)
    settings = state.settings
    bundles = {bundle.definition.workflow.id: bundle}
    tz = ZoneInfo(bundle.definition.workflow.timezone)
    emails = run_simulation(
        bundle,
        year,
        start=start,
        until=end,
        policy=send_policy(settings, bundles),
        renderer=make_renderer(settings, bundle.definition.workflow.timezone),
    )
    if as_json:
        print_json_lines(e.as_json(tz) for e in emails)
        return
    emails = list(emails)
    directory = bundle.units.directory
    table = Table(title=f"{bundle.definition.workflow.title} · {year} · {len(emails)} 封邮件")
    for column in ("发送时间", "收件单位", "主题", "内容"):
        table.add_column(column, overflow="fold")
    for email in emails:
        kinds: dict[str, int] = {}
        for item in email.items:
            kinds[item["kind"]] = kinds.get(item["kind"], 0) + 1
        content = "、".join(f"{label(NOTICE_KINDS, k)}{n}" for k, n in kinds.items())
        when = email.send_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        table.add_row(when, directory.name(email.to_unit), email.subject, content)
    console.print(table)
