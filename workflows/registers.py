"""Registers: CSV files the deployment keeps (e.g. normative documents and their expiry dates).

A task with ``anchor = "register:NAME.COLUMN"`` gets one obligation per row, for the row's
issuing ``unit``, due on the row's date in ``COLUMN``. Every register has the columns ``id``,
``title`` and ``unit`` (a unit id); the anchor names the date column (``YYYY-MM-DD``).
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from workflows.errors import DefinitionError, Problem
from workflows.units import UnitDirectory, _no_control

REQUIRED_COLUMNS = ("id", "title", "unit")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


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


def _read_text(name: str, path: Path) -> str:
    """The file as text (UTF-8, a byte-order mark allowed); a located ``DefinitionError`` otherwise."""
    shown = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DefinitionError([Problem(shown, 1, f'register "{name}": no such file')]) from None
    except OSError as exc:
        raise DefinitionError(
            [Problem(shown, 1, f'register "{name}": cannot read: {exc.strerror}')]
        ) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = (
            f'register "{name}": not UTF-8 text (byte 0x{raw[exc.start]:02x}): save the file as UTF-8 CSV'
        )
        raise DefinitionError([Problem(shown, line, message)]) from None


def _header(name: str, shown: str, line: int, header: list[str]) -> tuple[tuple[str, ...], list[Problem]]:
    """The column names, and the problems of the header row (at ``line``)."""
    columns = tuple(h.strip() for h in header)
    problems = []
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        problems.append(
            Problem(
                shown,
                line,
                f'register "{name}": missing column(s) {", ".join(missing)} (header: {",".join(columns)})',
            )
        )
    for i, column in enumerate(columns):
        if not column:
            problems.append(Problem(shown, line, f'register "{name}": column {i + 1} has no name'))
        elif column in columns[:i]:
            problems.append(Problem(shown, line, f'register "{name}": duplicate column "{column}"'))
    return columns, problems


def _records(name: str, shown: str, text: str) -> list[tuple[int, list[str]]]:
    """CSV records with the line each starts on (a quoted field may span lines); blank lines skipped."""
    reader = csv.reader(io.StringIO(text), strict=True)
    out: list[tuple[int, list[str]]] = []
    line = 1
    try:
        for record in reader:
            if any(cell.strip() for cell in record):
                out.append((line, record))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise DefinitionError([Problem(shown, line, f'register "{name}": not valid CSV ({exc})')]) from None
    return out


def load_register(name: str, path: Path) -> Register:
    """Read a register CSV (UTF-8, a BOM allowed); every structural problem at once as ``DefinitionError``.

    Checked here: the header (``id``, ``title``, ``unit``, no duplicate or empty column names), the
    number of fields of each row, empty or duplicate ids, control characters. Dates and units are
    checked by :func:`check_register`, once it is known which column is the anchor.
    """
    shown = str(path)
    text = _read_text(name, path)
    records = _records(name, shown, text)
    if not records:
        message = f'register "{name}": empty file, expected a header row: {",".join(REQUIRED_COLUMNS)},<date column>'
        raise DefinitionError([Problem(shown, 1, message)])
    header_line, header = records[0]
    columns, problems = _header(name, shown, header_line, header)
    ok = not problems
    rows: list[RegisterRow] = []
    seen: dict[str, int] = {}
    for line, record in records[1:]:
        if len(record) != len(columns):
            problems.append(
                Problem(
                    shown, line, f"expected {len(columns)} fields ({','.join(columns)}), found {len(record)}"
                )
            )
            continue
        values = {c: v.strip() for c, v in zip(columns, record, strict=True)}
        for column, value in values.items():
            try:
                _no_control(value)
            except ValueError as exc:
                problems.append(Problem(shown, line, f"{column}: {exc}"))
        if not ok:
            continue
        row_id = values["id"]
        if not row_id:
            problems.append(Problem(shown, line, "id: empty"))
        elif row_id in seen:
            problems.append(
                Problem(shown, line, f'id: duplicate id "{row_id}" (first on line {seen[row_id]})')
            )
        seen.setdefault(row_id, line)
        rows.append(RegisterRow(row_id, values["title"], values["unit"], values, line))
    if problems:
        raise DefinitionError(problems)
    return Register(name, shown, columns, tuple(rows))


def check_register(register: Register, column: str, units: UnitDirectory | None) -> list[Problem]:
    """Problems of ``register`` used as an anchor on ``column``: bad dates and unknown units."""
    if column not in register.columns:
        known = ", ".join(c for c in register.columns if c not in REQUIRED_COLUMNS) or "none"
        return [
            Problem(
                register.path,
                1,
                f'register "{register.name}" has no column "{column}" (date columns: {known})',
            )
        ]
    problems = []
    for row in register.rows:
        value = row.values[column]
        if not _ISO_DATE.fullmatch(value) or _as_date(value) is None:
            shown = f'bad date "{value}"' if value else "empty"
            problems.append(Problem(register.path, row.line, f"{column}: {shown}, expected YYYY-MM-DD"))
        if units is not None and row.unit not in units.by_id:
            close = difflib.get_close_matches(row.unit, list(units.by_id), n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            problems.append(Problem(register.path, row.line, f'unit: unknown unit "{row.unit}"{hint}'))
    return problems


def _as_date(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None
