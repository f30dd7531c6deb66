"""Stored text never reaches a terminal raw: control and format characters are shown escaped.

Text in the database came from files, CLI arguments, web forms and older versions; an ESC in a
reason (``\\x1b]0;…``) would otherwise rewrite the operator's terminal, a U+202E reverse the line.
Every printing path of the CLI goes through here:

- ``SafeConsole``: a Rich console that escapes such characters in the text it renders (its own
  styling is not text and is kept); ``console`` and ``err_console`` in ``common`` are ones.
- ``neutralise``: the same for a plain string (``typer.echo`` of a rendered report).
- ``json_line``: one JSON object, with every such character as a ``\\uXXXX`` escape (still the same
  JSON value; ``json.dumps`` alone leaves C1 controls and U+2028 raw when ``ensure_ascii=False``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.segment import Segment

# Unicode categories Cc, Cf, Zl and Zp (Unicode 15), except line feed, tab and carriage return
_CONTROLS = (
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
)
_UNSAFE_TEXT = re.compile(f"\r(?!\n)|[{_CONTROLS}]")  # a CR of a CRLF line end stays (CSV)
_UNSAFE_JSON = re.compile(f"[\r{_CONTROLS}]")  # (json.dumps has escaped CR, LF and tab already)


def _escape(found: re.Match[str]) -> str:
    return ascii(found.group())[1:-1]  # ESC → \x1b, U+202E → \u202e


def neutralise(text: str) -> str:
    """``text`` with every control or format character (but line breaks and tabs) shown as an escape."""
    return _UNSAFE_TEXT.sub(_escape, text)


def _json_escape(found: re.Match[str]) -> str:
    return "".join(f"\\u{unit:04x}" for unit in _utf16(found.group()))


def _utf16(ch: str) -> list[int]:
    data = ch.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def json_line(row: dict[str, Any]) -> str:
    """``row`` as one line of JSON (Chinese as is), every control or format character escaped."""
    return neutralise_json(json.dumps(row, ensure_ascii=False, default=str))


def neutralise_json(text: str) -> str:
    """JSON text from ``json.dumps(…, ensure_ascii=False)`` with the characters it left raw escaped."""
    return _UNSAFE_JSON.sub(_json_escape, text)


class SafeConsole(Console):
    """A Rich console whose rendered text has its control and format characters escaped, and
    never turns ``:name:`` into an emoji (``FILE:100: message`` must not print as ``FILE💯 …``)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("emoji", False)
        super().__init__(*args, **kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            segment if segment.control else Segment(neutralise(segment.text), segment.style, None)
            for segment in buffer
        )


__all__ = ["SafeConsole", "json_line", "neutralise", "neutralise_json"]
