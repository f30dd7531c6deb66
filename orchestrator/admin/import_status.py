"""``duban import-status FILE``: record in bulk what really happened (done / waived), all or nothing.

The file is CSV (UTF-8, a byte-order mark allowed) or XLSX (the first sheet), with a header row.
Columns are found by name, in English or as the before-start summary's attachment writes them:

- the obligation: ``ref`` / 事项编号 (an id such as ``12`` or ``#12``), or ``task`` / 任务编号 with
  ``unit`` / 责任单位编号 (a unit id or its exact name) and, for a recurring duty, ``occurrence`` / 期次;
- ``state`` / 状态: 已办结 (done, 已完成, 完成) or 已免除 (waived, 免除, 免办); a row with an empty
  state is left as it is (the attachment lists every obligation; fill in the ones you know);
- ``done_on`` / 完成日期 (required for done, not in the future), as people type dates
  (``status_dates``: ``2026/6/5``, ``2026年6月5日``, a date cell …): the done time recorded, and
  whether it was late, come from it;
- ``evidence`` / 佐证材料 (optional) and ``reason`` / 理由 (required for waived).

The file is read within limits (``status_file``: a regular file, its size, rows and cells counted as
they are read; an XLSX workbook streamed, ``xlsx_rows``). Every row is checked first, against the
file and the database (``status_rows``); any problem → every problem as ``FILE:LINE: 列「…」：…``
(one zh-CN line each, naming the column as the file's header does) and nothing changed. A row whose
state cell holds no value of its own (a formula never calculated, a merged cell) is a problem too,
never silently "left as it was". A row stating what is recorded already (已办结 for an obligation
done, on that day or before; 已免除 for one waived) is skipped and counted: the office fills the
sheet in batches and imports it each time. Otherwise every change is applied in the caller's
transaction, each with its own audit event, plus one ``import.status`` event for the file (none
when the file changed nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlmodel import Session

from orchestrator.admin import operations
from orchestrator.admin.status_file import ImportProblems, read_status_file
from orchestrator.admin.status_rows import DONE, RowProblem, check_row
from orchestrator.store.audit import record
from workflows.errors import Problem


@dataclass
class ImportReport:
    done: int = 0
    waived: int = 0
    already: int = 0  # rows stating what is recorded already: skipped
    unchanged: int = 0  # rows with no state
    ids: list[int] = field(default_factory=list)


def import_status(
    session: Session, path: Path, *, now: datetime, actor: str, names: Mapping[str, str]
) -> ImportReport:
    """Check every row of ``path``, then apply them all (in the caller's transaction)."""
    read = read_status_file(path)
    problems: list[Problem] = []
    changes = []
    seen: dict[int, int] = {}
    report = ImportReport()
    for row in read.rows:
        if row.problem is not None:
            problems.append(Problem(str(path), row.line, row.problem))
            continue
        try:
            asked = check_row(session, row.values, now, names)
        except RowProblem as exc:
            where = f"{read.column(exc.key)}：" if exc.key else ""
            problems.append(Problem(str(path), row.line, where + exc.message))
            continue
        if asked is None:
            report.unchanged += 1
            continue
        first = seen.setdefault(asked.obligation.id, row.line)
        if first != row.line:
            key = "ref" if row.values.get("ref") else "task"
            message = f"{read.column(key)}：事项 #{asked.obligation.id} 在第 {first} 行已经出现"
            problems.append(Problem(str(path), row.line, message))
            continue
        if asked.already:
            report.already += 1
            continue
        changes.append((row, asked))
    if problems:
        raise ImportProblems(problems)
    if not changes:
        return report
    detail = f"imported from {path.name}"
    for row, asked in changes:
        values = row.values
        if asked.state == DONE:
            operations.mark_done(
                session,
                asked.obligation.id,
                evidence=values.get("evidence") or None,
                now=now,
                actor=actor,
                done_on=asked.done_on,
                detail=detail,
            )
            report.done += 1
        else:
            operations.waive(
                session,
                asked.obligation.id,
                reason=values.get("reason"),
                now=now,
                actor=actor,
                detail=detail,
            )
            report.waived += 1
        report.ids.append(asked.obligation.id)
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
            "already": report.already,
            "unchanged": report.unchanged,
            "obligations": report.ids,
        },
    )
    return report
