"""A plain table for long listings: the look of Rich's default table at a fraction of its cost.

Rich measures and lays out every cell through several layers of renderables: for the pilot's
1,111 obligations ``duban tasks`` spent 90 % of its time there. This writes the same box (heavy
head, light body), aligned by display width (a Chinese character is two columns), folding long
cells, and hands Rich one ``Text`` with a style per row (so colours and ``NO_COLOR`` work as before).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text


@dataclass(frozen=True)
class Column:
    header: str
    right: bool = False  # right-justified (numbers)
    wrap: int = 0  # 0: never folded; else its share of the room left when the table is too wide


def _fold(text: str, width: int) -> list[str]:
    """``text`` cut into pieces of at most ``width`` display columns (never inside a character)."""
    lines, line, used = [], [], 0
    for char in text:
        size = cell_len(char)
        if used + size > width and line:
            lines.append("".join(line))
            line, used = [], 0
        line.append(char)
        used += size
    lines.append("".join(line))
    return lines


def _widths(columns: Sequence[Column], rows: Sequence[Sequence[str]], room: int) -> list[int]:
    natural = [max([cell_len(c.header), *(cell_len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    borders = 3 * len(columns) + 1
    excess = sum(natural) + borders - room
    if excess <= 0:
        return natural
    folding = [i for i, c in enumerate(columns) if c.wrap]
    widths = list(natural)
    space = room - borders - sum(natural[i] for i in range(len(columns)) if i not in folding)
    while folding:  # a folding column that fits in its share keeps its width; the others share the rest
        shares = sum(columns[i].wrap for i in folding)
        fitting = [i for i in folding if natural[i] <= space * columns[i].wrap // shares]
        if not fitting:
            for i in folding:  # never narrower than the header
                widths[i] = max(space * columns[i].wrap // shares, cell_len(columns[i].header), 4)
            break
        space -= sum(natural[i] for i in fitting)
        folding = [i for i in folding if i not in fitting]
    return widths


def _line(cells: Sequence[str], widths: Sequence[int], columns: Sequence[Column], bar: str) -> str:
    parts = []
    for cell, width, column in zip(cells, widths, columns, strict=True):
        pad = " " * (width - cell_len(cell))
        parts.append(f" {pad}{cell} " if column.right else f" {cell}{pad} ")
    return bar + bar.join(parts) + bar


def render(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    styles: Sequence[str] = (),
    caption: str | None = None,
) -> Text:
    """The table as one ``Text``: every row's lines carry that row's style."""
    widths = _widths(columns, rows, console.width)
    rule = lambda left, mid, right, fill: left + mid.join(fill * (w + 2) for w in widths) + right  # noqa: E731
    out = Text()
    out.append(rule("┏", "┳", "┓", "━") + "\n")
    out.append(_line([c.header for c in columns], widths, columns, "┃") + "\n", style="bold")
    out.append(rule("┡", "╇", "┩", "━") + "\n")
    for number, row in enumerate(rows):
        folded = [
            _fold(cell, w) if c.wrap else [cell] for cell, w, c in zip(row, widths, columns, strict=True)
        ]
        height = max(len(f) for f in folded)
        style = styles[number] if number < len(styles) else ""
        for k in range(height):
            cells = [f[k] if k < len(f) else "" for f in folded]
            out.append(_line(cells, widths, columns, "│") + "\n", style=style)
    out.append(rule("└", "┴", "┘", "─"))
    if caption:
        out.append("\n" + caption)
    return out
