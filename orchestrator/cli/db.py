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
        console.print(f"数据库结构已是最新（版本 {after}）")
    else:
        console.print(f"数据库结构已升级：{before or '空'} → {after}")


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
    verb = "已启动" if report.created else "已按现有文件核对"
    workflow = bundle.definition.workflow
    console.print(
        f"{verb}方案「{workflow.title}」{program_year} 年度（{workflow.id}，#{report.program_id}）："
        f"新增 {report.added} 项，改期 {report.moved} 项，取消 {report.cancelled} 项，未变 {report.unchanged} 项",
        markup=False,
    )
    if workflow.id not in declared_workflows(settings):
        warn(
            f"方案 {workflow.id} 不在配置文件的 [[programs]] 中：守护进程不处理它（定时器不触发，不发任何通知），"
            f'直到在 [[programs]] 中加入 workflow = "{workflow.id}"'
        )


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.command("start", epilog=EXIT_CODES)(start)
