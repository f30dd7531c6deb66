"""The one error hierarchy of duban.

Every error a user can cause is a ``DubanError``; its ``str()`` is one line that names what is
wrong and where. The CLI prints that line and exits 2; only ``--debug`` shows a traceback.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

_CONTROL = ("Cc", "Cf", "Zl", "Zp")


def control_character(text: str) -> str | None:
    """The first control or format character in ``text`` (line breaks, ESC, U+202E…), or None."""
    return next((ch for ch in text if unicodedata.category(ch) in _CONTROL), None)


def one_line_problem(text: str, what: str, limit: int) -> str | None:
    """Why ``text`` cannot be a one-line free text (a reason, evidence, a note), or None."""
    if len(text) > limit:
        return f"{what}: too long ({len(text)} characters, at most {limit})"
    bad = control_character(text)
    if bad is not None:
        return f"{what}: contains a control character ({bad!a}): give one line of plain text"
    return None


class DubanError(Exception):
    """Base of every error duban reports to a user (one line, no traceback)."""

    exit_code = 2


@dataclass(frozen=True, order=True)
class Problem:
    """One located problem in an input file: ``FILE:LINE: message``."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        """One line, whatever the message holds: line breaks and other control characters are escaped."""
        message = "".join(
            ascii(ch)[1:-1] if unicodedata.category(ch) in _CONTROL else ch for ch in self.message
        )
        return f"{self.file}:{self.line}: {message}"


class DefinitionError(DubanError):
    """One or more problems in definition, units, register or config files.

    Carries every problem found, not only the first; ``str()`` is one line per problem. Bad input
    for any command (exit 2); ``validate`` reports its findings as ``CheckFailed`` (exit 1).
    """

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


class CheckFailed(DefinitionError):
    """``duban validate`` found problems: the check failed (exit 1), the command was used right."""

    exit_code = 1


class CalendarError(DubanError):
    """A working-day calendar or its override file cannot be used."""


class NotFound(DubanError):
    """An id, reference or file named by the user does not exist."""
