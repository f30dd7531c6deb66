"""Indicator targets: ``">= 90%"``, ``"== 100%"``, ``"<= 5"``."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt}
_TARGET = re.compile(r"^\s*(>=|<=|==|>|<)\s*(-?\d+(?:\.\d+)?)\s*(%?)\s*$")


@dataclass(frozen=True)
class Target:
    """A comparator and a number; ``percent`` targets compare rates in 0–100."""

    op: str
    value: float
    percent: bool

    def met(self, actual: float) -> bool:
        return _OPS[self.op](round(actual, 6), self.value)

    def __str__(self) -> str:
        number = f"{self.value:g}"
        return f"{self.op} {number}{'%' if self.percent else ''}"


_ALIASES = str.maketrans({"≥": ">=", "≤": "<=", "＝": "==", "％": "%", "＞": ">", "＜": "<"})
"""The mathematical and full-width signs an office may type in Chinese text mean the same."""


def parse_target(text: str) -> Target:
    """Parse a target (``">= 90%"``, ``"≥ 90%"``, ``"<= 5"``); raise ValueError naming the bad text."""
    found = _TARGET.match(text.translate(_ALIASES))
    if not found:
        raise ValueError(
            f'bad target "{text}": expected a comparator (>=, <=, ==, >, <) and a number, '
            'e.g. ">= 90%" or "== 100%"'
        )
    value = float(found.group(2))
    percent = bool(found.group(3))
    if percent and not 0 <= value <= 100:
        raise ValueError(f'bad target "{text}": a rate must be between 0% and 100%')
    return Target(found.group(1), value, percent)
