"""Shared pieces of the CLI: global options, consoles, JSON lines, date arguments."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from orchestrator.cli.terminal import SafeConsole, json_line
from orchestrator.engine.clock import clock_from_environment
from orchestrator.service.config import Settings, load_settings
from workflows.errors import DubanError

console = SafeConsole(highlight=False, soft_wrap=True)
err_console = SafeConsole(stderr=True, highlight=False)


@dataclass
class Context:
    config_path: Path | None = None
    debug: bool = False
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path, required=self.config_path is not None)
        return self._settings


state = Context()


class BadInput(DubanError):
    """A CLI argument that cannot be used (exit 2)."""


def parse_day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f'{what}: bad date "{text}", expected YYYY-MM-DD') from None


def now() -> datetime:
    """The CLI's clock, aware UTC: the system clock, or the test clock at ``$DUBAN_FAKE_NOW``."""
    return clock_from_environment(os.environ).now()


def parse_year(value: int | None, what: str = "--year") -> int:
    if value is None or not 1900 <= value <= 2200:
        raise BadInput(f"{what}: bad year {value}, expected YYYY")
    return value


def print_json_lines(rows: Iterable[dict[str, Any]]) -> None:
    out = sys.stdout
    for row in rows:
        out.write(json_line(row) + "\n")
    out.flush()


def warn(message: str) -> None:
    err_console.print(f"duban: warning: {message}", markup=False, highlight=False, soft_wrap=True)


def open_engine():
    """The configured database, checked: exists, is duban's, schema at head (else a one-line error)."""
    from orchestrator.store.db import open_database

    return open_database(state.settings.database.url)
