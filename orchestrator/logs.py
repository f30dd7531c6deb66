"""Logging: structlog everywhere; the CLI logs warnings to stderr, the daemon configures more."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_cli(level: int = logging.WARNING) -> None:
    """Key=value lines on stderr at ``level`` (the CLI's default: warnings and errors only)."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
