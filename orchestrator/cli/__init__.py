"""The ``duban`` command line (Typer + Rich).

Exit codes: 0 ok; 1 the check or action failed; 2 bad usage or bad input. A user's mistake is
one line on stderr, never a traceback (``--debug`` shows one).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

try:  # typer >= 0.29 vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import ClickException

from orchestrator.cli import admin, daemon, db, imports, indicators, outbox, planning, review, web
from orchestrator.cli.common import Context, err_console, state
from orchestrator.service.logs import configure_cli
from workflows.errors import DefinitionError, DubanError

app = typer.Typer(
    name="duban",
    help="督办 duban — turns a work plan into deadlines and keeps every responsible unit on time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="config.toml (default: $DUBAN_CONFIG or ./config.toml).",
        show_default=False,
    ),
    debug: bool = typer.Option(False, "--debug", help="Show a traceback for errors."),
) -> None:
    state.config_path = config
    state._settings = None  # loaded afresh for every invocation (main() may run many in one process)
    state.debug = debug
    configure_cli(logging.DEBUG if debug else logging.WARNING)


def _register_commands() -> None:
    for group in (planning, db, daemon, admin, outbox, indicators, review, imports, web):
        group.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failed, 2 bad input)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
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
    return code if isinstance(code, int) else 0


__all__ = ["Context", "app", "main"]


def entry_point() -> None:
    sys.exit(main())
