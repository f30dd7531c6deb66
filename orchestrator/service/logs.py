"""Logging: structlog everywhere; the CLI logs warnings to stderr, the daemon configures more.

The daemon (``configure_daemon``) writes to stdout, which systemd hands to journald:

- not a terminal: one JSON object per line (``ensure_ascii=False``, so Chinese stays readable),
  prefixed with the journald priority (``<7>`` debug, ``<6>`` info, ``<4>`` warning, ``<3>``
  error, ``<2>`` critical);
- a terminal: readable ``key=value`` lines.

The standard-library logs of APScheduler and SQLAlchemy go through the same pipeline
(``ProcessorFormatter(foreign_pre_chain=...)``). Every line passes the ``Redactor``: the values
of fields named like ``password``, ``secret`` or ``token`` become ``***``, every known
secret value (the SMTP password, the robots' keys and tokens) is blanked wherever it appears, and
so is the value of a URL's query parameter named like one (``sign``, ``access_token``, ``key``, …):
DingTalk's signature changes with every request, so no list of known values could catch it in
httpx's ``HTTP Request: POST …`` lines (``--debug``).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, tzinfo
from typing import IO, Any
from zoneinfo import ZoneInfo

import structlog
from structlog.typing import EventDict, WrappedLogger

REDACTED = "***"
SECRET_NAMES = ("password", "passwd", "secret", "token", "credential")
# a URL's query parameter that carries a secret: its value, up to the next & (or the URL's end)
SECRET_PARAMETER = re.compile(
    r"([?&](?:sign|signature|access_token|token|key|secret|password|passwd)=)[^&#\s\"'<>]+", re.IGNORECASE
)
PRIORITIES = {"debug": 7, "info": 6, "warning": 4, "warn": 4, "error": 3, "exception": 3, "critical": 2}
# Chatty stdlib loggers, kept at WARNING unless the daemon runs at DEBUG (SQLAlchemy at INFO logs every statement).
PASS_THROUGH = frozenset({"exc_info", "stack_info"})  # rendered later; the final text is redacted too
QUIET_LOGGERS = ("sqlalchemy", "apscheduler", "alembic", "aiosmtplib", "asyncio", "httpx", "httpcore")


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written (tests and the CLI swap it; never cache it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_cli(level: int = logging.WARNING, timezone: Callable[[], str | None] | None = None) -> None:
    """Key=value lines on stderr at ``level`` (the CLI's default: warnings and errors only), their
    time in the zone ``timezone()`` names (asked at the first line: most commands never log)."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            LocalTime(timezone),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),
        cache_logger_on_first_use=False,
    )


class Redactor:
    """A structlog processor (and string filter) that keeps secrets out of every line.

    ``secrets`` may be replaced at any time (``update``), e.g. after a reload reads a new password.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets: tuple[str, ...] = ()
        self.update(secrets)

    def update(self, secrets: Iterable[str | None]) -> None:
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def __call__(self, _logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        return {
            key: value if key in PASS_THROUGH else self._field(key, value)
            for key, value in event_dict.items()
        }

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        return SECRET_PARAMETER.sub(rf"\g<1>{REDACTED}", value) if "=" in value else value

    def _field(self, key: Any, value: Any) -> Any:
        if isinstance(key, str) and value is not None and any(n in key.lower() for n in SECRET_NAMES):
            return REDACTED
        return self._value(value)

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self._field(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._value(v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.text(repr(value)) if self.secrets else value


FIRST_KEYS = ("timestamp", "level", "logger", "event")


def event_first(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Put time, level, logger and event name first, so that a line reads left to right."""
    head = {key: event_dict[key] for key in FIRST_KEYS if key in event_dict}
    return head | {key: value for key, value in event_dict.items() if key not in head}


class JournaldLine:
    """The last processor: render, blank any secret left in the text, prefix the journald priority."""

    def __init__(self, renderer, redactor: Redactor, *, prefix: bool) -> None:
        self.renderer = renderer
        self.redactor = redactor
        self.prefix = prefix

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        level = str(event_dict.get("level", name)).lower()
        line = self.redactor.text(self.renderer(logger, name, event_dict))
        if not self.prefix:
            return line
        line = line.replace("\n", " ")  # JSON is one line already; keep journald's one record per line
        return f"<{PRIORITIES.get(level, 6)}>{line}"


def configure_daemon(
    level: int = logging.INFO,
    *,
    secrets: Iterable[str | None] = (),
    stream: IO[str] | None = None,
    json_lines: bool | None = None,
    timezone: str | None = None,
) -> Redactor:
    """Route structlog and the standard library to ``stream`` (default stdout); returns the redactor.

    ``json_lines`` defaults to "``stream`` is not a terminal". Every line carries the time in
    ``timezone`` (the plan's; UTC when None) with its offset: JSON lines ISO 8601 to the
    microsecond (``2026-12-02T15:00:01.123456+08:00``), lines for a terminal to the second
    (``2026-12-02 15:00:01+08:00``). The daemon and the portal pass the same zone, so that their
    lines side by side (``make run``, the journal) read alike. Idempotent: a second call replaces
    the handler installed by the first.
    """
    stream = sys.stdout if stream is None else stream
    if json_lines is None:
        json_lines = not _isatty(stream)
    redactor = Redactor(secrets)
    shared: list = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        LocalTime(timezone, precise=json_lines),
    ]
    if json_lines:
        final = [
            structlog.processors.format_exc_info,
            redactor,
            event_first,
            JournaldLine(structlog.processors.JSONRenderer(ensure_ascii=False), redactor, prefix=True),
        ]
    else:
        final = [redactor, JournaldLine(structlog.dev.ConsoleRenderer(colors=True), redactor, prefix=False)]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.set_name("duban-daemon")
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else max(level, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    return redactor


class LocalTime:
    """A structlog processor: ``timestamp`` as the wall time in ``timezone`` (default UTC) with its
    offset: to the second for a person at a terminal, ISO 8601 to the microsecond when ``precise``."""

    def __init__(self, timezone: str | Callable[[], str | None] | None, *, precise: bool = False) -> None:
        self.zone: tzinfo | Callable[[], str | None] = (
            timezone if callable(timezone) else (ZoneInfo(timezone) if timezone else UTC)
        )
        self.precise = precise

    def _zone(self) -> tzinfo:
        if callable(self.zone):  # asked once, at the first line
            ask, self.zone = self.zone, UTC  # (UTC meanwhile: asking may log a line itself)
            try:
                name = ask()
                self.zone = ZoneInfo(name) if name else UTC
            except Exception:  # (a broken config is reported by the command itself)
                self.zone = UTC
        return self.zone

    def __call__(self, _logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        now = datetime.now(self._zone())
        event_dict["timestamp"] = (
            now.isoformat(timespec="microseconds")
            if self.precise
            else now.isoformat(sep=" ", timespec="seconds")
        )
        return event_dict


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
