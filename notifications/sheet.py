"""A list of digest items as a spreadsheet attachment (XLSX by openpyxl, or CSV): pure, no I/O.

The before-start summary's sheet has the columns ``duban import-status`` reads back, so the office
can fill in 状态 / 完成日期 / 佐证材料 / 理由 and import the same file. Made for a clerk in WPS or
Excel: the header row frozen, 状态 a drop-down (已办结 / 已免除, a data validation), 截止日期 and
完成日期 date cells (what is typed into 完成日期 becomes a date), and a second sheet, 填写说明,
saying how to fill it in (the import reads the first sheet only).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime, time

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from notifications import zh
from notifications.labels import NOTICE_WORDS
from notifications.model import DigestItem

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LIST_COLUMNS = (
    "事项编号",
    "任务编号",
    "事项",
    "期次",
    "责任单位编号",
    "责任单位",
    "截止日期",
    "逾期",
    "类别",
)
IMPORT_COLUMNS = ("状态", "完成日期", "佐证材料", "理由")
STATE_CHOICES = ("已办结", "已免除")  # the 状态 drop-down (``duban import-status`` reads these words)
DATE_FORMAT = "yyyy-mm-dd"
GUIDE_TITLE = "填写说明"
GUIDE = (
    "填写说明",
    "1. 本表第一个工作表列出启用督办系统前已到截止日期、尚未记录办结的事项，每行一项。请逐行核实实际办理情况。",
    "2. 状态：从下拉列表选择“已办结”或“已免除”；情况不明的留空，该行不导入，事项仍记为逾期。",
    "3. 完成日期：“已办结”的必须填写，写实际办结的日期，如 2026-06-05、2026/6/5 或 2026年6月5日；不能晚于导入当天。",
    "4. 佐证材料：可选，如文号（县司法局〔2026〕3号）或材料名称，写成一行。",
    "5. 理由：“已免除”的必须填写，如“本单位无此项职能”，写成一行；免除的不填完成日期。",
    "6. 请勿修改事项编号、任务编号、责任单位编号、期次各列，不要合并单元格；可以排序、筛选。",
    "7. 可以分批填写：填好一部分即可交系统管理员导入，以后继续填写同一个文件再次导入，已导入的行自动跳过。",
    "8. 导入前系统逐行校验：有一行不合格，整个文件都不导入，并逐行指出问题所在的行和列，改正后重新导入即可。",
    "9. 系统管理员导入命令：duban import-status 文件名.xlsx",
)


def _cells(item: DigestItem, today: date) -> list[object]:
    ref = (item.ref or "").lstrip("#")
    return [
        int(ref) if ref.isdigit() else ref,
        item.task or "",
        item.task_title or item.phase_name or "",
        item.occurrence or "",
        item.unit,
        item.unit_name,
        item.due or "",
        zh.days_left(item.due, today) if item.due and item.due < today else "",
        NOTICE_WORDS.get(item.kind, item.kind),
    ]


FORMULA_MARKS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula


def text_cell(value: object) -> object:
    """A cell's value, never a formula: text starting with ``=`` (``+``, ``-``, ``@``, a tab or a
    carriage return) gets a leading ``'``, as Excel itself writes such text. For XLSX and CSV alike
    (a unit named ``=HYPERLINK(…)`` stays a name)."""
    if isinstance(value, str) and value[:1] in FORMULA_MARKS:
        return "'" + value
    return value


def item_table(
    items: Sequence[DigestItem], today: date, *, for_import: bool = False
) -> tuple[list[str], list[list[object]]]:
    """The header and rows of ``items`` (``for_import``: with the empty columns to fill in)."""
    header = [*LIST_COLUMNS, *(IMPORT_COLUMNS if for_import else ())]
    extra = [None] * (len(IMPORT_COLUMNS) if for_import else 0)  # (empty cells: a typed date stays a date)
    return header, [[text_cell(v) for v in _cells(i, today)] + extra for i in items]


def xlsx(items: Sequence[DigestItem], today: date, *, title: str, for_import: bool = False) -> bytes:
    """``items`` as an XLSX workbook of one sheet named ``title`` (``for_import``: the columns to
    fill in, a drop-down for 状态, date cells for 完成日期, and a second sheet 填写说明)."""
    header, rows = item_table(items, today, for_import=for_import)
    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
    widths = {"事项": 40, "责任单位": 24, "佐证材料": 30, "理由": 30}
    for number, name in enumerate(header, 1):
        sheet.column_dimensions[get_column_letter(number)].width = widths.get(name, 14)
        if name in ("截止日期", "完成日期"):
            for (cell,) in sheet.iter_rows(min_row=2, max_row=len(rows) + 1, min_col=number, max_col=number):
                cell.number_format = DATE_FORMAT
    sheet.freeze_panes = "A2"
    if for_import and rows:
        _state_choices(sheet, get_column_letter(header.index("状态") + 1), len(rows) + 1)
        _guide(book)
    book.properties.creator = "duban"
    book.properties.created = book.properties.modified = datetime.combine(today, time())  # no clock
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _state_choices(sheet, column: str, last_row: int) -> None:
    """状态 as a drop-down of ``STATE_CHOICES`` (empty allowed: not yet known)."""
    choices = DataValidation(
        type="list",
        formula1='"' + ",".join(STATE_CHOICES) + '"',
        allow_blank=True,
        showErrorMessage=True,
        errorTitle="状态",
        error="请从下拉列表中选择“已办结”或“已免除”；情况不明的留空。",
        showInputMessage=True,
        promptTitle="状态",
        prompt="已办结：须填完成日期；已免除：须填理由。",
    )
    choices.add(f"{column}2:{column}{last_row}")
    sheet.add_data_validation(choices)


def _guide(book: Workbook) -> None:
    """The second sheet, 填写说明: how to fill in the first."""
    guide = book.create_sheet(GUIDE_TITLE)
    guide.column_dimensions["A"].width = 110
    for line in GUIDE:
        guide.append([line])
    guide["A1"].font = Font(bold=True, size=14)
    for (cell,) in guide.iter_rows(min_row=2):
        cell.alignment = Alignment(wrap_text=True, vertical="top")


def csv_bytes(items: Sequence[DigestItem], today: date, *, for_import: bool = False) -> bytes:
    """``items`` as UTF-8 CSV with a byte-order mark (Excel opens it as UTF-8)."""
    header, rows = item_table(items, today, for_import=for_import)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")
