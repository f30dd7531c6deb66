"""``duban db upgrade`` and ``duban start``."""

from __future__ import annotations

import typer

from orchestrator.cli.common import EXIT_CODES, console, current, now, parse_day, warn
from orchestrator.cli.options import Registers, Units, Workflow, Year
from orchestrator.cli.planning import parse_registers, parse_year_text

db_app = typer.Typer(help="The database schema (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade", epilog=EXIT_CODES)
def db_upgrade() -> None:
    """Create the database or bring its schema to this version of duban.

    Example: [bold]duban --config /etc/duban/config.toml db upgrade[/]
    """
    from orchestrator.store.db import upgrade_database

    before, after = upgrade_database(current().settings.database.url)
    if before == after:
        console.print(f"database schema is up to date (revision {after})")
    else:
        console.print(f"database schema upgraded: {before or 'empty'} → {after}")


def start(
    workflow: Workflow,
    year: Year = None,
    units: Units = None,
    register: Registers = None,
    notify_from: str = typer.Option(
        None,
        "--notify-from",
        metavar="YYYY-MM-DD",
        help="No unit is told of a date before this day; default: when first started.",
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
    from orchestrator.engine.programs import start_program
    from orchestrator.service.runtime import declared_workflows, load_bundle_for
    from orchestrator.store.audit import operator
    from orchestrator.store.db import transaction

    program_year = parse_year_text(year)
    run = current()
    settings = run.settings
    engine = run.open_engine()
    since = parse_day(notify_from, "--notify-from") if notify_from is not None else None
    bundle = load_bundle_for(
        settings, workflow, units=units, registers=parse_registers(register), on_assumed=lambda y, m: warn(m)
    )
    with transaction(engine) as session:
        report = start_program(
            session,
            bundle,
            program_year,
            now(),
            horizon_days=settings.daemon.horizon_days,
            actor=operator(),
            notify_from=since,
        )
    verb = "started" if report.created else "reconciled"
    workflow_id = bundle.definition.workflow.id
    console.print(
        f"{workflow_id} {program_year} {verb} (program #{report.program_id}): "
        f"{report.added} added, {report.moved} moved, {report.cancelled} cancelled, {report.unchanged} unchanged"
    )
    if workflow_id not in declared_workflows(settings):
        warn(
            f"{workflow_id} is not in [[programs]] of the config: the daemon does not run it (no timer fires, "
            f'nothing is sent) until it is — add [[programs]] workflow = "{workflow_id}"'
        )


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.command("start", epilog=EXIT_CODES)(start)
