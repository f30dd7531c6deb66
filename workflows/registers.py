"""Registers: CSV files the deployment keeps (e.g. normative documents and their expiry dates).

A task with ``anchor = "register:NAME.COLUMN"`` gets one obligation per row, for the row's
issuing ``unit``, due on the row's date in ``COLUMN``. Every register has the columns ``id``,
``title`` and ``unit`` (a unit id); the anchor names the date column (``YYYY-MM-DD``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from workflows.errors import DefinitionError, Problem
from workflows.units import UnitDirectory, _no_control

REQUIRED_COLUMNS = ("id", "title", "unit")


@dataclass(frozen=True)
class RegisterRow:
    id: str
    title: str
    unit: str
    values: dict[str, str]
    line: int


@dataclass(frozen=True)
class Register:
    name: str
    path: str
    columns: tuple[str, ...]
    rows: tuple[RegisterRow, ...]

    def dates(self, column: str) -> list[tuple[RegisterRow, date]]:
        """Rows with their date in ``column`` (rows already validated by :func:`check_register`)."""
        return [(row, date.fromisoformat(row.values[column])) for row in self.rows]


def load_register(name: str, path: Path) -> Register:
    """Read a register CSV; every structural problem at once as ``DefinitionError``."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DefinitionError([Problem(shown, 1, f'register "{name}": no such file')]) from None
    except UnicodeDecodeError as exc:
        raise DefinitionError([Problem(shown, 1, f'register "{name}": not UTF-8 ({exc.reason})')]) from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    problems: list[Problem] = []
    if not header:
        raise DefinitionError([Problem(shown, 1, f'register "{name}": empty file, expected a header row')])
    columns = tuple(h.strip() for h in header)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        problems.append(Problem(shown, 1, f'register "{name}": missing column(s) {", ".join(missing)}'))
    rows: list[RegisterRow] = []
    seen: dict[str, int] = {}
    for line, record in enumerate(reader, start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(columns):
            problems.append(Problem(shown, line, f"expected {len(columns)} fields, found {len(record)}"))
            continue
        values = {c: v.strip() for c, v in zip(columns, record, strict=True)}
        for column, value in values.items():
            try:
                _no_control(value)
            except ValueError as exc:
                problems.append(Problem(shown, line, f"{column}: {exc}"))
        row_id = values.get("id", "")
        if not missing:
            if not row_id:
                problems.append(Problem(shown, line, "id: empty"))
            elif row_id in seen:
                problems.append(Problem(shown, line, f'id "{row_id}" duplicates line {seen[row_id]}'))
            seen.setdefault(row_id, line)
            rows.append(RegisterRow(row_id, values["title"], values["unit"], values, line))
    if problems:
        raise DefinitionError(problems)
    return Register(name, shown, columns, tuple(rows))


def check_register(register: Register, column: str, units: UnitDirectory | None) -> list[Problem]:
    """Problems of ``register`` used as an anchor on ``column``: bad dates and unknown units."""
    if column not in register.columns:
        return [Problem(register.path, 1, f'register "{register.name}" has no column "{column}"')]
    problems = []
    for row in register.rows:
        value = row.values[column]
        try:
            date.fromisoformat(value)
        except ValueError:
            problems.append(
                Problem(register.path, row.line, f'{column}: bad date "{value}", expected YYYY-MM-DD')
            )
        if units is not None and row.unit not in units.by_id:
            problems.append(Problem(register.path, row.line, f'unit: unknown unit "{row.unit}"'))
    return problems
