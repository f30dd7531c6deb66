"""``duban calendar export``: an ``.ics`` file of the open obligations."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.common import EXIT_CODES, BadInput, console, current, now
from orchestrator.cli.options import Program, Unit
from workflows.errors import DubanError

calendar_app = typer.Typer(help="Calendar files (.ics) of the open obligations.", no_args_is_help=True)
KINDS = {"events": "日程（VEVENT）", "todos": "待办（VTODO）", "both": "日程和待办"}


class NothingToExport(DubanError):
    """``calendar export`` found no open obligation (exit 1: the action failed)."""

    exit_code = 1


def export(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", metavar="FILE.ics", help="The .ics file to write.")
    ] = None,
    unit: Unit = None,
    program: Program = None,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            metavar="events|todos|both",
            help="Each deadline as an all-day event (what Outlook and Google Calendar show), a to-do, "
            "or both (default: \\[mail] calendar in config, else events).",
        ),
    ] = None,
) -> None:
    """Write an .ics file of the open obligations, by due date, with the same UIDs as the emails.

    Importing it again, or receiving an email about the same deadline, updates the entry instead
    of adding a second one.

    Example: [bold]duban calendar export --unit county-police --out county-police.ics[/]
    """
    from sqlmodel import Session

    from orchestrator.admin.calendars import calendar_of, open_obligations
    from orchestrator.admin.refs import find_programs, known_unit

    if out is None:
        raise BadInput("--out：请指定要写入的 .ics 文件，如 --out deadlines.ics")
    if not out.parent.is_dir():
        raise BadInput(f"--out：{out.parent} 不是文件夹")
    ctx = current()
    kind = kind or ctx.settings.mail.calendar
    if kind not in KINDS:
        raise BadInput(f'--kind：没有 "{kind}" 这一种（可选 {"、".join(KINDS)}）')
    names = ctx.unit_names()
    with Session(ctx.open_engine()) as session:
        programs = find_programs(session, program)
        wanted = known_unit(session, unit, names)
        obligations = open_obligations(session, wanted, [p.id for p in programs])
        data = calendar_of(
            session, obligations, ctx.program_bundle, domain=ctx.settings.mail.domain, now=now(), kind=kind
        )
    if data is None:
        who = f"单位 {names.get(wanted, wanted)}（{wanted}）" if wanted else ""
        raise NothingToExport(f"{who}没有未完成的督办事项：未写入 {out}")
    _write_atomically(out, data)
    console.print(f"已写入 {out}：{len(obligations)} 项{KINDS[kind]}", markup=False)


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise DubanError(f"--out：无法写入 {path}：{exc.strerror}") from None


def register(app) -> None:
    calendar_app.command("export", epilog=EXIT_CODES)(export)
    app.add_typer(calendar_app, name="calendar")
