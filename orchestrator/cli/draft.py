"""``duban draft PLAN.docx|PLAN.txt [--units UNITS] --out draft.toml``: a definition draft from a plan's text."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer

from orchestrator.cli.common import BadInput, err_console


def draft_command(
    plan: Path = typer.Argument(
        ..., help="The plan's text: a .docx or a .txt (UTF-8 or GB18030).", show_default=False
    ),
    units: Path | None = typer.Option(
        None,
        "--units",
        metavar="FILE",
        help="A units file: names are matched to its roles and units.",
        show_default=False,
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        metavar="FILE",
        help="Where to write the draft (- for standard output).",
        show_default=False,
    ),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists.", metavar=""),
) -> None:
    """Draft a definition from a plan's own text, for a person to correct.

    Sections from the headings (一、 （一） 1. …), tasks from the numbered items and from a table of
    tasks, dates from the phrases plans use (6月10日前, 2022年10月底前, 每年12月底前, 每季度, 每两年,
    有效期届满前6个月, ……阶段（4月—7月中旬）), lead and responsible units from 牵头单位：/责任单位：,
    （……牵头，……按职责分工负责）, 由……负责 and a clause's subject. Every entry cites its source line
    (# 原文第N行：…), every unsure reading is marked # 待核：…; a date or unit the text does not give is
    not in the draft. A summary of what was found goes to stderr.

    Example: [bold]duban draft 实施方案.docx --units units.toml --out draft.toml[/]
    """
    from workflows.draft.run import draft_file

    if str(out) != "-" and out.exists() and not force:
        raise BadInput(f"--out: {out} exists (give --force to replace it)")
    drafted = draft_file(plan, units)
    for line in drafted.summary:
        err_console.print(f"duban draft: {line}", markup=False, highlight=False, soft_wrap=True)
    if drafted.empty:
        err_console.print(
            f"duban draft: {plan}: no numbered items, phases or dates found: nothing written", markup=False
        )
        raise typer.Exit(1)
    if str(out) == "-":
        typer.echo(drafted.text, nl=False)
        return
    _write(out, drafted.text)
    err_console.print(f"duban draft: wrote {out}", markup=False, highlight=False, soft_wrap=True)


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file beside it, then a rename)."""
    try:
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", dir=path.parent if str(path.parent) else "."
        )
    except OSError as exc:
        raise BadInput(f"--out: {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise BadInput(f"--out: {path}: {exc.strerror or exc}") from None


def register(app: typer.Typer) -> None:
    app.command("draft")(draft_command)
