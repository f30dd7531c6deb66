"""``duban run``: the daemon in the foreground (what systemd starts)."""

from __future__ import annotations

import logging
import os

import typer

from orchestrator.cli.common import current
from orchestrator.cli.options import flag

EXIT_CODES = (
    "Exit codes: 0 ok (a clean stop on SIGTERM) · 1 the action or check failed (another daemon holds the "
    "SQLite database, the PostgreSQL lead was lost, a --once round failed) · 2 bad usage or bad input "
    "(an out-of-date schema, a broken config; one line on stderr naming what is wrong; --debug shows a traceback)."
)


def run(
    once: bool = flag("--once", "One tick and one outbox run, then exit (for cron and tests)."),
) -> None:
    """Run the daemon in the foreground until SIGTERM; SIGHUP reloads config, definitions and units.

    Logs go to stdout: JSON lines with journald priorities, or key=value on a terminal; both in the
    plan's local time with its offset (as `duban web`'s). At start it says where emails go, the send window, the next send time and
    how many notices wait for it.
    Under systemd ([bold]Type=notify[/]) it reports READY, STATUS, WATCHDOG, RELOADING and STOPPING.

    Example: [bold]duban run --once[/] · under systemd: [bold]duban --config /etc/duban/config.toml run[/]
    """
    from orchestrator.engine.clock import clock_from_environment
    from orchestrator.service.daemon import run as run_daemon
    from orchestrator.service.logs import configure_daemon
    from orchestrator.service.runtime import plan_timezone, secrets_of

    ctx = current()
    settings = ctx.settings
    clock = clock_from_environment(os.environ)
    redactor = configure_daemon(
        logging.DEBUG if ctx.debug else logging.INFO,
        secrets=secrets_of(settings),
        timezone=plan_timezone(settings),
    )
    code = run_daemon(settings, clock=clock, once=once, redactor=redactor)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("run", epilog=EXIT_CODES)(run)
