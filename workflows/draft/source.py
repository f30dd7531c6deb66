"""Read a plan's text, within bounds, as numbered lines.

A .txt file is read as UTF-8 (with or without a byte-order mark) or else GB18030 (what Chinese
offices' editors save); a .docx with python-docx, paragraphs and table rows in document order, each
one line (a row's cells are kept apart too, for the table's columns). Every limit is checked before
the work it bounds: the file's size, a .docx's entries and their decompressed sizes (from the zip
directory, before anything is inflated), the number of lines and their length.
"""

from __future__ import annotations

import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

from workflows.errors import DubanError

MAX_TEXT_BYTES = 4 * 1024 * 1024  # a .txt plan: a long one is ~200 KB
MAX_DOCX_BYTES = 32 * 1024 * 1024  # a .docx with its pictures
MAX_DOCX_ENTRIES = 2000
MAX_DOCX_INFLATED = 64 * 1024 * 1024  # all entries, decompressed (the zip directory says)
MAX_DOCX_PART = 16 * 1024 * 1024  # word/document.xml, decompressed
MAX_LINES = 20_000
MAX_LINE_CHARS = 20_000
SUFFIXES = (".txt", ".docx")


class DraftInputError(DubanError):
    """The plan's file cannot be read as a plan's text (bad input: exit 2)."""


@dataclass(frozen=True)
class Line:
    """One line of the plan: a line of a .txt, or a paragraph or a table row of a .docx (1-based)."""

    number: int
    text: str
    cells: tuple[str, ...] | None = None  # a table row's cells
    heading: int | None = None  # a .docx heading style's level (标题 1 → 1)
    numbered: bool = False  # a .docx paragraph numbered by Word itself (no number in its text)


def clean(text: str) -> str:
    """One line of plain text: tabs and line breaks become spaces, other control and format
    characters are dropped (a zero-width space, a stray ESC), surrounding blanks removed."""
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in "\t\n\r\v\f\u2028\u2029\x85":
            out.append(" ")
        elif category in ("Cc", "Cf", "Co", "Cs"):
            continue
        else:
            out.append(ch)
    return "".join(out).replace("\u3000", " ").strip()


def read_plan(path: Path) -> list[Line]:
    """The plan's lines (blank ones dropped, numbers kept), or ``DraftInputError``: one line naming
    the file and what is wrong."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DraftInputError(f"{path}: not a .txt or .docx file (save the plan as .docx or plain text)")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DraftInputError(f"{path}: {exc.strerror or exc}") from None
    if suffix == ".txt":
        if size > MAX_TEXT_BYTES:
            raise DraftInputError(
                f"{path}: too large ({size:,} bytes, at most {MAX_TEXT_BYTES:,} for a .txt plan)"
            )
        lines = _text_lines(path)
    else:
        if size > MAX_DOCX_BYTES:
            raise DraftInputError(
                f"{path}: too large ({size:,} bytes, at most {MAX_DOCX_BYTES:,} for a .docx plan)"
            )
        lines = _docx_lines(path)
    return [line for line in lines if line.text]


def _decode(raw: bytes, path: Path) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DraftInputError(f"{path}: not UTF-8 or GB18030 text (save the plan as UTF-8 text)")


def _check_lines(count: int, path: Path) -> None:
    if count > MAX_LINES:
        raise DraftInputError(f"{path}: too many lines ({count:,}, at most {MAX_LINES:,})")


def _check_length(text: str, path: Path, number: int) -> None:
    if len(text) > MAX_LINE_CHARS:
        raise DraftInputError(
            f"{path}:{number}: line too long ({len(text):,} characters, at most {MAX_LINE_CHARS:,})"
        )


def _text_lines(path: Path) -> list[Line]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DraftInputError(f"{path}: {exc.strerror or exc}") from None
    if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DraftInputError(f"{path}: a binary file, not text (a .doc? save it as .docx)")
    text = _decode(raw, path)
    parts = text.splitlines()
    _check_lines(len(parts), path)
    lines = []
    for number, part in enumerate(parts, start=1):
        _check_length(part, path, number)
        lines.append(Line(number, clean(part)))
    return lines


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise DraftInputError(
            f"{path}: not a readable .docx (not a zip archive; a .doc? save it as .docx)"
        ) from None
    if len(infos) > MAX_DOCX_ENTRIES:
        raise DraftInputError(
            f"{path}: too many parts in the .docx ({len(infos):,}, at most {MAX_DOCX_ENTRIES:,})"
        )
    inflated = sum(info.file_size for info in infos)
    if inflated > MAX_DOCX_INFLATED:
        raise DraftInputError(
            f"{path}: too large once decompressed ({inflated:,} bytes, at most {MAX_DOCX_INFLATED:,})"
        )
    document = next((i for i in infos if i.filename == "word/document.xml"), None)
    if document is None:
        raise DraftInputError(f"{path}: not a Word document (no word/document.xml)")
    if document.file_size > MAX_DOCX_PART:
        raise DraftInputError(
            f"{path}: the document part is too large once decompressed ({document.file_size:,} bytes, "
            f"at most {MAX_DOCX_PART:,})"
        )


def _heading_level(paragraph) -> int | None:
    name = (paragraph.style.name if paragraph.style is not None else "") or ""
    for prefix in ("Heading ", "标题 ", "标题"):
        if name.startswith(prefix) and name[len(prefix) :].strip().isdigit():
            return int(name[len(prefix) :].strip())
    return None


def _numbered(paragraph) -> bool:
    ppr = paragraph._p.pPr
    return ppr is not None and ppr.numPr is not None


def _row_cells(row) -> tuple[str, ...]:
    cells, seen = [], []
    for cell in row.cells:  # a merged cell is repeated: keep its text once, its columns as they are
        text = clean(cell.text)
        cells.append("" if any(cell._tc is s for s in seen) else text)
        seen.append(cell._tc)
    return tuple(cells)


def _docx_lines(path: Path) -> list[Line]:
    _check_zip(path)
    import docx  # python-docx: only a .docx pays for it
    from docx.table import Table

    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises many kinds for a damaged package
        raise DraftInputError(f"{path}: not a readable .docx ({type(exc).__name__})") from None
    lines: list[Line] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = _row_cells(row)
                text = " | ".join(c for c in cells if c)
                lines.append(Line(len(lines) + 1, text, cells=cells))
                _check_lines(len(lines), path)
        else:
            text = clean(block.text)
            _check_length(text, path, len(lines) + 1)
            lines.append(Line(len(lines) + 1, text, heading=_heading_level(block), numbered=_numbered(block)))
            _check_lines(len(lines), path)
    return lines


__all__ = ["MAX_LINES", "DraftInputError", "Line", "clean", "read_plan"]
