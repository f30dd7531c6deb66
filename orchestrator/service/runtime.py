"""What the daemon, ``start`` and ``simulate`` share: bundles, the send policy and the renderer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from notifications.model import Signature
from notifications.render import Renderer
from orchestrator.engine.tick import SendPolicy
from orchestrator.engine.window import local_day
from orchestrator.service.config import ProgramSettings, Settings
from workflows.calendar import make_calendar
from workflows.catalog import Bundle, definition_folders, find_definition, load_bundle
from workflows.errors import DefinitionError, DubanError, NotFound, Problem


def load_bundle_for(
    settings: Settings,
    workflow: str,
    *,
    units: Path | None = None,
    registers: Mapping[str, Path] | None = None,
    on_assumed: Callable[[int, str], None] | None = None,
) -> Bundle:
    path = find_definition(workflow, definition_folders(settings.definitions.paths))
    units = units or settings.definitions.units
    if units is None:
        raise DubanError("no units file: give --units or set [definitions] units in config")
    return load_bundle(
        path,
        units,
        settings.registers if registers is None else registers,
        overrides=settings.definitions.calendar_overrides,
        on_assumed=on_assumed,
    )


def program_bundle(
    settings: Settings, program, *, on_assumed: Callable[[int, str], None] | None = None
) -> Bundle:
    """The bundle a stored program was started from: its workflow id, else the definition file it
    recorded; with the configured units and registers."""
    try:
        return load_bundle_for(settings, program.workflow, on_assumed=on_assumed)
    except NotFound:
        return load_bundle_for(settings, program.definition_path, on_assumed=on_assumed)


def program_year(entry: ProgramSettings, today: date) -> int:
    return today.year if entry.year == "current" else int(entry.year)


def load_configured_bundles(settings: Settings, on_assumed=None) -> dict[str, Bundle]:
    """The bundle of every ``[[programs]]`` workflow; every problem of every file at once."""
    bundles: dict[str, Bundle] = {}
    problems: list[Problem] = []
    for entry in settings.programs:
        if entry.workflow in bundles:
            continue
        try:
            bundles[entry.workflow] = load_bundle_for(settings, entry.workflow, on_assumed=on_assumed)
        except DefinitionError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DefinitionError(problems)
    return bundles


def send_policy(settings: Settings, bundles: Mapping[str, Bundle]) -> SendPolicy:
    calendars = {wid: b.calendar for wid, b in bundles.items()}
    default = next(iter(calendars.values()), None) or make_calendar("cn-workdays")
    return SendPolicy(settings.mail.window, calendars, default)


def make_renderer(settings: Settings, timezone: str = "Asia/Shanghai") -> Renderer:
    mail = settings.mail
    signature = None
    if mail.signature is not None:
        signature = Signature(mail.signature.name, mail.signature.phone, mail.signature.address)
    return Renderer(
        sender=mail.sender,
        reply_to=mail.reply_to,
        domain=mail.domain,
        timezone=timezone,
        calendar=mail.calendar,
        signature=signature,
        link_for=unit_links(settings),
    )


def unit_links(settings: Settings) -> Callable[[str], str | None] | None:
    """``link_for(unit_id)``: the unit's portal page, once ``[web] base_url`` is configured.

    The hook for the web portal (issue 14): it adds ``[web]`` to the settings and a
    ``link_for(settings, unit)``; until then every digest says how the office records completion.
    """
    web = getattr(settings, "web", None)
    if web is None or not getattr(web, "base_url", None):
        return None
    try:
        from orchestrator.web.links import link_for  # type: ignore[import-not-found]
    except ImportError:
        return None
    return lambda unit: link_for(settings, unit)


def local_today(now: datetime, timezone: str = "Asia/Shanghai") -> date:
    """``window.local_day`` for a zone given by name."""
    return local_day(now, ZoneInfo(timezone))


@dataclass(frozen=True)
class Loaded:
    bundles: dict[str, Bundle]
    policy: SendPolicy
    renderer: Renderer
