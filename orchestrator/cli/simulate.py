"""``duban simulate``: every email the plan would send, with a fake clock; nothing stored, nothing sent.

It assumes that no unit ever reports anything done: every reminder, overdue notice and escalation
of the year is sent. Use it to see the most a unit can receive, not what it will.

Without ``--year`` it simulates the year of the program config declares for the workflow
(``[[programs]]``); without ``--from``, a program that notifies from a day after 1 January (a late
start: ``notify_from`` in config, or the day it was first started, as the database records it) is
simulated from that day, as the daemon runs it. A line on stderr says which year and day were taken.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from notifications.labels import NOTICE_KINDS, label
from orchestrator.cli.common import (
    EXIT_CODES,
    BadInput,
    console,
    current,
    err_console,
    now,
    parse_day,
    print_json_lines,
)
from orchestrator.cli.options import Registers, Units, Workflow, Year, flag, json_flag
from orchestrator.cli.planning import bundle_for, parse_year_text

ASSUMPTION = "假设：全年没有任何单位报告办结，每一条提醒、逾期通知和催办都会发出（这是最多的情况）。"


def simulate(
    workflow: Workflow,
    units: Units = None,
    year: Year = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="YYYY-MM-DD",
            help="Start the fake clock on this day (default: the program's notify-from day, else 01-01).",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", metavar="YYYY-MM-DD", help="Stop after this day (default 01-31 of next year)."
        ),
    ] = None,
    register: Registers = None,
    unit: Annotated[
        str | None,
        typer.Option(
            "--unit", metavar="UNIT", help="Only the emails to this unit (its id or its exact name)."
        ),
    ] = None,
    summary: bool = flag("--summary", "Counts instead of every email: by month and kind, and by unit."),
    eml: Annotated[
        Path | None,
        typer.Option(
            "--eml",
            metavar="DIR",
            help="Also write each email as an .eml file into DIR (to open in a mail program).",
        ),
    ] = None,
    as_json: bool = json_flag("One JSON object per email, in send order."),
) -> None:
    """Every email WORKFLOW would send in a year, in send order; runs the real engine on a fake clock.

    It assumes that no unit ever reports anything done: every reminder, overdue notice and
    escalation is sent — the most a unit can receive. Nothing is stored, nothing is sent.
    --year defaults to the year of the program config declares; --from to that program's
    notify-from day (a late start is simulated as it runs).

    Example: [bold]duban simulate rule-of-law-pilot --year 2026 --unit 东溪乡人民政府 --eml /tmp/mail[/]
    """
    from zoneinfo import ZoneInfo

    from orchestrator.engine.simulate import simulate as run_simulation
    from orchestrator.service.runtime import make_renderer, send_policy
    from orchestrator.store.db import memory_engine

    end = parse_day(until, "--until") if until else None
    if eml is not None and not eml.is_dir():
        raise BadInput(f"--eml: {eml} is not a directory")
    if summary and as_json:
        raise BadInput("--summary and --json: choose one")
    bundle = bundle_for(workflow, units, register)
    program_year, start, note = program_dates(bundle, workflow, year, from_)
    if start and end and end < start:
        raise BadInput(f"--until {end} is before --from {start}")
    if note:
        err_console.print(note, markup=False, highlight=False)
    wanted = _unit(bundle, unit)
    settings = current().settings
    tz = ZoneInfo(bundle.definition.workflow.timezone)
    engine = memory_engine()
    renderer = make_renderer(settings, bundle.definition.workflow.timezone)
    emails = run_simulation(
        bundle,
        program_year,
        start=start,
        until=end,
        policy=send_policy(settings, {bundle.definition.workflow.id: bundle}),
        renderer=renderer,
        engine=engine,
    )
    emails = (e for e in emails if wanted is None or e.to_unit == wanted)
    if eml is not None:
        written = _write_eml(engine, bundle, renderer, wanted, eml, tz)
        err_console.print(f"{written} 封邮件写入 {eml}", markup=False, highlight=False)
    if as_json:
        print_json_lines(e.as_json(tz) for e in emails)
        return
    emails = list(emails)
    if summary:
        _print_summary(bundle, program_year, emails, tz)
    else:
        _print_emails(bundle, program_year, emails, tz)
    console.print(ASSUMPTION, markup=False)


def program_dates(bundle, workflow: str, year: str | None, from_: str | None):
    """(year, first day or None for 01-01, a note of what was taken from the program or None):
    ``--year``, else the year of the program config declares for ``workflow``; ``--from``, else
    that program's notify-from day when it is after 1 January (config's ``notify_from``, else the day
    the database records it was first started)."""
    from datetime import date
    from zoneinfo import ZoneInfo

    from orchestrator.engine.window import local_day
    from orchestrator.service.runtime import program_year

    definition = bundle.definition.workflow
    entry = next((e for e in current().settings.programs if e.workflow in (definition.id, workflow)), None)
    today = local_day(now(), ZoneInfo(definition.timezone))
    taken = []
    if year is not None or entry is None:
        chosen = parse_year_text(year)
    else:
        chosen = program_year(entry, today)
        taken.append(f"{chosen}年度（配置文件 [[programs]] 中的方案）")
    if from_:
        return chosen, parse_day(from_, "--from"), _note(taken)
    if entry is None or program_year(entry, today) != chosen:
        return chosen, None, _note(taken)
    notify = entry.notify_from or _started_notify_day(definition.id, chosen)
    if notify is None or notify <= date(chosen, 1, 1):
        return chosen, None, _note(taken)
    taken.append(
        f"自{notify.year}年{notify.month}月{notify.day}日起（该方案的启用日：此前到期的事项不通知各单位）"
    )
    return chosen, notify, _note(taken)


def _note(taken: list[str]) -> str | None:
    return f"模拟{'，'.join(taken)}；可用 --year、--from 另行指定。" if taken else None


def _started_notify_day(workflow: str, year: int):
    """The notify-from day of the program as the database records it; None if it is not started
    (or there is no database yet)."""
    from sqlalchemy.exc import SQLAlchemyError
    from sqlmodel import Session, select

    from orchestrator.engine.programs import notify_day
    from orchestrator.store.models import Program
    from workflows.errors import DubanError

    try:
        engine = current().open_engine()
    except (DubanError, SQLAlchemyError, OSError):
        return None
    try:
        with Session(engine) as session:
            query = select(Program).where(Program.workflow == workflow, Program.year == year)
            program = session.exec(query).first()
            return notify_day(program) if program is not None and program.notify_from else None
    except SQLAlchemyError:  # (a database being upgraded, a locked file: the plan's own dates then)
        return None
    finally:
        engine.dispose()


def _unit(bundle, text: str | None) -> str | None:
    from orchestrator.admin.refs import unit_id

    if text is None:
        return None
    directory = bundle.units.directory
    found = unit_id(text.strip(), {u.id: u.name for u in directory.units})
    if found not in directory.by_id:
        raise BadInput(f'--unit: unknown unit "{text}" (not in {bundle.units.path})')
    return found


def _write_eml(engine, bundle, renderer, unit, folder: Path, tz) -> int:
    from orchestrator.engine.simulate import render_messages
    from orchestrator.evaluation.scoring import scorecard_attachment

    count = 0
    for count, (email, message) in enumerate(
        render_messages(engine, bundle, renderer, unit=unit, scorecard=scorecard_attachment), start=1
    ):
        name = f"{count:04d}-{email.send_at.astimezone(tz):%Y%m%d}-{email.to_unit}.eml"
        (folder / name).write_bytes(message.as_bytes())
    return count


def _kinds(email) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for item in email.items:
        kinds[item["kind"]] = kinds.get(item["kind"], 0) + 1
    return kinds


def _print_emails(bundle, year: int, emails, tz) -> None:
    from rich.table import Table

    directory = bundle.units.directory
    table = Table(title=f"{bundle.definition.workflow.title} · {year} · {len(emails)} 封邮件")
    for column in ("发送时间", "收件单位", "主题", "内容"):
        table.add_column(column, overflow="fold")
    for email in emails:
        content = "、".join(f"{label(NOTICE_KINDS, k)}{n}" for k, n in _kinds(email).items())
        when = email.send_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        table.add_row(when, directory.name(email.to_unit), email.subject, content)
    console.print(table)


def _print_summary(bundle, year: int, emails, tz) -> None:
    """Emails per month with the facts they carry by kind; then emails and facts per unit."""
    from orchestrator.cli.grid import Column, render

    kinds = [k for k in NOTICE_KINDS if any(k in _kinds(e) for e in emails)]
    months: dict[str, list] = {}
    units: dict[str, list] = {}
    for email in emails:
        months.setdefault(email.send_at.astimezone(tz).strftime("%Y-%m"), []).append(email)
        units.setdefault(email.to_unit, []).append(email)
    by_unit = sorted(units.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    name = bundle.units.directory.name
    title = f"{bundle.definition.workflow.title} · {year} · {len(emails)} 封邮件（各类为事项条数）"
    console.print(title, markup=False)
    for heading, groups in (("月份", sorted(months.items())), ("收件单位", by_unit)):
        columns = [Column(heading, wrap=0 if heading == "月份" else 1), Column("邮件", right=True)]
        columns += [Column(NOTICE_KINDS[kind], right=True) for kind in kinds]
        rows = [
            (key if heading == "月份" else name(key), str(len(group)),
             *(str(sum(_kinds(e).get(kind, 0) for e in group)) for kind in kinds))
            for key, group in groups
        ]  # fmt: skip
        console.print(render(console, columns, rows), soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("simulate", epilog=EXIT_CODES)(simulate)
