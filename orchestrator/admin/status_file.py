"""The file ``duban import-status`` reads: rows by column name, read within limits.

The file must be a regular file (not a device, a FIFO or a directory: ``/dev/zero`` would never
end, a FIFO would wait forever) of at most ``MAX_FILE_BYTES``. It is XLSX when it is a zip
(``xlsx_rows``: streamed, every part and count limited) and CSV otherwise (UTF-8, a byte-order
mark allowed; a quoted field left open is an error, not the rest of the file merged into it).
Either way at most ``MAX_ROWS`` rows are read — empty rows count, since reading them costs too —
and a row has at most ``MAX_COLUMNS`` cells. The first limit reached stops the reading with one
``FILE:LINE: message`` (``ImportProblems``, exit 2).

A row whose cell, in a column that is read, cannot be used — an XLSX number that is no sane value,
an error value, a formula without a saved value, a cell inside merged cells other than the first —
carries that as its ``problem``: the import names it at its line.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from openpyxl.utils.cell import get_column_letter

from orchestrator.admin.xlsx_rows import BadCell, SheetProblem, read_sheet
from workflows.errors import DefinitionError, DubanError, Problem

MAX_FILE_BYTES = 32 << 20
MAX_ROWS = 100_000
MAX_COLUMNS = 16_384
COLUMNS = {
    "ref": ("ref", "id", "事项编号", "编号"),
    "task": ("task", "任务编号", "任务"),
    "unit": ("unit", "责任单位编号", "单位编号"),
    "occurrence": ("occurrence", "期次"),
    "state": ("state", "状态"),
    "done_on": ("done_on", "done_date", "done date", "完成日期"),
    "evidence": ("evidence", "佐证材料", "佐证"),
    "reason": ("reason", "理由"),
}
WORDS = {"ref": "事项编号", "task": "任务编号", "unit": "责任单位编号", "occurrence": "期次", "state": "状态",
         "done_on": "完成日期", "evidence": "佐证材料", "reason": "理由"}  # fmt: skip


class ImportProblems(DefinitionError):
    """The file cannot be imported: bad input (exit 2), every problem at its line."""

    exit_code = 2


@dataclass(frozen=True)
class Row:
    """One data row: its line (the sheet's row number), its values by column key, and what makes a
    cell of it unusable (``problem``), if anything."""

    line: int
    values: dict[str, str]
    problem: str | None = None


@dataclass(frozen=True)
class StatusFile:
    rows: list[Row]
    sha256: str  # of the bytes read: what the audit event names


Cells = Mapping[int, "str | BadCell"]  # column index (from 0) → value


def read_status_file(path: Path) -> StatusFile:
    """The data rows of ``path`` by column name (``COLUMNS``' keys); ``ImportProblems`` if unreadable."""
    name = str(path)
    data = read_bounded(path)
    try:
        if data[:2] == b"PK":  # XLSX is a zip
            sheet = read_sheet(data, max_rows=MAX_ROWS)
            rows, columns = _rows(name, sheet.rows)
            rows = _merged(rows, columns, sheet.merged)
        else:
            rows, _ = _rows(name, _csv_rows(name, data))
    except SheetProblem as exc:
        raise ImportProblems([Problem(name, exc.line, exc.message)]) from None
    return StatusFile(rows, hashlib.sha256(data).hexdigest())


def read_bounded(path: Path) -> bytes:
    """The bytes of the regular file ``path``, at most ``MAX_FILE_BYTES`` of them (``DubanError`` else).

    Opened without blocking (a FIFO would wait for a writer), then checked to be a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise DubanError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ImportProblems([Problem(str(path), 1, "not a regular file: give a CSV or XLSX file")])
    with os.fdopen(fd, "rb") as file:
        try:
            data = file.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise DubanError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        message = f"larger than {MAX_FILE_BYTES >> 20} MB: split it, or leave out the rows without a state"
        raise ImportProblems([Problem(str(path), 1, message)])
    return data


def _rows(name: str, table: Iterator[tuple[int, Cells]]) -> tuple[list[Row], dict[str, int]]:
    """The data rows after the header, and the columns read (key → index from 0)."""
    header_line, header = next(table, (1, {}))
    columns = _columns(name, header_line, header)
    rows = []
    for line, cells in table:
        if not any(isinstance(v, BadCell) or v.strip() for v in cells.values()):
            continue
        values, bad = {}, {}
        for key, index in columns.items():
            value = cells.get(index, "")
            if isinstance(value, BadCell):
                bad[key], value = value, ""
            values[key] = value.strip()
        # a bad state cell is always a problem; another bad cell only where the row changes something
        key = "state" if "state" in bad else next(iter(bad), None) if values.get("state") else None
        rows.append(Row(line, values, f"{key} ({WORDS[key]}): {bad[key]}" if key else None))
    return rows, columns


def _columns(name: str, line: int, cells: Cells) -> dict[str, int]:
    found: dict[str, int] = {}
    header = [(i, v) for i, v in sorted(cells.items()) if isinstance(v, str)]
    for index, cell in header:
        text = cell.strip().lstrip("\ufeff").lower()
        for key, names in COLUMNS.items():
            if text in names and key not in found:
                found[key] = index
    missing = []
    if "state" not in found:
        missing.append("state (状态)")
    if "ref" not in found and "task" not in found:
        missing.append("ref (事项编号) or task (任务编号) with unit (责任单位编号)")
    if missing:
        shown = ", ".join(h[:40] for _, h in header[:30] if h.strip()) or "nothing"
        message = f"header: missing column {' and '.join(missing)} (the header has: {shown})"
        raise ImportProblems([Problem(name, line, message)])
    return found


def _merged(
    rows: list[Row], columns: Mapping[str, int], merged: list[tuple[int, int, int, int]]
) -> list[Row]:
    """Rows that lie in a merged range, below its first row, on a column that is read: Excel shows
    the first row's value there, but the cell holds nothing of its own — the row says so."""
    if not merged or not rows:
        return rows
    lines = [r.line for r in rows]
    found: dict[int, str] = {}
    for min_col, min_row, max_col, max_row in merged:
        keys = [k for k, i in columns.items() if min_col <= i + 1 <= max_col]
        if not keys:
            continue
        span = f"{get_column_letter(min_col)}{min_row}:{get_column_letter(max_col)}{max_row}"
        first = f"{get_column_letter(min_col)}{min_row}"
        for position in range(bisect.bisect_right(lines, min_row), bisect.bisect_right(lines, max_row)):
            if position not in found and rows[position].problem is None:
                key = keys[0]
                cell = f"{get_column_letter(columns[key] + 1)}{rows[position].line}"
                found[position] = (
                    f"{key} ({WORDS[key]}): cell {cell} is in the merged cells {span}: only {first} holds"
                    " a value (unmerge them and fill in each row)"
                )
    return [Row(r.line, r.values, found[i]) if i in found else r for i, r in enumerate(rows)]


def _csv_rows(name: str, data: bytes) -> Iterator[tuple[int, Cells]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportProblems(
            [Problem(name, 1, f"not UTF-8 text (byte {exc.start}): save it as CSV UTF-8")]
        ) from None
    del data
    start = 1  # the line the record being read starts on
    commas = 0  # commas read since that line: more cells than that the record cannot have

    def lines() -> Iterator[str]:
        nonlocal commas
        for line in io.StringIO(text, newline=""):
            commas += line.count(",")
            if commas >= MAX_COLUMNS:
                raise ImportProblems([Problem(name, start, f"more than {MAX_COLUMNS:,} columns")])
            yield line

    reader = csv.reader(lines(), strict=True)
    records = 0
    try:
        for cells in reader:
            records += 1
            if records > MAX_ROWS + 1:
                raise ImportProblems(
                    [Problem(name, start, f"more than {MAX_ROWS:,} rows (empty ones count too)")]
                )
            yield start, dict(enumerate(cells))
            start, commas = reader.line_num + 1, 0
    except csv.Error as exc:
        raise ImportProblems([Problem(name, start, _csv_error(exc, start, reader.line_num))]) from None


def _csv_error(exc: csv.Error, start: int, now: int) -> str:
    text = str(exc)
    if "unexpected end of data" in text or ("EOF" in text and "quot" in text):
        return f'a quoted field opened on this line is never closed (read up to line {now}): close its "'
    return f"not valid CSV: {text}"
