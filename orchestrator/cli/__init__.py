"""The ``duban`` command line (Typer + Rich).

Exit codes: 0 ok; 1 the check or action failed; 2 bad usage or bad input. A user's mistake is
one line on stderr, never a traceback (``--debug`` shows one).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

try:  # typer >= 0.29 vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import ClickException

from orchestrator.cli.common import Context, configure_logging, err_console
from workflows.errors import DefinitionError, DubanError

COMMAND_GROUPS = ("planning", "check", "simulate", "db", "daemon", "status", "tasks", "changes", "log", "calendar", "review",
                  "outbox", "indicators", "scorecard", "imports", "web", "draft")  # fmt: skip

app = typer.Typer(
    name="duban",
    help="督办 duban — turns a work plan into deadlines and keeps every responsible unit on time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("duban")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"duban {version()}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        metavar="FILE",
        help="config.toml (default: $DUBAN_CONFIG or ./config.toml).",
        show_default=False,
    ),
    debug: bool = typer.Option(False, "--debug", help="Show a traceback for errors.", metavar=""),
    _version: bool = typer.Option(
        False,
        "--version",
        help="Show the version and exit.",
        metavar="",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    # A new context for every invocation (main() may run many in one process): settings are loaded once, lazily.
    ctx.obj = Context(config_path=config, debug=debug)
    _invocation[0] = ctx.obj  # (for the error line after the command's context is gone)
    configure_logging(10 if debug else 30)  # logging.DEBUG / WARNING


_invocation: list[Context | None] = [None]


def _help_is_a_flag() -> None:
    """Show ``-h, --help`` as the flag it is, like every other flag (``--json``), not ``<bool>``."""
    from typer._click.core import Command

    original = Command.get_help_option

    def get_help_option(self, ctx):
        option = original(self, ctx)
        if option is not None:
            option.metavar = ""
        return option

    Command.get_help_option = get_help_option


def _register_commands() -> None:
    """Every command group's module is light to import: each command imports what it uses."""
    for name in COMMAND_GROUPS:
        module = __import__(f"orchestrator.cli.{name}", fromlist=["register"])
        module.register(app)


_register_commands()
_help_is_a_flag()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failed, 2 bad input)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    _invocation[0] = None
    try:
        code = app(args=args, prog_name="duban", standalone_mode=False)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except ClickException as exc:  # a usage error: one line, not Click's box
        if debug:
            raise
        if type(exc).__name__ != "NoArgsIsHelpError":  # (that one has printed the help already)
            command = getattr(getattr(exc, "ctx", None), "command_path", None) or "duban"
            err_console.print(
                f"{command}: {exc.format_message()} (see `{command} --help`)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        return exc.exit_code
    except typer.Abort:
        return 130
    except DubanError as exc:
        if debug:
            raise
        # located problems are printed as compilers do, `FILE:LINE: message`; anything else as `duban: …`
        prefix = "" if isinstance(exc, DefinitionError) else "duban: "
        for line in str(exc).splitlines() or [type(exc).__name__]:
            err_console.print(f"{prefix}{line}", markup=False, highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the database's own failures (read-only, busy, unreachable): one line
        from orchestrator.cli.failures import database_problem

        line = None if debug else database_problem(exc, _database_named())
        if line is None:
            raise
        err_console.print(f"duban: {line}", markup=False, highlight=False, soft_wrap=True)
        return 1
    return code if isinstance(code, int) else 0


def _database_named() -> str | None:
    """The configured database as a line may name it (a SQLite path, or the URL without password)."""
    try:
        from orchestrator.store.db import sqlite_path

        context = _invocation[0]
        if context is None:
            return None
        url = context.settings.database.url
        path = sqlite_path(url)
        if path is not None:
            return str(path)
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return None


__all__ = ["Context", "app", "main"]


def entry_point() -> None:
    sys.exit(main())
