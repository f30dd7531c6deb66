"""A list of digest items as a spreadsheet attachment (XLSX by openpyxl, or CSV): pure, no I/O.

The before-start summary's sheet has the columns ``duban import-status`` reads back, so the office
can fill in 状态 / 完成日期 / 佐证材料 / 理由 and import the same file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime, time

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

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


def _cells(item: DigestItem, today: date) -> list[object]:
    return [
        (item.ref or "").lstrip("#"),
        item.task or "",
        item.task_title or item.phase_name or "",
        item.occurrence or "",
        item.unit,
        item.unit_name,
        item.due.isoformat() if item.due else "",
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
    extra = [""] * (len(IMPORT_COLUMNS) if for_import else 0)
    return header, [[text_cell(v) for v in _cells(i, today)] + extra for i in items]


def xlsx(items: Sequence[DigestItem], today: date, *, title: str, for_import: bool = False) -> bytes:
    """``items`` as an XLSX workbook of one sheet named ``title``."""
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
    sheet.freeze_panes = "A2"
    book.properties.creator = "duban"
    book.properties.created = book.properties.modified = datetime.combine(today, time())  # no clock
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_bytes(items: Sequence[DigestItem], today: date, *, for_import: bool = False) -> bytes:
    """``items`` as UTF-8 CSV with a byte-order mark (Excel opens it as UTF-8)."""
    header, rows = item_table(items, today, for_import=for_import)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")
