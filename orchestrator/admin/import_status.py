"""``duban import-status FILE``: record in bulk what really happened (done / waived), all or nothing.

The file is CSV (UTF-8, a byte-order mark allowed) or XLSX (the first sheet), with a header row.
Columns are found by name, in English or as the before-start summary's attachment writes them:

- the obligation: ``ref`` / 事项编号 (an id such as ``12`` or ``#12``), or ``task`` / 任务编号 with
  ``unit`` / 责任单位编号 (a unit id or its exact name) and, for a recurring duty, ``occurrence`` / 期次;
- ``state`` / 状态: ``done`` (已完成, 完成, 已办结) or ``waived`` (已免除, 免除, 免办); a row with an
  empty state is left as it is (the attachment lists every obligation; fill in the ones you know);
- ``done_on`` / 完成日期 (YYYY-MM-DD, required for done, not in the future): the done time recorded,
  and whether it was late, come from it;
- ``evidence`` / 佐证材料 (optional) and ``reason`` / 理由 (required for waived).

The file is read within limits (``status_file``: a regular file, its size, rows and cells counted as
they are read; an XLSX workbook streamed, ``xlsx_rows``). Every row is checked first, against the
file and the database; any problem → every problem as ``FILE:LINE: message`` and nothing changed.
A row whose state cell holds no value of its own (a formula never calculated, a merged cell) is a
problem too, never silently "left as it was". Otherwise every change is applied in the caller's
transaction, each with its own audit event, plus one ``import.status`` event for the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import Session

from orchestrator.admin import operations
from orchestrator.admin.refs import Ref, resolve
from orchestrator.admin.status_file import ImportProblems, Row, read_status_file
from orchestrator.engine.window import local_day
from orchestrator.store.audit import record
from orchestrator.store.models import Obligation, Program
from workflows.errors import DubanError, Problem

STATES = {
    "done": "done",
    "已完成": "done",
    "完成": "done",
    "已办结": "done",
    "办结": "done",
    "waived": "waived",
    "已免除": "waived",
    "免除": "waived",
    "免办": "waived",
}


@dataclass
class ImportReport:
    done: int = 0
    waived: int = 0
    unchanged: int = 0  # rows with no state
    ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Change:
    row: Row
    obligation: Obligation
    state: str
    done_on: date | None


def import_status(
    session: Session, path: Path, *, now: datetime, actor: str, names: Mapping[str, str]
) -> ImportReport:
    """Check every row of ``path``, then apply them all (in the caller's transaction)."""
    read = read_status_file(path)
    problems: list[Problem] = []
    changes: list[_Change] = []
    seen: dict[int, int] = {}
    report = ImportReport()
    for row in read.rows:
        if row.problem is not None:
            problems.append(Problem(str(path), row.line, row.problem))
            continue
        try:
            change = _check(session, row, now, names)
        except DubanError as exc:
            problems.append(Problem(str(path), row.line, str(exc)))
            continue
        if change is None:
            report.unchanged += 1
            continue
        first = seen.setdefault(change.obligation.id, row.line)
        if first != row.line:
            problems.append(Problem(str(path), row.line, f"#{change.obligation.id} is also on line {first}"))
            continue
        changes.append(change)
    if problems:
        raise ImportProblems(problems)
    detail = f"imported from {path.name}"
    for change in changes:
        values = change.row.values
        if change.state == "done":
            operations.mark_done(
                session,
                change.obligation.id,
                evidence=values.get("evidence") or None,
                now=now,
                actor=actor,
                done_on=change.done_on,
                detail=detail,
            )
            report.done += 1
        else:
            operations.waive(
                session,
                change.obligation.id,
                reason=values.get("reason"),
                now=now,
                actor=actor,
                detail=detail,
            )
            report.waived += 1
        report.ids.append(change.obligation.id)
    record(
        session,
        at=now,
        actor=actor,
        kind="import.status",
        subject=str(path),
        after={
            "sha256": read.sha256,
            "done": report.done,
            "waived": report.waived,
            "unchanged": report.unchanged,
            "obligations": report.ids,
        },
    )
    return report


def _check(session: Session, row: Row, now: datetime, names: Mapping[str, str]) -> _Change | None:
    """The change one row asks for (None: its state is empty); ``DubanError`` saying what is wrong."""
    values = row.values
    raw_state = values.get("state", "")
    if not raw_state:
        return None
    state = STATES.get(raw_state.lower())
    if state is None:
        raise DubanError(f'state "{raw_state}": expected done (已完成) or waived (已免除)')
    obligation = _obligation(session, values, names)
    if obligation.state not in operations.OPEN_STATES:
        raise DubanError(
            f"#{obligation.id} ({obligation.task}, {obligation.unit}) is already {obligation.state}"
        )
    done_on = None
    if state == "done":
        done_on = _done_on(session, obligation, values.get("done_on", ""), now)
        operations.check_text(values.get("evidence"), "evidence", required=False)
    else:
        if values.get("done_on"):
            raise DubanError("done_on: a waived obligation has no done date (leave it empty)")
        operations.check_text(values.get("reason"), "reason", required=True)
    return _Change(row, obligation, state, done_on)


def _obligation(session: Session, values: dict[str, str], names: Mapping[str, str]) -> Obligation:
    ref = values.get("ref", "")
    if ref:
        return resolve(session, Ref(ref), names)
    task, unit = values.get("task", ""), values.get("unit", "")
    if not task:
        raise DubanError("no ref (事项编号) and no task (任务编号): say which obligation")
    if not unit:
        raise DubanError(f"task {task}: give the unit (责任单位编号) too")
    return resolve(session, Ref(task, unit=unit, occurrence=values.get("occurrence") or None), names)


def _done_on(session: Session, obligation: Obligation, text: str, now: datetime) -> date:
    if not text:
        raise DubanError("done_on: a done obligation needs its done date (完成日期), YYYY-MM-DD")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise DubanError(f'done_on: bad date "{text}", expected YYYY-MM-DD') from None
    program = session.get(Program, obligation.program_id)
    tz = ZoneInfo(program.timezone)
    if day > local_day(now, tz):
        raise DubanError(f"done_on: {day} is in the future")
    operations.check_done_on(session, obligation, day)
    return day
