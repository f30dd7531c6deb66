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

Every message is one zh-CN line naming the column as the file's header writes it (列「单位」); the
file's columns are found by their names in English or Chinese (``COLUMNS``).
"""

from __future__ import annotations

import bisect
import csv
import errno
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
    # a unit id or the unit's exact name: the attachment's 责任单位编号 comes before its 责任单位
    "unit": ("unit", "责任单位编号", "单位编号", "责任单位", "单位"),
    "occurrence": ("occurrence", "期次"),
    "state": ("state", "状态"),
    "done_on": ("done_on", "done_date", "done date", "完成日期", "办结日期"),
    "evidence": ("evidence", "佐证材料", "佐证"),
    "reason": ("reason", "理由", "免除理由"),
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
    headers: dict[str, str]  # column key → its name in the file's header

    def column(self, key: str) -> str:
        """``列「状态」``: a column as the file names it (its Chinese name when the file has none)."""
        return column_name(self.headers, key)


def column_name(headers: Mapping[str, str], key: str) -> str:
    return f"列「{headers.get(key) or WORDS[key]}」"


Cells = Mapping[int, "str | BadCell"]  # column index (from 0) → value


def read_status_file(path: Path) -> StatusFile:
    """The data rows of ``path`` by column name (``COLUMNS``' keys); ``ImportProblems`` if unreadable."""
    name = str(path)
    data = read_bounded(path)
    try:
        if data[:2] == b"PK":  # XLSX is a zip
            sheet = read_sheet(data, max_rows=MAX_ROWS)
            rows, columns, headers = _rows(name, sheet.rows)
            rows = _merged(rows, columns, headers, sheet.merged)
        else:
            rows, _, headers = _rows(name, _csv_rows(name, data))
    except SheetProblem as exc:
        raise ImportProblems([Problem(name, exc.line, exc.message)]) from None
    return StatusFile(rows, hashlib.sha256(data).hexdigest(), headers)


def read_bounded(path: Path) -> bytes:
    """The bytes of the regular file ``path``, at most ``MAX_FILE_BYTES`` of them (``DubanError`` else).

    Opened without blocking (a FIFO would wait for a writer), then checked to be a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise DubanError(f"{path}：无法读取：{_os_error(exc)}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        message = "不是普通文件（是设备、管道或文件夹）：请给出一个 CSV 或 XLSX 文件"
        raise ImportProblems([Problem(str(path), 1, message)])
    with os.fdopen(fd, "rb") as file:
        try:
            data = file.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise DubanError(f"{path}：无法读取：{_os_error(exc)}") from None
    if len(data) > MAX_FILE_BYTES:
        message = f"文件大于 {MAX_FILE_BYTES >> 20} MB：请拆分成几个文件，或删去未填写状态的行"
        raise ImportProblems([Problem(str(path), 1, message)])
    return data


_OS_ERRORS = {
    errno.ENOENT: "文件不存在",
    errno.EACCES: "没有读取权限",
    errno.EPERM: "没有读取权限",
    errno.EISDIR: "这是一个文件夹",
    errno.ENOTDIR: "路径中有一级不是文件夹",
    errno.EIO: "读取出错（磁盘或网络存储故障）",
}


def _os_error(exc: OSError) -> str:
    return _OS_ERRORS.get(exc.errno or 0) or f"系统错误 {exc.errno}（{exc.strerror or exc}）"


def _rows(name: str, table: Iterator[tuple[int, Cells]]) -> tuple[list[Row], dict[str, int], dict[str, str]]:
    """The data rows after the header, the columns read (key → index from 0) and their names."""
    header_line, header = next(table, (1, {}))
    columns = _columns(name, header_line, header)
    headers = {key: str(header[index]).strip().lstrip("\ufeff")[:40] for key, index in columns.items()}
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
        rows.append(Row(line, values, f"{column_name(headers, key)}：{bad[key]}" if key else None))
    return rows, columns, headers


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
        missing.append("列「状态」")
    if "ref" not in found and "task" not in found:
        missing.append("列「事项编号」（或列「任务编号」与列「责任单位编号」）")
    if missing:
        shown = "、".join(f"「{h.strip()[:40]}」" for _, h in header[:30] if h.strip()) or "空白"
        message = f"表头缺少{'和'.join(missing)}（第 {line} 行的表头是：{shown}）"
        raise ImportProblems([Problem(name, line, message)])
    return found


def _merged(
    rows: list[Row],
    columns: Mapping[str, int],
    headers: Mapping[str, str],
    merged: list[tuple[int, int, int, int]],
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
                    f"{column_name(headers, key)}：单元格 {cell} 在合并单元格 {span} 中，只有 {first} 有值"
                    "（请取消合并，逐行填写）"
                )
    return [Row(r.line, r.values, found[i]) if i in found else r for i, r in enumerate(rows)]


def _csv_rows(name: str, data: bytes) -> Iterator[tuple[int, Cells]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"不是 UTF-8 编码的文本（第 {exc.start + 1} 个字节）：请另存为“CSV UTF-8（逗号分隔）”"
        raise ImportProblems([Problem(name, 1, message)]) from None
    del data
    start = 1  # the line the record being read starts on
    commas = 0  # commas read since that line: more cells than that the record cannot have

    def lines() -> Iterator[str]:
        nonlocal commas
        for line in io.StringIO(text, newline=""):
            commas += line.count(",")
            if commas >= MAX_COLUMNS:
                raise ImportProblems([Problem(name, start, f"超过 {MAX_COLUMNS:,} 列")])
            yield line

    reader = csv.reader(lines(), strict=True)
    records = 0
    try:
        for cells in reader:
            records += 1
            if records > MAX_ROWS + 1:
                raise ImportProblems([Problem(name, start, f"超过 {MAX_ROWS:,} 行（空行也计算在内）")])
            yield start, dict(enumerate(cells))
            start, commas = reader.line_num + 1, 0
    except csv.Error as exc:
        raise ImportProblems([Problem(name, start, _csv_error(exc, start, reader.line_num))]) from None


def _csv_error(exc: csv.Error, start: int, now: int) -> str:
    text = str(exc)
    if "unexpected end of data" in text or ("EOF" in text and "quot" in text):
        return f'本行有一个以引号开始的单元格没有结束（一直读到第 {now} 行）：请补上结束的引号 "'
    if "expected after" in text:
        return '引号用法有误：一个单元格的结束引号 " 之后还有其他字符（单元格内的引号应写成两个 ""）'
    if "field larger than field limit" in text:
        return f"有一个单元格超过 {csv.field_size_limit():,} 个字符"
    return "不是有效的 CSV 文件（格式错误）"
