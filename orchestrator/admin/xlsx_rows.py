"""The rows of an XLSX workbook's first sheet, read as a stream, counting what is read.

An .xlsx file is a zip of XML parts, and a hostile one is small on disk and huge once read:
millions of empty ``<row/>``, one shared string of a gibibyte, a ``<dimension>`` that claims every
cell of the sheet. The parts are opened and parsed within limits by ``xlsx_parts``; here the sheet
is read row by row, and what is read is counted as it is read: rows, empty ones included
(``max_rows``), cells (``MAX_CELLS``), row and column numbers within Excel's own (1,048,576 ×
16,384) and in order, a cell's text at most Excel's 32,767 characters. The first limit reached
stops the reading (``SheetProblem``: a line and a message, which the caller turns into
``FILE:LINE: message``). The dimension is never read: a row is as wide as its cells, and a missing
row is simply absent.

A cell's value is text: numbers without a spurious ``.0``, a number in a date format as
``YYYY-MM-DD`` (openpyxl's rules for date formats and Excel's two calendars), or a ``BadCell``
saying why the cell cannot be used — a number that is no sane value (``1E300``, ``inf``, beyond
the 2^53 a spreadsheet holds exactly), an error value (``#N/A``), a formula without a saved value.
Merged ranges (``merged``) are known once the rows have been read: they follow the rows in the file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from openpyxl.utils.cell import column_index_from_string, get_column_letter, range_boundaries
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel

from orchestrator.admin.xlsx_parts import (
    MAX_CELL_CHARS,
    START,
    TEXT,
    Parts,
    SheetProblem,
    date_styles,
    digits,
    open_archive,
    shared_strings,
    workbook,
)

MAX_CELLS = 2_000_000  # cells read in the sheet, empty ones included
MAX_MERGED = 100_000  # merged ranges
MAX_ROW = 1_048_576  # Excel's last row
MAX_COLUMN = 16_384  # Excel's last column (XFD)
LARGEST = 2**53  # beyond this a spreadsheet number is no longer an exact integer


@dataclass(frozen=True)
class BadCell:
    """A cell whose value cannot be used, and why (``str()``: ``cell E5: …``)."""

    ref: str
    why: str

    def __str__(self) -> str:
        return f"单元格 {self.ref}：{self.why}"


Value = str | BadCell


@dataclass
class Sheet:
    """``rows``: (row number, {column index from 0: value}) for each row with a cell; ``merged``:
    (min column, min row, max column, max row) of each merged range, once ``rows`` is exhausted."""

    rows: Iterator[tuple[int, dict[int, Value]]]
    merged: list[tuple[int, int, int, int]] = field(default_factory=list)


def read_sheet(data: bytes, *, max_rows: int) -> Sheet:
    """The first worksheet of the XLSX file ``data``; ``SheetProblem`` when it is unreadable or too big."""
    archive = open_archive(data)
    parts = Parts(archive, len(data))
    sheet_path, strings_path, styles_path, date1904 = workbook(parts)
    strings = shared_strings(parts, strings_path) if strings_path else []
    dates = date_styles(parts, styles_path) if styles_path else set()
    epoch = CALENDAR_MAC_1904 if date1904 else CALENDAR_WINDOWS_1900
    sheet = Sheet(iter(()))
    sheet.rows = _SheetReader(strings, dates, epoch, max_rows, sheet.merged).rows(parts.events(sheet_path))
    return sheet


# -- the sheet -----------------------------------------------------------------------------------


class _SheetReader:
    """The sheet's events → rows, counting rows and cells; merged ranges into ``merged``."""

    def __init__(
        self, strings: list[str], dates: set[int], epoch: datetime, max_rows: int, merged: list
    ) -> None:
        self.strings, self.dates, self.epoch, self.max_rows = strings, dates, epoch, max_rows
        self.merged = merged
        self.rows_read = self.cells_read = 0
        self.row = 0  # the current (or last) row's number
        self.column = 0  # the last cell's column in the current row

    def rows(self, events: Iterator[tuple]) -> Iterator[tuple[int, dict[int, Value]]]:
        values: dict[int, Value] | None = None
        cell: _Cell | None = None
        in_data = False
        for kind, name, attrs in events:
            if kind == TEXT:
                if cell is not None and cell.taking:
                    cell.add(name)
            elif kind == START:
                if name == "sheetData":
                    in_data = True
                elif not in_data:
                    if name == "mergeCell":
                        self._merge(attrs.get("ref", ""))
                elif name == "row":
                    self._start_row(attrs.get("r"))
                    values = {}
                elif name == "c" and values is not None:
                    cell = self._start_cell(attrs)
                elif cell is not None:
                    cell.start(name)
            elif name == "sheetData":
                in_data = False
            elif cell is not None and name == "c":
                value = cell.value(self.strings, self.dates, self.epoch)
                if value and values is not None:
                    values[cell.column - 1] = value
                cell = None
            elif cell is not None:
                cell.end(name)
            elif name == "row" and values is not None:
                if values:
                    yield self.row, values
                values = None

    def _start_row(self, r: str | None) -> None:
        self.rows_read += 1
        if self.rows_read > self.max_rows + 1:  # (the header row aside)
            raise SheetProblem(self.row + 1, f"超过 {self.max_rows:,} 行（空行也计算在内）：未读取")
        number = self.row + 1 if r is None else digits(r, -1)
        if not 0 < number <= MAX_ROW:
            raise SheetProblem(self.row + 1, f"行号「{r[:20] if r else r}」无效（行号为 1 至 {MAX_ROW:,}）")
        if number <= self.row:
            raise SheetProblem(number, f"第 {number} 行出现在第 {self.row} 行之后：行的顺序错乱")
        self.row, self.column = number, 0

    def _start_cell(self, attrs: dict) -> _Cell:
        self.cells_read += 1
        if self.cells_read > MAX_CELLS:
            raise SheetProblem(self.row, f"超过 {MAX_CELLS:,} 个单元格（空单元格也计算在内）：未读取")
        ref = attrs.get("r")
        column = self.column + 1 if ref is None else _column(ref)
        if column > self.column and column <= MAX_COLUMN:  # the usual case, first
            self.column = column
            return _Cell(self.row, column, attrs.get("t", "n"), digits(attrs.get("s")))
        if not 0 < column <= MAX_COLUMN:
            if ref is None:
                raise SheetProblem(self.row, f"一行超过 {MAX_COLUMN:,} 个单元格（列为 A 至 XFD）")
            raise SheetProblem(self.row, f"单元格引用「{ref[:20]}」无效（列为 A 至 XFD）")
        raise SheetProblem(self.row, f"单元格 {ref} 出现在第 {self.column} 列之后：单元格顺序错乱")

    def _merge(self, ref: str) -> None:
        if len(self.merged) >= MAX_MERGED:
            raise SheetProblem(self.row, f"合并单元格超过 {MAX_MERGED:,} 处：未读取")
        try:
            bounds = range_boundaries(ref)
        except (ValueError, TypeError):
            return  # a range that names nothing merges nothing
        if None not in bounds:
            self.merged.append(bounds)


def _column(ref: str) -> int:
    """The column of a cell reference (``"AB12"`` → 28); 0 when it names none."""
    letters = ref.rstrip("0123456789")
    column = _COLUMNS.get(letters)
    if column is None:
        if not (0 < len(letters) <= 3 and letters.isalpha() and letters.isascii()):
            return 0
        column = column_index_from_string(letters.upper())
        if len(_COLUMNS) < MAX_COLUMN:
            _COLUMNS[letters] = column
    return column


_COLUMNS: dict[str, int] = {}  # letters → column, as met (at most Excel's 16,384 of them)


@dataclass(slots=True)
class _Cell:
    """One ``<c>`` being read: its value text (``<v>``), inline text (``<is><t>``), whether it has a formula."""

    row: int
    column: int
    type: str
    style: int
    text: list[str] | None = None  # (made for the cells that have any: most cells are short)
    length: int = 0
    taking: bool = False
    formula: bool = False
    inline: bool = False
    phonetic: int = 0

    @property
    def ref(self) -> str:
        return f"{get_column_letter(self.column)}{self.row}"

    def start(self, name: str) -> None:
        if name == "f":
            self.formula = True
        elif name == "is":
            self.inline = True
        elif name == "rPh":
            self.phonetic += 1
        elif name == ("t" if self.inline else "v") and not self.phonetic:
            self.taking = True

    def end(self, name: str) -> None:
        if name in ("v", "t"):
            self.taking = False
        elif name == "rPh":
            self.phonetic -= 1

    def add(self, text: str) -> None:
        self.length += len(text)
        if self.length > MAX_CELL_CHARS:
            raise SheetProblem(self.row, f"单元格 {self.ref} 超过 {MAX_CELL_CHARS:,} 个字符")
        if self.text is None:
            self.text = []
        self.text.append(text)

    def value(self, strings: list[str], dates: set[int], epoch: datetime) -> Value:
        text = "".join(self.text) if self.text else ""
        kind = self.type
        if kind == "inlineStr":
            return text
        if not text:
            return (
                BadCell(
                    self.ref,
                    "是公式，但文件中没有它的计算结果（请在 Excel 或 WPS 中打开并保存，或直接填写值）",
                )
                if self.formula
                else ""
            )
        if kind == "s":
            index = digits(text, -1)
            if not 0 <= index < len(strings):
                return BadCell(self.ref, f"引用了文件中不存在的第 {text[:20]} 段文字")
            return strings[index]
        if kind == "str":
            return text
        if kind == "b":
            return {"1": "TRUE", "0": "FALSE"}.get(text.strip(), text)
        if kind == "e":
            return BadCell(self.ref, f"显示错误值 {text[:20]}")
        if kind == "d":
            return _iso_date(text)
        return self._number(text, dates, epoch)

    def _number(self, text: str, dates: set[int], epoch: datetime) -> Value:
        try:
            number = float(text)
        except ValueError:
            return BadCell(self.ref, f"标为数字，但「{text[:40]}」不是数字")
        if not math.isfinite(number):
            return BadCell(self.ref, f"{text[:40]} 不是可用的数字（无穷大或非数字）")
        if abs(number) > LARGEST:
            return BadCell(self.ref, f"数字 {text[:40]} 太大（超过 2^53）")
        if self.style in dates:
            first = 0 if epoch == CALENDAR_MAC_1904 else 1  # 1904-01-01 is day 0; 1900-01-01 day 1
            if not first <= number < 2958466:  # … 9999-12-31
                return BadCell(self.ref, f"设为日期格式，但数字 {text[:40]} 不是有效日期")
            try:
                day = from_excel(number, epoch)
            except (ValueError, OverflowError):
                return BadCell(self.ref, f"设为日期格式，但数字 {text[:40]} 不是有效日期")
            return day.date().isoformat() if isinstance(day, datetime) else str(day)
        if number.is_integer():
            return str(int(number))
        return repr(number)


def _iso_date(text: str) -> str:
    """A ``t="d"`` cell (ISO 8601): its day when it is a date or a date-time, else the text."""
    try:
        return datetime.fromisoformat(text.strip()).date().isoformat()
    except ValueError:
        try:
            return date.fromisoformat(text.strip()).isoformat()
        except ValueError:
            return text
