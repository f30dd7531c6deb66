"""The parts of an XLSX archive, opened within limits and parsed as streams of XML events.

``xlsx_rows`` reads the sheet through these. Nothing here believes what the file says of itself:

- the archive: a central directory of at most ``MAX_DIRECTORY`` bytes (checked before ``zipfile``
  parses it); a part is opened only if its expanded size — the zip's own record of it, which
  ``zipfile`` enforces while reading — is at most ``RATIO`` times the file's size (``MIN_PART`` at
  least, ``MAX_PART`` at most), and the bytes read are counted against that too;
- the XML: parsed by expat as a stream of events (no tree is kept), no DOCTYPE (so no entity),
  no single token longer than ``MAX_TOKEN`` bytes;
- the workbook's own parts: which sheet is first, the shared strings (their number and their
  characters counted), which cell formats show dates.

A limit reached, or a part that cannot be read, is a ``SheetProblem`` (a line and a message).
"""

from __future__ import annotations

import io
import posixpath
import struct
import zipfile
import zlib
from collections.abc import Iterator
from xml.parsers import expat

from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format

RATIO = 100  # a part may expand to this many times the size of the whole file ...
MIN_PART = 8 << 20  # ... or to this many bytes, whichever is more ...
MAX_PART = 256 << 20  # ... never to more than this
MAX_DIRECTORY = 1 << 20  # bytes of the zip's central directory (about 20,000 parts)
MAX_TOKEN = 1 << 20  # bytes of one XML tag, comment or other token
MAX_CELL_CHARS = 32_767  # Excel's own limit for the text of a cell
MAX_STRINGS = 1_000_000  # shared strings
MAX_STRING_CHARS = 32 << 20  # characters of all shared strings together
MAX_STYLES = 100_000  # cell formats, number formats, sheets, relationships
CHUNK = 64 << 10
START, END, TEXT = 1, 2, 3
# what zipfile raises for a part it cannot give: a bad CRC or deflate stream, encryption (RuntimeError),
# an unknown compression, a truncated file
UNREADABLE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    RuntimeError,
    NotImplementedError,
    OSError,
    EOFError,
    ValueError,
)


NOT_XLSX = "不是可以读取的 XLSX 工作簿"


def damaged(exc: BaseException) -> str:
    """Why a part could not be read: encrypted (zipfile's RuntimeError says so), or damaged."""
    return (
        "文件已加密"
        if isinstance(exc, RuntimeError) and "encrypt" in str(exc).lower()
        else "文件已损坏或不完整"
    )


class SheetProblem(Exception):
    """The workbook cannot be read (or read further): ``line`` in the sheet (1 for the file)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


# -- the archive and its parts ----------------------------------------------------------------------


def open_archive(data: bytes) -> zipfile.ZipFile:
    """``data`` as a zip, its central directory checked for size before ``zipfile`` reads it."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    if end < 0 or end + 22 > len(data):
        raise SheetProblem(1, f"{NOT_XLSX}（不是 zip 压缩文件）")
    (directory,) = struct.unpack_from("<L", data, end + 12)
    if directory > MAX_DIRECTORY:  # ZIP64's 0xFFFFFFFF included: an .xlsx never needs it
        raise SheetProblem(1, f"{NOT_XLSX}（zip 目录大于 {size(MAX_DIRECTORY)}）")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except UNREADABLE as exc:
        raise SheetProblem(1, f"{NOT_XLSX}（{damaged(exc)}）") from None


class Parts:
    """Opens the parts of ``archive`` within their limit and parses them as streams of events."""

    def __init__(self, archive: zipfile.ZipFile, file_size: int) -> None:
        self.archive = archive
        self.file_size = file_size
        self.limit = min(MAX_PART, max(MIN_PART, RATIO * file_size))

    def has(self, path: str) -> bool:
        try:
            self.archive.getinfo(path)
        except KeyError:
            return False
        return True

    def events(self, path: str) -> Iterator[tuple]:
        """(START, local name, attributes), (END, local name, None), (TEXT, text, None) for ``path``."""
        try:
            info = self.archive.getinfo(path)
        except KeyError:
            raise SheetProblem(1, f"{NOT_XLSX}（缺少 {path}）") from None
        if info.file_size > self.limit:
            raise SheetProblem(
                1,
                f"{path} 解压后为 {size(info.file_size)}，而文件只有 {size(self.file_size)}"
                f"（最多 {size(self.limit)}）：不是督办系统能读取的表格",
            )
        events: list[tuple] = []
        append, local = events.append, _Names()
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.buffer_text = True
        parser.StartElementHandler = lambda name, attrs: append((START, local[name], attrs))
        parser.EndElementHandler = lambda name: append((END, local[name], None))
        parser.CharacterDataHandler = lambda text: append((TEXT, text, None))
        parser.StartDoctypeDeclHandler = _no_doctype
        read = quiet = 0  # bytes read; bytes read since the last event (one token that long: refused)
        try:
            with self.archive.open(info) as stream:
                while chunk := stream.read(CHUNK):
                    read += len(chunk)
                    if read > self.limit:  # (zipfile stops at the recorded size: belt and braces)
                        raise SheetProblem(1, f"{path} 解压后大于 {size(self.limit)}：未读取")
                    parser.Parse(chunk, False)
                    quiet = 0 if events else quiet + len(chunk)
                    if quiet > MAX_TOKEN:
                        raise SheetProblem(1, f"{path}：有一个 XML 标记大于 {size(MAX_TOKEN)}：未读取")
                    yield from events
                    events.clear()
            parser.Parse(b"", True)
        except expat.ExpatError as exc:
            raise SheetProblem(
                1, f"{NOT_XLSX}（{path} 的 XML 有误：第 {exc.lineno} 行第 {exc.offset} 列）"
            ) from None
        except UNREADABLE as exc:  # a broken or encrypted part, a compression zipfile does not know
            raise SheetProblem(1, f"{NOT_XLSX}（{path}：{damaged(exc)}）") from None
        yield from events


def _no_doctype(*_args) -> None:
    raise SheetProblem(1, f"{NOT_XLSX}（XML 中有 DOCTYPE 声明）")


class _Names(dict):
    """``"namespace name"`` → ``name``, remembered (a part uses a handful of names, millions of times)."""

    def __missing__(self, name: str) -> str:
        local = name.rpartition(" ")[2]
        if len(self) < 1000:
            self[name] = local
        return local


def size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB" if n >= 1 << 20 else f"{max(1, round(n / 1024))} KB"


# -- the workbook: which parts, and the things cells need ---------------------------------------------


def _relationships(parts: Parts, path: str) -> dict[str, tuple[str, str]]:
    """Id → (type, target path) of the relationships part ``path`` (targets resolved against it)."""
    base = posixpath.dirname(posixpath.dirname(path))  # "xl/_rels/workbook.xml.rels" → "xl"
    found: dict[str, tuple[str, str]] = {}
    if not parts.has(path):
        return found
    for kind, name, attrs in parts.events(path):
        if kind == START and name == "Relationship" and len(found) < MAX_STYLES:
            target = attrs.get("Target", "")
            resolved = (
                target.lstrip("/")
                if target.startswith("/")
                else posixpath.normpath(posixpath.join(base, target))
            )
            found[attrs.get("Id", "")] = (attrs.get("Type", ""), resolved)
    return found


def workbook(parts: Parts) -> tuple[str, str | None, str | None, bool]:
    """(first worksheet, shared strings or None, styles or None, 1904 calendar) from the workbook."""
    office = [
        t for kind, t in _relationships(parts, "_rels/.rels").values() if kind.endswith("/officeDocument")
    ]
    book = office[0] if office else "xl/workbook.xml"
    folder, name = posixpath.split(book)
    rels = _relationships(parts, posixpath.join(folder, "_rels", f"{name}.rels"))
    sheets: list[str] = []
    date1904 = False
    for kind, tag, attrs in parts.events(book):
        if kind != START:
            continue
        if tag == "sheet" and len(sheets) < MAX_STYLES:
            sheets.extend(v for k, v in attrs.items() if k.endswith("relationships id"))
        elif tag == "workbookPr":
            date1904 = attrs.get("date1904", "").lower() in ("1", "true")
    worksheets = [rels[s][1] for s in sheets if s in rels and rels[s][0].endswith("/worksheet")]
    if not worksheets:
        raise SheetProblem(1, f"{NOT_XLSX}（没有工作表）")

    def part(suffix: str) -> str | None:
        return next((t for kind, t in rels.values() if kind.endswith(suffix) and parts.has(t)), None)

    return worksheets[0], part("/sharedStrings"), part("/styles"), date1904


def shared_strings(parts: Parts, path: str) -> list[str]:
    """The shared strings, in order (the phonetic runs ``<rPh>`` left out)."""
    strings: list[str] = []
    pieces: list[str] | None = None
    phonetic = 0
    taking = False
    total = 0
    for kind, name, _ in parts.events(path):
        if kind == TEXT:
            if taking and pieces is not None:
                pieces.append(name)
                total += len(name)
                if total > MAX_STRING_CHARS:
                    raise SheetProblem(1, f"{path}：文字共超过 {MAX_STRING_CHARS:,} 个字符：未读取")
        elif kind == START:
            if name == "si":
                pieces = []
            elif name == "rPh":
                phonetic += 1
            elif name == "t":
                taking = not phonetic
        elif name == "t":
            taking = False
        elif name == "rPh":
            phonetic -= 1
        elif name == "si" and pieces is not None:
            text = "".join(pieces)
            if len(text) > MAX_CELL_CHARS:
                raise SheetProblem(1, f"{path}：有一段文字超过 {MAX_CELL_CHARS:,} 个字符：未读取")
            strings.append(text)
            pieces = None
            if len(strings) > MAX_STRINGS:
                raise SheetProblem(1, f"{path}：文字超过 {MAX_STRINGS:,} 段：未读取")
    return strings


def date_styles(parts: Parts, path: str) -> set[int]:
    """The indexes of the cell formats (``s="N"``) whose number format shows a date or a time."""
    formats: dict[int, str] = {}
    cell_formats: list[int] = []
    inside = False
    for kind, name, attrs in parts.events(path):
        if kind == START:
            if name == "numFmt" and len(formats) < MAX_STYLES:
                formats[digits(attrs.get("numFmtId"))] = attrs.get("formatCode", "")
            elif name == "cellXfs":
                inside = True
            elif name == "xf" and inside:
                cell_formats.append(digits(attrs.get("numFmtId")))
                if len(cell_formats) > MAX_STYLES:
                    raise SheetProblem(1, f"{path}：单元格格式超过 {MAX_STYLES:,} 种：未读取")
        elif kind == END and name == "cellXfs":
            inside = False
    return {
        index
        for index, number in enumerate(cell_formats)
        if is_date_format(formats.get(number) or BUILTIN_FORMATS.get(number) or "")
    }


def digits(text: str | None, default: int = 0) -> int:
    return int(text) if text and text.isdigit() and len(text) < 10 else default
