"""A started program's working-day calendar, without loading its whole definition.

``duban status`` checks every running program's years against the calendar's official data; it
needs only the calendar's name (``[workflow] calendar``) and the configured override file, so it
reads just that (a full bundle load costs more than the rest of ``status``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

from orchestrator.service.config import Settings
from workflows.calendar import WorkdayCalendar, load_overrides, make_calendar

DEFAULT_CALENDAR = "cn-workdays"


def program_calendar(
    settings: Settings, program, on_assumed: Callable[[int, str], None] | None = None
) -> WorkdayCalendar:
    """The calendar ``program`` is planned on: its recorded definition file's ``[workflow] calendar``
    with the configured override file; the full bundle's when that file cannot be read."""
    path = Path(program.definition_path)
    try:
        with path.open("rb") as file:
            name = tomllib.load(file).get("workflow", {}).get("calendar", DEFAULT_CALENDAR)
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        from orchestrator.service.runtime import program_bundle

        return program_bundle(settings, program, on_assumed=on_assumed).calendar
    overrides = settings.definitions.calendar_overrides
    return make_calendar(name, load_overrides(overrides) if overrides else None, on_assumed)
