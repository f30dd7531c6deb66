"""What ``duban check`` reports: a ``Finding`` per line, located in config.toml by a ``Locator``."""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field

from orchestrator.service.config import Settings
from workflows.errors import DefinitionError, Problem
from workflows.source import Loc, SourceMap, read_toml

_CONTROL = ("Cc", "Cf", "Zl", "Zp")


@dataclass(frozen=True, order=True)
class Finding:
    """One line of ``duban check``: a problem (exit 1) or a warning, at ``file:line`` when known
    (``file`` empty: about no file, shown as ``duban: …``)."""

    file: str
    line: int
    message: str
    check: str = field(compare=False)  # what was checked, for --json: "web.base_url", "files", …
    severity: str = field(default="problem", compare=False)  # "problem" or "warning"

    @property
    def problem(self) -> bool:
        return self.severity == "problem"

    def __str__(self) -> str:
        """One line, ``FILE:LINE: message`` (``duban: message`` without a file); control characters
        (a value of config.toml may hold any) escaped."""
        text = self.message if self.problem else f"warning: {self.message}"
        text = "".join(ascii(ch)[1:-1] if unicodedata.category(ch) in _CONTROL else ch for ch in text)
        return f"{self.file}:{self.line}: {text}" if self.file else f"duban: {text}"

    def as_json(self) -> dict:
        return asdict(self) | {"file": self.file or None, "line": self.line or None}

    @classmethod
    def of(cls, problem: Problem, check: str, severity: str = "problem") -> Finding:
        """A ``validate`` problem (or warning) as a finding."""
        message = problem.message
        if severity == "warning" and message.startswith("warning: "):
            message = message[len("warning: ") :]
        return cls(problem.file, problem.line, message, check, severity)


class Locator:
    """config.toml's lines: ``where(("web", "base_url"))`` is the key's line, or its table's, or 1."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.path
        self.source: SourceMap | None = None
        if self.path is not None:
            try:
                self.source = read_toml(self.path)[1]
            except DefinitionError:  # (a broken file is never loaded into settings)
                self.source = None

    def where(self, loc: Loc) -> tuple[str, int]:
        if self.path is None:
            return "", 0
        return str(self.path), self.source.line_of(loc) if self.source else 1

    def has(self, loc: Loc) -> bool:
        return self.source is not None and self.source.has(loc)

    def problem(self, loc: Loc, check: str, message: str) -> Finding:
        return Finding(*self.where(loc), message, check)

    def warning(self, loc: Loc, check: str, message: str) -> Finding:
        return Finding(*self.where(loc), message, check, "warning")
