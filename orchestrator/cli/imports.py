"""``duban import-status FILE``: done / waived in bulk from a CSV or XLSX file, all or nothing."""

from __future__ import annotations

from pathlib import Path

import typer

from orchestrator.admin.import_status import import_status
from orchestrator.cli.admin import unit_names
from orchestrator.cli.common import console, now, open_engine
from orchestrator.store.audit import operator
from orchestrator.store.db import transaction


def import_status_command(
    file: Path = typer.Argument(
        ..., help="A CSV (UTF-8) or XLSX file with a header row.", show_default=False
    ),
) -> None:
    """Record what really happened, in bulk: each row marks one obligation done or waived.

    Columns (English or as the before-start summary's attachment names them): ref (事项编号), or
    task (任务编号) with unit (责任单位编号) and occurrence (期次); state (状态: done/已完成 or
    waived/已免除; empty: left as it is); done_on (完成日期, YYYY-MM-DD); evidence (佐证材料);
    reason (理由, required for waived). Every row is checked first; any problem is reported as
    FILE:LINE: message and nothing is changed. Every change is in the audit log.

    Example: [bold]duban import-status 启用前已到期事项.xlsx[/]
    """
    names = unit_names()
    at = now()
    with transaction(open_engine()) as session:
        report = import_status(session, file, now=at, actor=operator(), names=names)
    console.print(
        f"{file}: {report.done} done, {report.waived} waived, {report.unchanged} left as they were (no state)",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.command("import-status")(import_status_command)
