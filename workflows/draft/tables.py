"""A table of tasks (工作任务 | 牵头单位 | 责任单位 | 完成时限): each row a task.

Real plans often put their tasks in a table. The header row is found by its column names; a row is
a task when its task column has text. A merged cell's text counts once (``source`` leaves the
repeats empty), so a 牵头单位 merged over several rows is read again from the row above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workflows.draft.dates import When, find_dates
from workflows.draft.names import Named, split_names
from workflows.draft.source import Line

COLUMNS = (
    ("task", re.compile(r"^(?:工作|重点|主要|具体)?(?:任务|事项|工作内容|内容|项目)(?:名称)?$")),
    ("measures", re.compile(r"(?:措施|要求|目标|标准|成果)")),
    ("lead", re.compile(r"牵头(?:单位|部门)?|主办")),
    ("responsible", re.compile(r"责任(?:单位|部门)|配合|协办|参与|承办")),
    ("due", re.compile(r"时限|时间|进度|节点|期限")),
)


@dataclass(frozen=True)
class TableTask:
    line: Line
    title: str
    detail: str
    when: When | None
    units: tuple[Named, ...]


def header(cells: tuple[str, ...]) -> dict[str, int] | None:
    """Column kind → index, when ``cells`` is a header naming a task column and at least one other."""
    found: dict[str, int] = {}
    for index, cell in enumerate(cells):
        text = re.sub(r"\s+", "", cell)
        for kind, pattern in COLUMNS:
            if kind not in found and pattern.search(text) and len(text) <= 12:
                found[kind] = index
                break
    return found if "task" in found and len(found) >= 2 else None


def _cell(cells: tuple[str, ...], columns: dict[str, int], previous: dict[str, str], kind: str) -> str:
    """A row's cell of column ``kind``; an empty unit or date cell is the one merged from above."""
    index = columns.get(kind)
    value = cells[index].strip() if index is not None and index < len(cells) else ""
    if value:
        previous[kind] = value
    elif kind in ("lead", "responsible", "due") and index is not None:
        value = previous.get(kind, "")
    return value


def table_tasks(rows: list[Line]) -> list[TableTask]:
    """The tasks of the table rows of one section (several tables: each has its own header)."""
    tasks: list[TableTask] = []
    columns: dict[str, int] | None = None
    previous: dict[str, str] = {}
    for row in rows:
        cells = row.cells or ()
        found = header(cells)
        if found is not None:
            columns, previous = found, {}
            continue
        if columns is None:
            continue
        values = {kind: _cell(cells, columns, previous, kind) for kind, _ in COLUMNS}
        if not values["task"]:
            continue
        units = tuple(
            Named(kind, split_names(values[kind]), values[kind], 0)
            for kind in ("lead", "responsible")
            if values[kind]
        )
        dates = (find_dates(values["due"]) if values["due"] else []) or find_dates(values["task"])
        detail = "：".join(p for p in (values["task"], values["measures"]) if p)
        tasks.append(TableTask(row, values["task"], detail, dates[0] if dates else None, units))
    return tasks


__all__ = ["TableTask", "header", "table_tasks"]
