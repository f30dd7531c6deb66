"""What the daemon, ``start`` and ``simulate`` share: bundles, the send policy, the renderer, the transport.

A ``Runtime`` is everything loaded from files; a reload replaces it as a whole, never in part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from notifications.render import Renderer
from notifications.transport import MaildirTransport, SmtpTransport, Transport
from orchestrator.engine.window import SendPolicy, local_day
from orchestrator.service.config import ProgramSettings, Settings
from workflows.calendar import make_calendar
from workflows.catalog import Bundle, definition_folders, find_definition, load_bundle
from workflows.errors import DefinitionError, DubanError, Problem
from workflows.schema import DEFAULT_TIMEZONE


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


def make_renderer(settings: Settings, timezone: str = DEFAULT_TIMEZONE) -> Renderer:
    mail = settings.mail
    return Renderer(sender=mail.sender, reply_to=mail.reply_to, domain=mail.domain, timezone=timezone)


def local_today(now: datetime, timezone: str = DEFAULT_TIMEZONE) -> date:
    """``window.local_day`` for a zone given by name."""
    return local_day(now, ZoneInfo(timezone))


@dataclass(frozen=True)
class Loaded:
    bundles: dict[str, Bundle]
    policy: SendPolicy
    renderer: Renderer


@dataclass(frozen=True)
class Runtime:
    """Everything loaded from files: replaced as a whole by a successful reload, never in part."""

    settings: Settings
    bundles: dict[str, Bundle]  # by the [[programs]] workflow reference
    policy: SendPolicy
    renderer: Renderer
    timezone: str


def load_runtime(settings: Settings, on_assumed: Callable[[int, str], None] | None = None) -> Runtime:
    """Load every configured bundle; raises ``DefinitionError`` with every problem of every file."""
    bundles = load_configured_bundles(settings, on_assumed=on_assumed)
    timezone = next((b.definition.workflow.timezone for b in bundles.values()), DEFAULT_TIMEZONE)
    return Runtime(
        settings, bundles, send_policy(settings, bundles), make_renderer(settings, timezone), timezone
    )


def make_transport(settings: Settings) -> Transport:
    """The configured transport; the SMTP password is read now, from its file or the environment."""
    mail = settings.mail
    if mail.transport == "maildir":
        return MaildirTransport(mail.maildir)
    smtp = mail.smtp
    return SmtpTransport(
        host=smtp.host,
        port=smtp.port,
        security=smtp.security,
        username=smtp.username,
        password=smtp.password(),
        timeout=smtp.timeout,
        verify=smtp.verify,
        ca_file=smtp.ca_file,
    )


def secrets_of(settings: Settings) -> list[str]:
    """The secret values that must never reach a log line (the SMTP password, when it can be read)."""
    try:
        password = settings.mail.smtp.password()
    except DubanError:
        return []
    return [password] if password else []
