"""``duban db upgrade`` and ``duban start``."""

from __future__ import annotations

from pathlib import Path

import typer

from orchestrator.cli.common import console, now, open_engine, parse_day, state, warn
from orchestrator.cli.planning import REGISTER_HELP, UNITS_HELP, parse_registers, parse_year_text
from orchestrator.engine.programs import start_program
from orchestrator.service.runtime import load_bundle_for
from orchestrator.store.audit import operator
from orchestrator.store.db import transaction, upgrade_database

db_app = typer.Typer(help="The database schema (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database or bring its schema to this version of duban.

    Example: [bold]duban --config /etc/duban/config.toml db upgrade[/]
    """
    before, after = upgrade_database(state.settings.database.url)
    if before == after:
        console.print(f"database schema is up to date (revision {after})")
    else:
        console.print(f"database schema upgraded: {before or 'empty'} → {after}")


def start(
    workflow: str = typer.Argument(
        ..., help="A workflow id from the definition folders, or a definition file."
    ),
    year: str = typer.Option(None, "--year", "-y", help="The program year, YYYY."),
    units: Path = typer.Option(None, "--units", "-u", help=UNITS_HELP),
    register: list[str] = typer.Option(None, "--register", "-r", help=REGISTER_HELP),
    notify_from: str = typer.Option(
        None,
        "--notify-from",
        help="No unit is told of a date before this day (YYYY-MM-DD); default: when first started.",
        show_default=False,
    ),
) -> None:
    """Start a program (a plan for a year): its phases, obligations and timers. Idempotent.

    Obligations whose dates lie before --notify-from (default: now, the first start) are created in
    their true state, but no unit is told of them; the office gets one summary with the list.

    Run again after a definition, units or register change to reconcile: new obligations are added,
    removed ones cancelled, moved dates moved — all in the audit log.

    Example: [bold]duban start rule-of-law-pilot --year 2026[/]
    """
    year = parse_year_text(year)
    since = parse_day(notify_from, "--notify-from") if notify_from is not None else None
    settings = state.settings
    engine = open_engine()
    bundle = load_bundle_for(
        settings, workflow, units=units, registers=parse_registers(register), on_assumed=lambda y, m: warn(m)
    )
    with transaction(engine) as session:
        report = start_program(
            session,
            bundle,
            year,
            now(),
            horizon_days=settings.daemon.horizon_days,
            actor=operator(),
            notify_from=since,
        )
    verb = "started" if report.created else "reconciled"
    console.print(
        f"{bundle.definition.workflow.id} {year} {verb} (program #{report.program_id}): "
        f"{report.added} added, {report.moved} moved, {report.cancelled} cancelled, {report.unchanged} unchanged"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.command("start")(start)
