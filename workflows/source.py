"""Find the line of a key in TOML source text.

tomllib reports line numbers for syntax errors only. For a semantic error (a bad date, an
unknown phase) we know the key's *path* — ``("tasks", 3, "due")`` — and look its line up here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")
_TOML_SYNTAX_LINE = re.compile(r"at line (\d+)")

Loc = Sequence[str | int]


def _unquote(key: str) -> str:
    return key[1:-1] if key[:1] in "\"'" else key


class SourceMap:
    """Maps key paths of one TOML document to 1-based line numbers."""

    def __init__(self, text: str):
        self._tables: dict[tuple[str | int, ...], int] = {}
        self._keys: dict[tuple[str | int, ...], int] = {}
        self._scan(text)

    def _scan(self, text: str) -> None:
        counts: dict[tuple[str, ...], int] = {}
        current: tuple[str | int, ...] = ()
        in_multiline: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_multiline:
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            header = _HEADER.match(line)
            if header and not _KEY.match(line):
                names = tuple(_unquote(part.strip()) for part in header.group(2).split("."))
                if header.group(1) == "[[":
                    index = counts.get(names, 0)
                    counts[names] = index + 1
                    current = (*names, index)
                else:
                    current = self._resolve_array_parents(names, counts)
                self._tables.setdefault(current, number)
                continue
            key = _KEY.match(line)
            if key:
                self._keys.setdefault((*current, _unquote(key.group(1))), number)
                rest = line[key.end() :]
                for quote in ('"""', "'''"):
                    if rest.count(quote) % 2 == 1:
                        in_multiline = quote

    @staticmethod
    def _resolve_array_parents(names: tuple[str, ...], counts: dict[tuple[str, ...], int]):
        """``[evaluation.weights]`` under ``[[tasks]]`` etc.: attach to the latest array element."""
        path: list[str | int] = []
        for i, name in enumerate(names):
            path.append(name)
            prefix = names[: i + 1]
            if prefix in counts and i < len(names) - 1:
                path.append(counts[prefix] - 1)
        return tuple(path)

    def line_of(self, loc: Loc) -> int:
        """The best line for ``loc``: the key's own line, else its table's header, else 1."""
        loc = tuple(loc)
        for end in range(len(loc), 0, -1):
            prefix = loc[:end]
            if prefix in self._keys:
                return self._keys[prefix]
            if prefix in self._tables:
                return self._tables[prefix]
        return 1


def syntax_error_line(message: str) -> int:
    """The line tomllib names in a TOMLDecodeError message, or 1."""
    found = _TOML_SYNTAX_LINE.search(message)
    return int(found.group(1)) if found else 1


def format_loc(loc: Loc) -> str:
    """``("tasks", 3, "due")`` → ``tasks[3].due``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
