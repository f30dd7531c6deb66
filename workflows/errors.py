"""The one error hierarchy of duban.

Every error a user can cause is a ``DubanError``; its ``str()`` is one line that names what is
wrong and where. The CLI prints that line and exits 2; only ``--debug`` shows a traceback.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

_CONTROL = ("Cc", "Cf", "Zl", "Zp")


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

    Carries every problem found, not only the first; ``str()`` is one line per problem.
    """

    exit_code = 1

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


class CalendarError(DubanError):
    """A working-day calendar or its override file cannot be used."""


class NotFound(DubanError):
    """An id, reference or file named by the user does not exist."""
