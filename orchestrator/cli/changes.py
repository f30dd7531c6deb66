"""``duban done``, ``duban waive`` and ``duban reopen``: an operator changes one obligation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from notifications.labels import OBLIGATION_STATES
from orchestrator.cli.common import EXIT_CODES, BadInput, console, current, now
from orchestrator.cli.options import Occurrence, Program, Ref, Unit


def _apply(change: Callable) -> None:
    """Run ``change(session, ref, names, now, actor)`` in one transaction and print what changed."""
    from rich.text import Text

    from orchestrator.store.audit import operator
    from orchestrator.store.db import transaction
    from orchestrator.store.models import Obligation

    ctx = current()
    names = ctx.unit_names()
    with transaction(ctx.open_engine()) as session:
        result = change(session, names, now(), operator())
        obligation = session.get(Obligation, result.obligation_id)
        label = f"#{obligation.id} {obligation.task} {names.get(obligation.unit, obligation.unit)}"
    line = Text(f"{label}：{OBLIGATION_STATES[result.before]} → {OBLIGATION_STATES[result.after]}")
    if result.done_late is not None:
        line.append(
            "（逾期完成）" if result.done_late else "（按时完成）",
            style="red" if result.done_late else "green",
        )
    if result.withdrawn:
        line.append(f"；撤回 {result.withdrawn} 条待发通知")
    console.print(line)


def _ref(ref: str, unit, occurrence, program):
    from orchestrator.admin.refs import Ref as RefOf

    return RefOf(ref, unit=unit, occurrence=occurrence, program=program)


def done(
    ref: Ref,
    unit: Unit = None,
    occurrence: Occurrence = None,
    program: Program = None,
    evidence: Annotated[
        str | None,
        typer.Option(
            "--evidence", "-e", metavar="TEXT", help="What shows it is done (a document number, a link)."
        ),
    ] = None,
) -> None:
    """Mark an obligation done (on time or late, by today's date); no more reminders or escalations.

    A pending obligation may be done early. A waived one must be reopened first.

    Example: [bold]duban done 12 --evidence "县公安局〔2026〕15号"[/]
    """
    from orchestrator.admin.operations import mark_done

    target = _ref(ref, unit, occurrence, program)
    _apply(lambda s, names, at, who: mark_done(s, target, evidence=evidence, now=at, actor=who, names=names))


def waive(
    ref: Ref,
    unit: Unit = None,
    occurrence: Occurrence = None,
    program: Program = None,
    reason: Annotated[
        str | None,
        typer.Option("--reason", "-r", metavar="TEXT", help="Why the obligation does not apply (required)."),
    ] = None,
) -> None:
    """Waive an obligation (it does not apply, or is handled elsewhere); a reason is required.

    Example: [bold]duban waive T05 --unit town-a --reason "本镇无此项执法职能"[/]
    """
    from orchestrator.admin.operations import waive as waive_obligation

    if reason is None or not reason.strip():
        raise BadInput('--reason：免除须说明理由，如 --reason "本镇无此项执法职能"')
    target = _ref(ref, unit, occurrence, program)
    _apply(
        lambda s, names, at, who: waive_obligation(s, target, reason=reason, now=at, actor=who, names=names)
    )


def reopen(
    ref: Ref,
    unit: Unit = None,
    occurrence: Occurrence = None,
    program: Program = None,
    reason: Annotated[
        str | None,
        typer.Option("--reason", "-r", metavar="TEXT", help="Why it is reopened (kept in the audit log)."),
    ] = None,
) -> None:
    """Reopen a done or waived obligation: open or overdue again by today's date.

    Notices whose time passed while it was done or waived are not sent again; later ones are.

    Example: [bold]duban reopen 12 --reason "材料不全，退回补充"[/]
    """
    from orchestrator.admin.operations import reopen as reopen_obligation

    target = _ref(ref, unit, occurrence, program)
    _apply(
        lambda s, names, at, who: reopen_obligation(s, target, now=at, actor=who, reason=reason, names=names)
    )


def register(app) -> None:
    for name, command in (("done", done), ("waive", waive), ("reopen", reopen)):
        app.command(name, epilog=EXIT_CODES)(command)
