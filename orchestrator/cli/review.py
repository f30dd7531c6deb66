"""The office's side of the loop on the command line.

``duban review [--json]`` lists the completions (办结申请) and extensions (延期申请) waiting for
the office; ``duban review approve ID [--note TEXT] [--until YYYY-MM-DD]`` and ``duban review
return ID --reason TEXT`` decide one; ``duban evidence get FILE_ID --out PATH`` copies a file out
of the evidence store (checking its SHA-256); ``duban unit link UNIT`` prints a unit's personal
link and ``duban unit revoke UNIT`` makes all its earlier links stop working.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from orchestrator.cli.common import (
    EXIT_CODES,
    BadInput,
    console,
    current,
    hhmm,
    now,
    open_engine,
    parse_day,
    print_json_lines,
    unit_names,
)
from workflows.errors import DubanError, NotFound

if TYPE_CHECKING:  # imported where used: `duban --help` stays fast
    from sqlmodel import Session

    from orchestrator.admin.portal import Review
    from orchestrator.admin.submissions import Desk

review_app = typer.Typer(help="Submissions waiting for the office: list, approve, return.")
evidence_app = typer.Typer(help="Evidence files sent with submissions.", no_args_is_help=True)
unit_app = typer.Typer(help="A unit's personal link (what its emails carry).", no_args_is_help=True)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str | None) -> str:
    """User-typed text made safe for a terminal: control and direction characters shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text or "")


def _desk(session: Session) -> Desk:
    """The running programs' plans (to re-arm an extended obligation's notices) and the send policy."""
    from sqlmodel import select

    from orchestrator.admin.submissions import Desk
    from orchestrator.service.runtime import send_policy
    from orchestrator.store.models import Program
    from orchestrator.store.states import ProgramState

    run = current()
    bundles = {}
    for program in session.exec(select(Program).where(Program.state == ProgramState.RUNNING)):
        bundles[program.workflow] = run.program_bundle(program)
    return Desk(bundles, send_policy(run.settings, bundles), run.settings.web.extension_years)


def review_row(review: Review, names: dict[str, str], tz: tzinfo) -> dict[str, Any]:
    """One pending submission as the stable JSON row of ``duban review --json`` (times in ``tz``,
    the plan's zone, with its offset)."""
    s = review.submission
    return {
        "id": s.id,
        "kind": s.kind,
        "obligation": review.ref,
        "task": review.task,
        "title": review.title,
        "unit": review.unit,
        "unit_name": names.get(review.unit, review.unit_name),
        "due": str(review.due),
        "submitted_at": s.submitted_at.astimezone(tz).isoformat(timespec="seconds"),
        "note": s.note,
        "requested": str(s.requested) if s.requested else None,
        "files": [
            {"id": f.id, "name": f.name, "size": f.size, "sha256": f.sha256, "media_type": f.media_type}
            for f in s.files
        ],
    }


def listing(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per submission.", metavar=""),
) -> None:
    """The submissions waiting for the office, oldest first: completions and extensions.

    Example: [bold]duban review[/]  ·  [bold]duban review approve 3[/]  ·  [bold]duban review return 4 --reason "缺少盖章页"[/]
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table
    from rich.text import Text
    from sqlmodel import Session

    from orchestrator.admin.overview import display_tz
    from orchestrator.admin.portal import KIND_LABELS
    from orchestrator.admin.submissions import pending_reviews

    names = unit_names()
    with Session(open_engine()) as session:
        tz = display_tz(session)
        rows = [review_row(r, names, tz) for r in pending_reviews(session)]
    if as_json:
        print_json_lines(rows)
        return
    table = Table(caption=f"待审核 {len(rows)} 项", caption_justify="left")
    for column in ("#", "种类", "事项", "单位", "提交时间", "说明", "材料"):
        table.add_column(column, overflow="fold")
    for row in rows:
        kind = KIND_LABELS.get(row["kind"], row["kind"])
        if row["requested"]:
            kind += f"（至 {row['requested']}）"
        files = "\n".join(
            f"#{f['id']} {printable(f['name'])} {f['size']} B sha256 {f['sha256']}" for f in row["files"]
        )
        table.add_row(
            str(row["id"]),
            kind,
            f"{row['obligation']} {row['task']} {printable(row['title'])}（到期 {row['due']}）",
            printable(row["unit_name"]),
            hhmm(row["submitted_at"]),
            Text(printable(row["note"])),
            Text(files or "—"),
        )
    console.print(table)


def approve_command(
    submission: str = typer.Argument(
        ..., metavar="ID", help="The submission's id (`duban review` lists them)."
    ),
    note: str = typer.Option(None, "--note", help="The office's word, kept with the decision."),
    until: str = typer.Option(
        None, "--until", help="An extension: the date granted (default: the date asked)."
    ),
) -> None:
    """Approve a submission: a completion makes the obligation done at the time the unit submitted it;
    an extension moves its due date and its reminders.

    Example: [bold]duban review approve 3[/]  ·  [bold]duban review approve 5 --until 2026-07-15[/]
    """
    from orchestrator.admin.overview import display_tz
    from orchestrator.admin.submissions import Actor, approve
    from orchestrator.store.db import transaction

    granted = parse_day(until, "--until") if until is not None else None
    with transaction(open_engine()) as session:
        decided = approve(
            session, submission, Actor.cli(), now(), note=note, until=granted, desk=_desk(session)
        )
        tz = display_tz(session)
    if decided.kind == "completion":
        late = "（逾期完成）" if decided.done_late else "（按时完成）"
        console.print(f"#{decided.submission_id} 通过：事项 #{decided.obligation_id} 已办结，完成时间 "
                      f"{hhmm(decided.done_at, tz)}{late}")  # fmt: skip
    else:
        console.print(
            f"#{decided.submission_id} 通过：事项 #{decided.obligation_id} 到期日改为 {decided.due}"
        )


def return_command(
    submission: str = typer.Argument(
        ..., metavar="ID", help="The submission's id (`duban review` lists them)."
    ),
    reason: str = typer.Option(
        None, "--reason", help="Why (shown to the unit on its page and in its next email)."
    ),
) -> None:
    """Return a submission to its unit with a reason; a returned completion is open (or overdue) again.

    Example: [bold]duban review return 4 --reason "缺少盖章页，请补充后重新提交"[/]
    """
    from orchestrator.admin.portal import DECISION_LABELS
    from orchestrator.admin.submissions import Actor, return_submission
    from orchestrator.store.db import transaction

    if not (reason or "").strip():
        raise BadInput('--reason：退回须说明理由，如 --reason "缺少盖章页"')
    with transaction(open_engine()) as session:
        decided = return_submission(session, submission, Actor.cli(), now(), reason, desk=_desk(session))
    state_zh = {"open": "办理中", "overdue": "已逾期"}.get(decided.state, decided.state)
    console.print(
        f"#{decided.submission_id} {DECISION_LABELS['returned']}：事项 #{decided.obligation_id} {state_zh}"
    )


def evidence_get(
    file_id: str = typer.Argument(
        ..., metavar="FILE_ID", help="The file's id (`duban review` or `duban show` lists it)."
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Where to write the copy."),
) -> None:
    """Copy an evidence file out of the store, checking its SHA-256.

    Example: [bold]duban evidence get 7 --out 实施方案.pdf[/]
    """
    from sqlmodel import Session

    from orchestrator.admin.evidence import evidence_path
    from orchestrator.store.models import Evidence

    if out is None:
        raise BadInput("--out：请指定要写入的文件，如 --out 实施方案.pdf")
    if out.is_dir() or not out.parent.is_dir():
        raise BadInput(f"--out：{out} 是文件夹，或它所在的文件夹不存在")
    from orchestrator.admin.refs import row_id

    number = row_id(file_id)
    if number is None and file_id.strip().lstrip("#").isdigit():
        raise NotFound(f"没有 #{file_id.strip().lstrip('#')[:40]} 号材料文件")
    if number is None:
        raise BadInput(f'FILE_ID：材料编号 "{printable(file_id)[:40]}" 有误，应为数字')
    with Session(open_engine()) as session:
        row = session.get(Evidence, number)
        if row is None:
            raise NotFound(f"没有 #{number} 号材料文件")
        sha256, size = row.sha256, row.size
    source = evidence_path(current().settings.web.evidence_dir, sha256)
    if not source.is_file():
        raise DubanError(f"#{number} 号材料文件不在 {source.parent} 中（已丢失）") from None
    temp = out.with_name(f".{out.name}.part")
    digest = hashlib.sha256()
    with open(source, "rb") as reader, open(temp, "wb") as writer:
        while chunk := reader.read(1 << 16):
            digest.update(chunk)
            writer.write(chunk)
    if digest.hexdigest() != sha256:
        temp.unlink(missing_ok=True)
        raise DubanError(f"#{number} 号材料文件的内容与其 SHA-256 不符（文件已损坏）")
    os.replace(temp, out)
    console.print(f"#{number} → {out}（{size} B，sha256 {sha256}）")


def link(unit: str = typer.Argument(..., metavar="UNIT", help="A unit id, or its exact name.")) -> None:
    """Print the unit's personal link (what every digest to it carries).

    Example: [bold]duban unit link town-a[/]
    """
    from sqlmodel import Session

    from orchestrator.admin import links
    from orchestrator.admin.refs import known_unit

    web = current().settings.web
    secret = web.secret()
    with Session(open_engine()) as session:
        unit_id = known_unit(session, unit, unit_names())
        url = links.link_for_unit(secret, web.base_url, session, unit_id, now=now())
    console.print(url, markup=False, highlight=False, soft_wrap=True)


def revoke(unit: str = typer.Argument(..., metavar="UNIT", help="A unit id, or its exact name.")) -> None:
    """Make every earlier link of the unit stop working at once; prints its new link.

    Example: [bold]duban unit revoke town-a[/]
    """
    from orchestrator.admin import links
    from orchestrator.admin.refs import known_unit
    from orchestrator.admin.submissions import Actor
    from orchestrator.store.db import transaction

    web = current().settings.web
    secret = web.secret()
    with transaction(open_engine()) as session:
        unit_id = known_unit(session, unit, unit_names())
        version = links.revoke(session, unit_id, now(), Actor.cli().name)
        url = links.link_for_unit(secret, web.base_url, session, unit_id, now=now())
    name = unit_names().get(unit_id, unit_id)
    console.print(f"{name}（{unit_id}）：此前的链接已全部作废（第 {version} 版）。新链接：", markup=False)
    console.print(url, markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    review_app.callback(invoke_without_command=True, epilog=EXIT_CODES)(listing)
    review_app.command("approve", epilog=EXIT_CODES)(approve_command)
    review_app.command("return", epilog=EXIT_CODES)(return_command)
    evidence_app.command("get", epilog=EXIT_CODES)(evidence_get)
    unit_app.command("link", epilog=EXIT_CODES)(link)
    unit_app.command("revoke", epilog=EXIT_CODES)(revoke)
    app.add_typer(review_app, name="review")
    app.add_typer(evidence_app, name="evidence")
    app.add_typer(unit_app, name="unit")
