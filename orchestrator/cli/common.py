"""Shared pieces of the CLI: the invocation's context, consoles, JSON lines, argument parsing.

Imports stay light (typer, rich's console): ``duban --help`` and ``duban status`` must start in
well under half a second, so everything a command does not always need is imported where it is used.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:  # typer >= 0.29 vendors click
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - older typer on top of click
    from click import get_current_context

from orchestrator.cli.terminal import SafeConsole, json_line
from workflows.errors import DubanError

if TYPE_CHECKING:
    from orchestrator.service.config import Settings
    from workflows.catalog import Bundle

console = SafeConsole(highlight=False, soft_wrap=True)
err_console = SafeConsole(stderr=True, highlight=False)

EXIT_CODES = (
    "Exit codes: 0 ok · 1 the action or check failed · 2 bad usage or bad input "
    "(one line on stderr naming what is wrong; --debug shows a traceback)."
)


@dataclass
class Context:
    """One invocation of ``duban``: the global options and what is loaded once for it.

    It is Typer's context object (``ctx.obj``): the global callback makes a new one for every
    invocation, and ``current()`` finds it from inside a command.
    """

    config_path: Path | None = None
    debug: bool = False
    _settings: Settings | None = field(default=None, repr=False)
    _names: dict[str, str] | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from orchestrator.service.config import load_settings

            self._settings = load_settings(self.config_path, required=self.config_path is not None)
        return self._settings

    def unit_names(self) -> dict[str, str]:
        """Unit id → name from the configured units file; ids stand in (with a warning) if it cannot be read."""
        if self._names is None:
            from orchestrator.admin.refs import configured_unit_names

            self._names = configured_unit_names(self.settings.definitions.units, on_problem=warn)
        return self._names

    def program_bundle(self, program) -> Bundle:
        """The bundle a program was started from, with the configured units and registers."""
        from orchestrator.service.runtime import program_bundle

        return program_bundle(self.settings, program, on_assumed=lambda year, message: warn(message))

    def open_engine(self):
        """The configured database, checked: exists, is duban's, schema at head (else a one-line error)."""
        from orchestrator.cli.failures import CLI_BUSY_SECONDS
        from orchestrator.store.db import open_database

        return open_database(self.settings.database.url, busy_seconds=CLI_BUSY_SECONDS)


class _ConfigureStructlogOnImport:
    """A ``sys.meta_path`` finder that configures structlog for the CLI right after it is imported.

    Importing structlog costs a fifth of a second (it imports its dev renderer and Rich's
    tracebacks); ``status`` or ``tasks`` never log, and only the modules that do log import it.
    So the CLI's logging is set up when — and only if — structlog is first imported.
    """

    def __init__(self, configure) -> None:
        self.configure = configure

    def find_spec(self, name, path=None, target=None):
        if name != "structlog":
            return None
        import importlib.machinery

        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader, configure = spec.loader, self.configure

        class Loader(type(loader)):  # type: ignore[misc]
            def exec_module(self, module) -> None:
                loader.exec_module(module)
                configure()

        spec.loader = Loader.__new__(Loader)
        spec.loader.__dict__.update(loader.__dict__)
        return spec


def configure_logging(level: int) -> None:
    """Warnings (or, with ``--debug``, everything) of the lower layers as key=value lines on stderr."""

    def configure() -> None:
        logs = sys.modules.get("orchestrator.service.logs")
        if logs is not None and not hasattr(logs, "configure_cli"):
            return  # service.logs itself is importing structlog: its importer (run, web) configures logging
        from orchestrator.service.logs import configure_cli

        configure_cli(level, timezone=_plan_timezone)

    for finder in [f for f in sys.meta_path if isinstance(f, _ConfigureStructlogOnImport)]:
        sys.meta_path.remove(finder)
    if "structlog" in sys.modules:
        configure()
    else:
        sys.meta_path.insert(0, _ConfigureStructlogOnImport(configure))


def _plan_timezone() -> str:
    """The zone of the CLI's log lines: the configured plan's (as the daemon's and the portal's)."""
    from orchestrator.service.runtime import plan_timezone

    return plan_timezone(current().settings)


def current() -> Context:
    """The context of the running invocation (``ctx.obj`` of the root command)."""
    ctx = get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    if not isinstance(obj, Context):  # a command called outside ``duban`` (a test): the defaults
        obj = Context()
        if ctx is not None:
            ctx.find_root().obj = obj
    return obj


class BadInput(DubanError):
    """A CLI argument that cannot be used (exit 2)."""


def parse_day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f'{what}：日期 "{text}" 有误，应为 YYYY-MM-DD，如 2026-06-10') from None


def now() -> datetime:
    """The CLI's clock, aware UTC: the system clock, or the test clock at ``$DUBAN_FAKE_NOW``."""
    from orchestrator.engine.clock import clock_from_environment

    return clock_from_environment(os.environ).now()


def parse_year(value: int | None, what: str = "--year") -> int:
    if value is None or not 1900 <= value <= 2200:
        raise BadInput(f"{what}：年份 {value} 有误，应为四位数年份，如 2026")
    return value


def print_json_lines(rows: Iterable[dict[str, Any]]) -> None:
    out = sys.stdout
    for row in rows:
        out.write(json_line(row) + "\n")
    out.flush()


def warn(message: str) -> None:
    err_console.print(f"duban: 警告：{message}", markup=False, highlight=False, soft_wrap=True)


def open_engine():
    """The configured database of the running invocation (see ``Context.open_engine``)."""
    return current().open_engine()


def unit_names() -> dict[str, str]:
    return current().unit_names()


def hhmm(value: str | datetime | None, tz: tzinfo | None = None, *, seconds: bool = False) -> str:
    """A moment as a person reads it, ``2026-06-10 09:00`` (``engine.clock.wall_time``), from a
    row's ISO 8601 time or a datetime: on the wall clock of ``tz`` (the plan's zone) or, without
    it, of the value's own offset (the admin rows carry the plan's). Empty for None."""
    from orchestrator.engine.clock import wall_time

    if not value:
        return ""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return wall_time(at, tz, seconds=seconds)
