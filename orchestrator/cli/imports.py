"""``duban import-status FILE``: done / waived in bulk from a CSV or XLSX file, all or nothing."""

from __future__ import annotations

from pathlib import Path

import typer

from orchestrator.cli.common import console, now, open_engine, unit_names
from orchestrator.store.audit import operator
from orchestrator.store.db import transaction


def import_status_command(
    file: Path = typer.Argument(
        ..., help="A CSV (UTF-8) or XLSX file with a header row.", show_default=False
    ),
) -> None:
    """Record what really happened, in bulk: each row marks one obligation done or waived.

    Columns (English or as the before-start summary's attachment names them): ref (事项编号), or
    task (任务编号) with unit (责任单位编号 or 责任单位) and occurrence (期次); state (状态: 已办结 or
    已免除; empty: left as it is); done_on (完成日期: 2026-06-05, 2026/6/5, 2026年6月5日 or a date
    cell); evidence (佐证材料); reason (理由, required for 已免除). Every row is checked first; any
    problem is reported as FILE:LINE: 列「…」：… and nothing is changed. Rows already in the state
    they give are skipped and counted, so a sheet filled in batches can be imported each time.
    Every change is in the audit log.

    Example: [bold]duban import-status 启用前已到期事项.xlsx[/]
    """
    from orchestrator.admin.import_status import import_status  # (openpyxl: only when importing)

    names = unit_names()
    at = now()
    with transaction(open_engine()) as session:
        report = import_status(session, file, now=at, actor=operator(), names=names)
    console.print(f"{file}：{outcome(report)}", markup=False)


def outcome(report) -> str:
    """``记为已办结 2 项、已免除 1 项；3 行已是所填状态，跳过；5 行未填状态，未改动。``"""
    parts = [f"记为已办结 {report.done} 项、已免除 {report.waived} 项"]
    if report.already:
        parts.append(f"{report.already} 行已是所填状态，跳过")
    if report.unchanged:
        parts.append(f"{report.unchanged} 行未填状态，未改动")
    return "；".join(parts) + "。"


def register(app: typer.Typer) -> None:
    app.command("import-status")(import_status_command)
