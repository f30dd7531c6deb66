"""Hostile spreadsheets for ``duban import-status``, built with ``zipfile`` as an attacker would.

``workbook()`` writes a minimal, valid XLSX (content types, relationships, workbook, one sheet,
optionally shared strings and styles) whose parts are given as bytes or as iterables of byte
chunks: a part that expands to hundreds of megabytes is streamed into the archive, never held in
memory. The builders below make the files of issue 26: empty rows by the million, a shared
string that expands to a gibibyte, a dimension of the whole sheet, numbers no cell should hold.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"

CONTENT_TYPES = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>
<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>
</Types>"""
ROOT_RELS = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="{PKG}"><Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>""".encode()
WORKBOOK = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="{MAIN}" xmlns:r="{REL}"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>""".encode()
WORKBOOK_RELS = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="{PKG}">
<Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/>
<Relationship Id="rId2" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>
<Relationship Id="rId3" Type="{REL}/styles" Target="styles.xml"/>
</Relationships>""".encode()
# one cell style (s="1") with the built-in date format 14 (yyyy-mm-dd as Excel shows it)
STYLES = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="{MAIN}"><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="14" applyNumberFormat="1"/></cellXfs></styleSheet>""".encode()

Part = bytes | Iterable[bytes]


def workbook(path: Path, sheet: Part, strings: Part | None = None, *, styles: bytes = STYLES) -> Path:
    """An XLSX file at ``path`` with ``sheet`` as its first sheet's XML (and ``strings`` as the shared
    strings part): each part deflated, streamed in chunks."""
    strings = strings if strings is not None else shared_strings([])
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, part in (
            ("[Content_Types].xml", CONTENT_TYPES),
            ("_rels/.rels", ROOT_RELS),
            ("xl/workbook.xml", WORKBOOK),
            ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS),
            ("xl/styles.xml", styles),
            ("xl/sharedStrings.xml", strings),
            ("xl/worksheets/sheet1.xml", sheet),
        ):
            with archive.open(name, "w", force_zip64=True) as out:
                for chunk in [part] if isinstance(part, bytes) else part:
                    out.write(chunk)
    return path


def sheet_xml(rows: Iterable[bytes], *, head: bytes = b"", tail: bytes = b"") -> Iterable[bytes]:
    """A worksheet: ``head`` (e.g. a ``<dimension/>``), ``<sheetData>`` with ``rows``, ``tail``
    (e.g. ``<mergeCells>``)."""
    yield f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{MAIN}">'.encode()
    yield head + b"<sheetData>"
    yield from rows
    yield b"</sheetData>" + tail + b"</worksheet>"


def shared_strings(strings: Iterable[str]) -> bytes:
    items = "".join(f"<si><t>{escape(s)}</t></si>" for s in strings)
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="{MAIN}">{items}</sst>'.encode()
    )


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def inline(ref: str, text: str) -> str:
    """A cell holding ``text`` as an inline string."""
    return f'<c r="{ref}" t="inlineStr"><is><t>{escape(text)}</t></is></c>'


def row(number: int, *cells: str) -> bytes:
    return f'<row r="{number}">{"".join(cells)}</row>'.encode()


HEADER = row(
    1, inline("A1", "事项编号"), inline("B1", "状态"), inline("C1", "完成日期"), inline("D1", "佐证材料")
)


def repeated(chunk: bytes, total: int, size: int = 1 << 20) -> Iterable[bytes]:
    """``total`` bytes of ``chunk`` repeated, in pieces of about ``size`` bytes."""
    piece = chunk * max(1, size // len(chunk))
    written = 0
    while written + len(piece) <= total:
        yield piece
        written += len(piece)
    rest = (total - written) // len(chunk)
    if rest:
        yield chunk * rest


# -- the files of issue 26 ---------------------------------------------------------------------------


def empty_rows(path: Path, megabytes: int = 150) -> Path:
    """The header, then ``megabytes`` MB of ``<row/>``: a file of about a thousandth of that."""
    return workbook(path, sheet_xml([HEADER, *repeated(b"<row/>", megabytes << 20)]))


def string_bomb(path: Path, megabytes: int = 1024) -> Path:
    """One shared string of ``megabytes`` MB (the default: 1 GiB, a file of about 1 MB)."""
    strings = [
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="{MAIN}"><si><t>'.encode(),
        *repeated(b"A", megabytes << 20),
        b"</t></si></sst>",
    ]
    sheet = sheet_xml([HEADER, row(2, '<c r="A2" t="s"><v>0</v></c>')])
    return workbook(path, sheet, strings)


def huge_dimension(path: Path) -> Path:
    """A file of a few KB that declares every cell of the sheet (A1:XFD1048576) in use, with a cell
    in its last row: a reader that trusts the dimension makes a million rows of 16,384 cells."""
    last = row(1048576, inline("B1048576", "已完成"))
    return workbook(path, sheet_xml([HEADER, last], head=b'<dimension ref="A1:XFD1048576"/>'))


def last_row(path: Path) -> Path:
    """The header, then one cell in the sheet's very last row (1,048,576)."""
    return workbook(path, sheet_xml([HEADER, row(1048576, inline("B1048576", "已完成"))]))


def wide_rows(path: Path, rows: int, cells: int) -> Path:
    """The header, then ``rows`` rows of ``cells`` empty cells (``<c/>``) each: a few KB compressed."""
    body = [b"<row>" + b"<c/>" * cells + b"</row>"] * rows
    return workbook(path, sheet_xml([HEADER, *body]))


def numbers(path: Path, *values: str, column: str = "A", style: int = 0) -> Path:
    """The header, then one row per value: ``column`` (A or C) holds it as a number cell
    (``<v>1E300</v>``, style ``style``: 1 is a date format), B says 已完成."""
    rows = [HEADER]
    for n, value in enumerate(values, 2):
        cells = {column: f'<c r="{column}{n}" s="{style}"><v>{value}</v></c>', "B": inline(f"B{n}", "已完成")}
        rows.append(row(n, *(cells[k] for k in sorted(cells))))
    return workbook(path, sheet_xml(rows))
