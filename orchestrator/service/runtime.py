"""What the daemon, ``start`` and ``simulate`` share: bundles, the send policy, the renderer, the transport.

A ``Runtime`` is everything loaded from files; a reload replaces it as a whole, never in part.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog
from sqlmodel import Session

from notifications.im import Robot, RobotTransport
from notifications.model import Signature
from notifications.render import Renderer
from notifications.transport import MaildirTransport, SmtpTransport, Transport
from orchestrator.engine.clock import clock_from_environment
from orchestrator.engine.window import SendPolicy, local_day
from orchestrator.service.config import ConfigError, ProgramSettings, Settings, config_problem
from orchestrator.service.robots import configured_robots, robots_path, unit_robot_problems
from orchestrator.store.db import make_engine
from workflows.calendar import make_calendar
from workflows.catalog import Bundle, definition_folders, find_definition, load_bundle
from workflows.errors import DefinitionError, DubanError, NotFound, Problem
from workflows.loader import read_toml
from workflows.roles import Plan, UnitFindings, check_units
from workflows.schema import DEFAULT_TIMEZONE
from workflows.settings import SettingValues


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
        settings=program_setting_values(settings, path),
    )


def program_setting_values(settings: Settings, path: Path) -> SettingValues | None:
    """The values ``[[programs]] settings`` gives the plan in ``path`` (its ``[settings]``), located
    at the config line that gives them; None when config sets none. Every year of a workflow runs on
    one set of values: two entries that give different ones are a config problem."""
    found: tuple[int, dict[str, str]] | None = None
    for i, entry in enumerate(settings.programs):
        if not entry.settings or not _same_definition(settings, entry.workflow, path):
            continue
        if found is not None and found[1] != entry.settings:
            message = (
                f"programs[{i}].settings: differs from programs[{found[0]}].settings for the same "
                "workflow (one plan runs on one set of settings, every year of it)"
            )
            raise ConfigError([config_problem(settings, ("programs", i, "settings"), message)])
        found = found or (i, dict(entry.settings))
    if found is None:
        return None
    i, values = found
    where = config_problem(settings, ("programs", i, "settings"), "")
    return SettingValues(values, where.file, where.line, f"programs[{i}].settings")


def _same_definition(settings: Settings, workflow: str, path: Path) -> bool:
    try:
        return (
            find_definition(workflow, definition_folders(settings.definitions.paths)).resolve()
            == path.resolve()
        )
    except DubanError:
        return False


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


def make_renderer(settings: Settings, timezone: str = DEFAULT_TIMEZONE, *, links: bool = False) -> Renderer:
    """The digest renderer; with ``links`` every digest carries its unit's personal link (signed
    with the ``[web]`` key) and the office's 待审核 notice the review page's address."""
    mail = settings.mail
    link_for = unit_link_maker(settings) if links else None
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
        link_for=link_for,
        office_url=f"{settings.web.base_url.rstrip('/')}/office" if link_for else None,
    )


def unit_link_maker(settings: Settings) -> Callable[[str], str | None] | None:
    """unit id → its current personal link, or None when the ``[web]`` key cannot be read (a
    warning, once: the digests then go out without links)."""
    from orchestrator.admin.links import link_for_unit  # the one place the service signs links

    web = settings.web
    try:
        secret = web.secret()
    except DubanError as exc:
        structlog.get_logger("duban.daemon").warning("web.links_unavailable", reason=str(exc))
        return None
    engines: list = []

    def link_for(unit: str) -> str | None:
        if not engines:
            engines.append(make_engine(settings.database.url))
        with Session(engines[0]) as session:
            now = clock_from_environment(os.environ).now()  # (the test clock, as the portal reads it)
            return link_for_unit(secret, web.base_url, session, unit, now=now)

    return link_for


def require_link_key(settings: Settings) -> None:
    """Refuse (``ConfigError``, one located line) a config whose emails would go out by SMTP to a
    written ``[web] base_url`` without the unit's link because the signing key cannot be read;
    ``[web] links = false`` says the emails are to carry no link."""
    web = settings.web
    if not (web.links and web.base_url_given and settings.mail.transport == "smtp"):
        return
    try:
        web.secret()
    except DubanError as exc:
        message = (
            f"[web] base_url is set and mail goes out by SMTP, but the signing key of the links cannot be "
            f"read ({exc}): every email would go out without its unit's link. Give the key "
            "(the credential web-secret, see docs/deploy.md) or set [web] links = false"
        )
        raise ConfigError([config_problem(settings, ("web", "base_url"), message)]) from None


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
    robots: dict[str, Robot] = field(default_factory=dict)  # the robots file's, by name
    units: UnitFindings = field(default_factory=UnitFindings)  # the units file's warnings

    @property
    def workflows(self) -> set[str]:
        """The workflow ids the daemon runs: those ``[[programs]]`` declares (any year of them)."""
        return {b.definition.workflow.id for b in self.bundles.values()}


def load_runtime(settings: Settings, on_assumed: Callable[[int, str], None] | None = None) -> Runtime:
    """Load every configured bundle and the robots file; raises ``DefinitionError`` with every
    problem of every file (a unit naming a robot the robots file lacks is one, a unit's role that
    no configured plan uses another)."""
    bundles = load_configured_bundles(settings, on_assumed=on_assumed)
    findings = check_configured_units(bundles)
    if findings.problems:
        raise DefinitionError(findings.problems)
    robots = load_unit_robots(settings, bundles)
    timezone = next((b.definition.workflow.timezone for b in bundles.values()), DEFAULT_TIMEZONE)
    return Runtime(
        settings,
        bundles,
        send_policy(settings, bundles),
        make_renderer(settings, timezone, links=settings.web.links),
        timezone,
        robots,
        findings,
    )


def check_configured_units(bundles: Mapping[str, Bundle]) -> UnitFindings:
    """The units file against every configured plan (``workflows.roles.check_units``)."""
    plans = {
        b.definition.workflow.id: Plan(b.definition.workflow.id, b.loaded.data, b.registers)
        for b in bundles.values()
    }
    findings = UnitFindings()
    for units in {b.units.path: b.units for b in bundles.values()}.values():
        found = check_units(units, list(plans.values()))
        findings.problems += found.problems
        findings.warnings += found.warnings
        findings.idle |= found.idle
    return findings


def log_unit_warnings(runtime: Runtime) -> None:
    """The daemon's log at start and reload: each unit that owes nothing in any configured plan
    (``units.owe_nothing``), and each other warning about the units file (``units.warning``)."""
    log = structlog.get_logger("duban.daemon")
    idle = {problem: unit for unit, problem in runtime.units.idle.items()}
    directory = next((b.units.directory for b in runtime.bundles.values()), None)
    for problem in runtime.units.warnings:
        if problem in idle:
            unit = idle[problem]
            name = directory.name(unit) if directory else unit
            log.warning("units.owe_nothing", unit=unit, name=name, at=f"{problem.file}:{problem.line}")
        else:
            log.warning("units.warning", problem=str(problem))


def load_unit_robots(settings: Settings, bundles: Mapping[str, Bundle]) -> dict[str, Robot]:
    """The robots file's robots, checked against every unit that names one."""
    robots = configured_robots(settings)
    units = {id(b.units): b.units for b in bundles.values()}.values()
    problems = unit_robot_problems(units, robots, robots_path(settings)[0])
    if problems:
        raise DefinitionError(problems)
    return robots


def make_robot_transport(settings: Settings, robots: Mapping[str, Robot]) -> RobotTransport:
    im = settings.im
    return RobotTransport(robots, wecom_url=im.wecom_url, dingtalk_url=im.dingtalk_url, timeout=im.timeout)


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
    """The secret values that must never reach a log line: the SMTP password and the robots'
    keys, tokens and secrets, when they can be read."""
    secrets = []
    try:
        password = settings.mail.smtp.password()
    except DubanError:
        password = None
    if password:
        secrets.append(password)
    try:
        robots = configured_robots(settings)
    except DubanError:
        robots = {}
    return secrets + [s for robot in robots.values() for s in robot.secrets]


def program_calendar_warnings(settings: Settings, now: datetime) -> list[str]:
    """One line per configured program and year it touches (its own and the next) with no official
    working-day schedule: the make-up days of that year are unknown. A program whose files do not
    load is left out (``validate`` reports those files' problems)."""
    found: list[str] = []
    for entry in settings.programs:
        try:
            bundle = load_bundle_for(settings, entry.workflow, on_assumed=lambda *_: None)
        except DubanError:
            continue
        tz = ZoneInfo(bundle.definition.workflow.timezone)
        year = program_year(entry, local_day(now, tz))
        for touched in (year, year + 1):
            if not bundle.calendar.has_official_data(touched):
                name = f"{bundle.definition.workflow.title} {year} 年度（{entry.workflow}）"
                found.append(f"{name}：{bundle.calendar.warning_for(touched)}")
    return found


def mail_destination(settings: Settings) -> dict[str, str]:
    """Where emails go, for a log line: the maildir path, or the SMTP server (never a password)."""
    mail = settings.mail
    if mail.transport == "maildir":
        return {"transport": "maildir", "to": str(mail.maildir)}
    smtp = mail.smtp
    return {"transport": "smtp", "to": f"{smtp.host}:{smtp.port}", "security": smtp.security}


def declared_workflows(settings: Settings) -> set[str]:
    """The workflow ids ``[[programs]]`` declares, read cheaply (a reference that is a file: its
    ``[workflow] id``; one that cannot be read counts as the id it names)."""
    found = set()
    for entry in settings.programs:
        try:
            path = find_definition(entry.workflow, definition_folders(settings.definitions.paths))
            found.add(str(read_toml(path)[0]["workflow"]["id"]))
        except (DubanError, KeyError, TypeError):
            found.add(entry.workflow)
    return found


def plan_timezone(settings: Settings) -> str:
    """The time zone of the first configured plan (for log lines on a terminal), read cheaply from its
    ``[workflow]`` table; ``Asia/Shanghai`` if there is none or it cannot be read (the daemon's own
    loading reports any problem)."""
    for entry in settings.programs:
        try:
            path = find_definition(entry.workflow, definition_folders(settings.definitions.paths))
            zone = read_toml(path)[0].get("workflow", {}).get("timezone", DEFAULT_TIMEZONE)
            ZoneInfo(zone)
        except (DubanError, ValueError, KeyError, TypeError, AttributeError):
            continue
        return zone
    return DEFAULT_TIMEZONE
