"""Find the line of a key in TOML source text.

tomllib reports line numbers for syntax errors only. For a semantic error (a bad date, an
unknown phase) we know the key's *path* — ``("tasks", 3, "due")`` — and look its line up here.

:class:`SourceMap` walks the text once with a small scanner that understands the parts of TOML
that decide where a key is: comments, the four kinds of strings (so a multi-line ``detail``
holding ``foo = 1`` lines is text, not keys), arrays (each element has its own path and line),
inline tables, dotted keys, quoted keys, ``[table]`` and ``[[array.of.tables]]`` headers
(an array of tables nested in another gets the index of its parent element). The scanner is
only used on text tomllib has accepted; it never raises, whatever it is given.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path as FilePath
from typing import Any

from workflows.errors import DefinitionError, Problem

Loc = Sequence[str | int]
Path = tuple[str | int, ...]

_TOML_SYNTAX_LINE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_SYNTAX_END = re.compile(r"\s*\(at end of document\)\s*$")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = re.compile(r"[,\]}#\n]")
_ESCAPE = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\", "e": "\x1b"}


MAX_NESTING = 32  # arrays and tables inside each other; a plan needs 4, tomllib recurses past ~450
MAX_FILE_BYTES = 8 * 1024 * 1024  # no definition, units or config file comes near this


class TomlRefused(ValueError):
    """A TOML text refused before or while parsing (too deep, too large), at a 1-based ``line``."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


def parse_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads`` that never recurses without bound: the one place duban parses TOML.

    Raises ``tomllib.TOMLDecodeError`` for a syntax error, ``TomlRefused`` for a text over
    ``MAX_FILE_BYTES`` or nested deeper than ``MAX_NESTING`` (brackets, braces or dotted keys),
    with the line where the limit is passed. Both are ``ValueError``.
    """
    if len(text) > MAX_FILE_BYTES:
        raise TomlRefused(1, f"file too large ({len(text):,} characters, at most {MAX_FILE_BYTES:,})")
    line = nesting_overflow(text)
    if line:
        raise TomlRefused(line, f"nested too deeply (more than {MAX_NESTING} levels of arrays and tables)")
    try:
        data = tomllib.loads(text)
    except RecursionError:  # a guard for what the scan above cannot see
        raise TomlRefused(1, f"nested too deeply (more than {MAX_NESTING} levels)") from None
    if _depth(data) > MAX_NESTING:
        raise TomlRefused(1, f"nested too deeply (more than {MAX_NESTING} levels of keys)")
    return data


def nesting_overflow(text: str) -> int:
    """The line where ``[``/``{`` nesting outside strings and comments passes ``MAX_NESTING``, else 0.

    One iterative pass from one bracket, quote or comment to the next; strings are skipped
    roughly (enough not to count the brackets inside them), tomllib judges the rest.
    """
    depth, pos, end = 0, 0, len(text)
    while True:
        found = _NESTING_MARK.search(text, pos)
        if found is None:
            return 0
        pos, ch = found.start(), found.group()
        if ch == "#":
            nl = text.find("\n", pos)
            pos = end if nl < 0 else nl
        elif ch in "\"'":
            pos = _string_end(text, pos)
        elif ch in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return text.count("\n", 0, pos) + 1
            pos += 1
        else:
            depth = max(depth - 1, 0)
            pos += 1


_NESTING_MARK = re.compile(r"[#\"'\[\]{}]")


def _string_end(text: str, pos: int) -> int:
    """The position after the string that starts at ``pos`` (at the line's end if it is not closed)."""
    ch = text[pos]
    quote = ch * 3 if text.startswith(ch * 3, pos) else ch
    close = pos + len(quote)
    while True:
        close = text.find(quote, close)
        if close < 0 or ch == "'" or not _escaped(text, close):
            break
        close += 1
    if len(quote) == 1:
        nl = text.find("\n", pos)
        if close < 0 or 0 <= nl < close:  # not closed on its line: tomllib will say so
            return len(text) if nl < 0 else nl
    return len(text) if close < 0 else close + len(quote)


def _escaped(text: str, pos: int) -> bool:
    """True iff the character at ``pos`` follows an odd number of backslashes."""
    count = 0
    while pos - count - 1 >= 0 and text[pos - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def _depth(data: Any) -> int:
    """How deep tables and arrays go in parsed data (iterative: never recurses)."""
    deepest, stack = 0, [(data, 0)]
    while stack:
        value, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_NESTING:
            return level
        if isinstance(value, dict):
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, level + 1) for v in value)
    return deepest


class SourceMap:
    """Maps key paths of one TOML document to 1-based line numbers.

    The text is scanned on the first lookup: a file without problems costs nothing.
    """

    def __init__(self, text: str):
        self._text = text
        self._map: dict[Path, int] | None = None

    @property
    def _lines(self) -> dict[Path, int]:
        if self._map is None:
            self._map = {}
            _Scanner(self._text, self._map).scan()
        return self._map

    def line_of(self, loc: Loc) -> int:
        """The best line for ``loc``: the line of the longest prefix of ``loc`` that is in the file.

        A key's own line, an array element's line, else its table's header, else 1.
        """
        loc = tuple(loc)
        lines = self._lines
        for end in range(len(loc), 0, -1):
            line = lines.get(loc[:end])
            if line is not None:
                return line
        return 1

    def has(self, loc: Loc) -> bool:
        """True iff ``loc`` itself (not only a prefix) is written in the file."""
        return tuple(loc) in self._lines


class _Scanner:
    """One pass over valid TOML text, recording the first line of every key path and array element."""

    def __init__(self, text: str, out: dict[Path, int]):
        self.text = text
        self.pos = 0
        self.out = out
        self.starts = [0, *(m.end() for m in re.finditer("\n", text))]
        self.arrays: dict[Path, int] = {}  # [[array of tables]] path → number of elements so far

    # -- helpers ----------------------------------------------------------------------------

    def line(self, pos: int | None = None) -> int:
        return bisect.bisect_right(self.starts, self.pos if pos is None else pos)

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def record(self, path: Path, pos: int) -> None:
        if path:
            self.out.setdefault(path, self.line(pos))

    def skip_blank(self, newlines: bool) -> None:
        """Skip spaces and tabs; also newlines and comments when ``newlines``."""
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in " \t\r" or (newlines and ch == "\n"):
                self.pos += 1
            elif ch == "#" and newlines:
                self.skip_line()
            else:
                return

    def skip_line(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end + 1

    # -- the document -----------------------------------------------------------------------

    def scan(self) -> None:
        table: Path = ()
        while True:
            self.skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return
            start = self.pos
            if self.peek(2) == "[[":
                table = self.array_header()
            elif self.peek() == "[":
                table = self.table_header()
            else:
                self.key_value(table)
            if self.pos == start:  # not TOML after all: never loop forever
                self.skip_line()

    def resolve(self, keys: list[str]) -> Path:
        """A header's keys as a path: a key naming an array of tables stands for its last element."""
        path: Path = ()
        for key in keys:
            path = (*path, key)
            if path in self.arrays:
                path = (*path, self.arrays[path] - 1)
        return path

    def array_header(self) -> Path:
        start = self.pos
        self.pos += 2
        keys = self.keys()
        self.skip_line()
        if not keys:
            return ()
        array = (*self.resolve(keys[:-1]), keys[-1])
        index = self.arrays.get(array, 0)
        self.arrays[array] = index + 1
        self.record(array, start)
        self.record((*array, index), start)
        return (*array, index)

    def table_header(self) -> Path:
        start = self.pos
        self.pos += 1
        keys = self.keys()
        self.skip_line()
        path = self.resolve(keys)
        for end in range(1, len(path) + 1):
            self.record(path[:end], start)
        return path

    def keys(self) -> list[str]:
        """A dotted key (``a."b.c".d``), stopping before ``=``, ``]`` or anything else."""
        keys: list[str] = []
        while True:
            self.skip_blank(newlines=False)
            ch = self.peek()
            if ch == '"':
                keys.append(self.basic_string())
            elif ch == "'":
                keys.append(self.literal_string())
            else:
                found = _BARE_KEY.match(self.text, self.pos)
                if not found:
                    return keys
                keys.append(found.group())
                self.pos = found.end()
            self.skip_blank(newlines=False)
            if self.peek() != ".":
                return keys
            self.pos += 1

    def key_value(self, table: Path) -> None:
        start = self.pos
        keys = self.keys()
        self.skip_blank(newlines=False)
        if not keys or self.peek() != "=":
            self.skip_line()
            return
        self.pos += 1
        for end in range(1, len(keys) + 1):
            self.record((*table, *keys[:end]), start)
        self.skip_blank(newlines=False)
        self.value((*table, *keys))

    # -- values -----------------------------------------------------------------------------

    def value(self, path: Path) -> None:
        if self.peek(3) == '"""':
            self.multiline('"""')
        elif self.peek(3) == "'''":
            self.multiline("'''")
        elif self.peek() == '"':
            self.basic_string()
        elif self.peek() == "'":
            self.literal_string()
        elif self.peek() == "[":
            self.array(path)
        elif self.peek() == "{":
            self.inline_table(path)
        else:
            found = _SCALAR_END.search(self.text, self.pos)
            self.pos = len(self.text) if found is None else found.start()

    def array(self, path: Path) -> None:
        self.pos += 1
        index = 0
        while self.pos < len(self.text):
            self.skip_blank(newlines=True)
            if self.peek() in ("]", ""):
                break
            start = self.pos
            self.record((*path, index), start)
            self.value((*path, index))
            index += 1
            self.skip_blank(newlines=True)
            if self.peek() == ",":
                self.pos += 1
            elif self.pos == start:
                break
        self.pos += 1

    def inline_table(self, path: Path) -> None:
        self.pos += 1
        while self.pos < len(self.text):
            self.skip_blank(newlines=True)
            if self.peek() in ("}", ""):
                break
            start = self.pos
            keys = self.keys()
            self.skip_blank(newlines=False)
            if not keys or self.peek() != "=":
                break
            self.pos += 1
            for end in range(1, len(keys) + 1):
                self.record((*path, *keys[:end]), start)
            self.skip_blank(newlines=False)
            self.value((*path, *keys))
            self.skip_blank(newlines=True)
            if self.peek() == ",":
                self.pos += 1
        self.pos += 1

    def basic_string(self) -> str:
        """A ``"…"`` string (the position is on the opening quote); returns its value."""
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == '"' or ch == "\n":
                break
            if ch == "\\":
                code = self.peek(2)[1:]
                if code in ("u", "U"):
                    width = 4 if code == "u" else 8
                    digits = self.text[self.pos + 2 : self.pos + 2 + width]
                    out.append(chr(int(digits, 16)) if _is_codepoint(digits) else "")
                    self.pos += 2 + width
                    continue
                out.append(_ESCAPE.get(code, code))
                self.pos += 2
                continue
            out.append(ch)
            self.pos += 1
        self.pos += 1
        return "".join(out)

    def literal_string(self) -> str:
        self.pos += 1
        end = self.text.find("'", self.pos)
        newline = self.text.find("\n", self.pos)
        if end < 0 or (0 <= newline < end):
            end = len(self.text) if newline < 0 else newline
        value = self.text[self.pos : end]
        self.pos = end + 1
        return value

    def multiline(self, quote: str) -> None:
        """A multi-line string (``quote`` is its delimiter): skip past its end (escapes in basic ones)."""
        self.pos += 3
        while self.pos < len(self.text):
            if quote == '"""' and self.text[self.pos] == "\\":
                self.pos += 2
                continue
            if self.text.startswith(quote, self.pos):
                self.pos += 3
                extra = 0  # up to two more quotes belong to the content: '''a'''''
                while extra < 2 and self.text.startswith(quote[0], self.pos):
                    self.pos += 1
                    extra += 1
                return
            self.pos += 1


def _is_codepoint(digits: str) -> bool:
    return bool(digits) and all(c in "0123456789abcdefABCDEF" for c in digits) and int(digits, 16) < 0x110000


def syntax_error_line(message: str) -> int:
    """The line tomllib names in a TOMLDecodeError message, or 0 for "at end of document"/unknown."""
    found = _TOML_SYNTAX_LINE.search(message)
    return int(found.group(1)) if found else 0


def syntax_error_text(message: str) -> str:
    """tomllib's message without its position suffix, with the column kept: ``Invalid value (column 7)``."""
    found = _TOML_SYNTAX_LINE.search(message)
    if found:
        return f"{message[: found.start()]} (column {found.group(2)})"
    return _TOML_SYNTAX_END.sub(" (at end of file)", message)


def format_loc(loc: Loc) -> str:
    """``("tasks", 3, "due")`` → ``tasks[3].due``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_toml(path: FilePath) -> tuple[dict[str, Any], SourceMap, str]:
    """Parse a TOML file (UTF-8, a byte-order mark allowed).

    Returns the data, its source map and a short digest of the bytes. An unreadable file or a
    syntax error is a ``DefinitionError`` with one located problem (tomllib stops at the first).
    """
    shown = str(path)
    try:
        raw = FilePath(path).read_bytes()
    except FileNotFoundError:
        raise DefinitionError([Problem(shown, 1, "no such file")]) from None
    except IsADirectoryError:
        raise DefinitionError([Problem(shown, 1, "is a directory, expected a TOML file")]) from None
    except OSError as exc:
        raise DefinitionError([Problem(shown, 1, f"cannot read: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = (
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): save the file as UTF-8"
        )
        raise DefinitionError([Problem(shown, line, message)]) from None
    try:
        data = parse_toml(text)
    except TomlRefused as exc:
        raise DefinitionError([Problem(shown, exc.line, exc.message)]) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line = syntax_error_line(message) or max(len(text.splitlines()), 1)
        raise DefinitionError([Problem(shown, line, f"TOML syntax: {syntax_error_text(message)}")]) from None
    return data, SourceMap(text), hashlib.sha256(raw).hexdigest()[:16]
