"""Half-width punctuation between Chinese characters: a warning of ``duban validate``.

Chinese text takes full-width punctuation (，（）：；). A half-width ``,`` ``(`` ``)`` ``:`` or ``;``
with a Chinese character on both sides (``召开各种会议,通过学习``, ``(三)行政``, ``乡(镇)``) is
almost always a typing slip, and shows in every email and report.
"""

from __future__ import annotations

import re
from pathlib import Path

from workflows.errors import Problem

_HAN = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_SLIP = re.compile(rf"(?<={_HAN})[,():;](?={_HAN})")
FULL_WIDTH = {",": "，", "(": "（", ")": "）", ":": "：", ";": "；"}


def half_width_warnings(path: Path) -> list[Problem]:
    """One warning per line of ``path`` with half-width punctuation between Chinese characters."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []  # the file's own check reports it
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        slips = [m for m in _SLIP.finditer(line)]
        if not slips:
            continue
        marks = "".join(dict.fromkeys(m.group() for m in slips))
        first = slips[0].start()
        excerpt = line[max(first - 6, 0) : first + 7].strip()
        wanted = " ".join(f'"{FULL_WIDTH[c]}"' for c in marks)
        shown = " ".join(f'"{c}"' for c in marks)
        found.append(
            Problem(
                str(path),
                number,
                f"warning: half-width {shown} between Chinese characters ({excerpt}): use {wanted}",
            )
        )
    return found
