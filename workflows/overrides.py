"""The calendar override file: ``[YEAR]`` sections of holidays and make-up working days an office
adds or corrects, read into one ``YearSchedule`` per year, every problem at its line.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from workflows.errors import CalendarError, DefinitionError, Problem
from workflows.source import SourceMap, TomlRefused, parse_toml, syntax_error_line, syntax_error_text
from workflows.workdays import YearSchedule

_FIELDS = ("holidays", "workdays")
_YEAR = re.compile(r"[1-9]\d{3}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class _Source:
    """An override file's name and source map, to give each problem the line of its key or entry."""

    file: str
    lines: SourceMap

    def problem(self, loc: tuple[str | int, ...], message: str) -> Problem:
        """A problem at the line of ``loc`` (a key path; its longest written prefix, else line 1)."""
        return Problem(self.file, self.lines.line_of(loc), message)


def load_overrides(path: Path) -> dict[int, YearSchedule]:
    """Read a calendar override file: ``[YEAR]`` sections, each with ``holidays`` and ``workdays``.

    Entries are ``"YYYY-MM-DD"``, inclusive ranges ``"YYYY-MM-DD..YYYY-MM-DD"`` or TOML dates, inside
    the section's year; ``workdays`` are make-up working days. Raises ``CalendarError`` if the file
    cannot be read, ``DefinitionError`` with every problem found (each at its line) if it is not a
    valid override file.
    """
    text = _read(path)
    try:
        data = parse_toml(text)
    except TomlRefused as exc:
        raise DefinitionError([Problem(str(path), exc.line, exc.message)]) from None
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError([_syntax_problem(str(path), text, exc)]) from None
    source = _Source(str(path), SourceMap(text))
    schedules: dict[int, YearSchedule] = {}
    problems: list[Problem] = []
    for key, value in data.items():
        schedule, found = _parse_section(source, key, value)
        problems += found
        if schedule is not None:
            schedules[schedule.year] = schedule
    if problems:
        raise DefinitionError(problems)
    return schedules


def _read(path: Path) -> str:
    """The file's text (UTF-8, a byte-order mark allowed); ``CalendarError`` if it cannot be read."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CalendarError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise CalendarError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise CalendarError(f"{path}: cannot read: {exc.strerror}") from None


def _syntax_problem(file: str, text: str, exc: tomllib.TOMLDecodeError) -> Problem:
    """A TOML syntax error, at the line tomllib names (the last line for "at end of document")."""
    message = str(exc)
    line = syntax_error_line(message) or max(len(text.split("\n")), 1)
    return Problem(file, line, f"not valid TOML: {syntax_error_text(message)}")


def _parse_section(source: _Source, key: str, value: Any) -> tuple[YearSchedule | None, list[Problem]]:
    """One ``[YEAR]`` section as a ``YearSchedule``, or ``None`` and the problems found in it."""
    if not _YEAR.fullmatch(key):
        return None, [
            source.problem((key,), f"section [{key}] is not a year: sections are years, e.g. [2027]")
        ]
    year = int(key)
    if not isinstance(value, dict):
        message = f'[{year}] must be a table with "holidays" and "workdays", not {value!r}'
        return None, [source.problem((key,), message)]
    problems = [
        source.problem(
            (key, name),
            f'[{year}] unknown key "{name}" = {extra!r}: expected "holidays" and "workdays"',
        )
        for name, extra in value.items()
        if name not in _FIELDS
    ]
    holidays, found = _parse_dates(source, key, year, "holidays", value.get("holidays", []))
    problems += found
    workdays, found = _parse_dates(source, key, year, "workdays", value.get("workdays", []))
    problems += found
    problems += _conflicts(source, key, year, holidays, workdays)
    if problems:
        return None, problems
    return YearSchedule(year, frozenset(holidays), frozenset(workdays)), []


def _parse_dates(
    source: _Source, section: str, year: int, field: str, value: Any
) -> tuple[dict[date, tuple[int, Any]], list[Problem]]:
    """A ``holidays``/``workdays`` list as ``{day: (index, the entry that lists it)}``, and its problems."""
    if not isinstance(value, list):
        example = f'["{year}-01-01", "{year}-02-05..{year}-02-13"]'
        message = f"[{year}] {field} = {value!r}: expected a list of dates, e.g. {example}"
        return {}, [source.problem((section, field), message)]
    days: dict[date, tuple[int, Any]] = {}
    problems: list[Problem] = []
    for index, entry in enumerate(value):
        try:
            days.update(dict.fromkeys(_expand(entry, year), (index, entry)))
        except ValueError as exc:
            problems.append(source.problem((section, field, index), f"[{year}] {field}: {exc}"))
    return days, problems


def _expand(entry: Any, year: int) -> list[date]:
    """The days an entry names; ``ValueError`` naming the entry if it is not a date or range in ``year``.

    An entry is a string, ``"YYYY-MM-DD"`` or an inclusive range ``"YYYY-MM-DD..YYYY-MM-DD"``, or a
    TOML local date (``2027-01-01`` unquoted).
    """
    expected = 'expected "YYYY-MM-DD" or "YYYY-MM-DD..YYYY-MM-DD"'
    if isinstance(entry, date) and not isinstance(entry, datetime):
        start = end = entry
    elif isinstance(entry, str) and len(parts := [part.strip() for part in entry.split("..")]) <= 2:
        start = _parse_date(entry, parts[0], expected)
        end = _parse_date(entry, parts[-1], expected)
    else:
        raise ValueError(f"{_show(entry)} is not a date: {expected}")
    if start.year != year or end.year != year:
        raise ValueError(f"{_show(entry)} is not in {year}")
    if end < start:
        raise ValueError(f'range "{entry}" ends before it starts')
    return [start + timedelta(days=k) for k in range((end - start).days + 1)]


def _show(entry: Any) -> str:
    """An entry as written in the file: a string in double quotes, a TOML date or number bare."""
    return f'"{entry}"' if isinstance(entry, str) else str(entry)


def _parse_date(entry: str, text: str, expected: str) -> date:
    """``text`` (part of ``entry``) as a date; ``ValueError`` naming the entry if it is not one."""
    if not _ISO_DATE.fullmatch(text):
        raise ValueError(f'"{entry}" is not a date: {expected}')
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f'"{entry}" is not a date ({exc})') from None


def _conflicts(
    source: _Source,
    section: str,
    year: int,
    holidays: dict[date, tuple[int, Any]],
    workdays: dict[date, tuple[int, Any]],
) -> list[Problem]:
    """A problem, at the ``workdays`` entry, for each day listed both as a holiday and as a workday."""
    problems = []
    for day in sorted(holidays.keys() & workdays.keys()):
        (_, holiday), (index, workday) = holidays[day], workdays[day]
        message = f"[{year}] {day} is both a holiday ({_show(holiday)}) and a workday ({_show(workday)})"
        problems.append(source.problem((section, "workdays", index), message))
    return problems
