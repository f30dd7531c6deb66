"""Every state and notice kind has its zh-CN word in the one label table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from notifications import labels
from notifications.model import KINDS, NoticeKind
from orchestrator.evaluation.indicators import MET, MISSING, NOT_APPLICABLE, NOT_MET
from orchestrator.store.states import (
    ACTIVE_STATES,
    FINISHED_STATES,
    OPEN_STATES,
    PAUSED_STATES,
    ItemState,
    ObligationState,
    OutboxState,
    PhaseState,
)


@pytest.mark.parametrize(
    ("states", "table"),
    [
        (ObligationState, labels.OBLIGATION_STATES),
        (ObligationState, labels.UNIT_PAGE_STATES),
        (PhaseState, labels.PHASE_STATES),
        (OutboxState, labels.OUTBOX_STATES),
        (ItemState, labels.ITEM_STATES),
        (NoticeKind, labels.NOTICE_KINDS),
        (NoticeKind, labels.NOTICE_HEADINGS),
    ],
)
def test_every_value_has_a_label(states, table) -> None:
    assert set(table) == {s.value for s in states}
    assert all(labels.label(table, s) == table[s.value] for s in states)


def test_indicator_statuses_and_unknown_values() -> None:
    assert set(labels.INDICATOR_STATUSES) == {MET, NOT_MET, MISSING, NOT_APPLICABLE}
    assert labels.label(labels.OBLIGATION_STATES, "someday") == "someday"


def test_the_sets_partition_the_obligation_states() -> None:
    assert set(ObligationState) == OPEN_STATES | PAUSED_STATES | FINISHED_STATES
    assert not OPEN_STATES & FINISHED_STATES
    assert not PAUSED_STATES & (OPEN_STATES | FINISHED_STATES)
    assert ACTIVE_STATES < OPEN_STATES
    assert tuple(NoticeKind) == KINDS


# -- the audit log's kinds --------------------------------------------------------------------------

AUDIT_WRITERS = {
    "record",
    "event_row",
    "obligation_event",
    "audit_submission",
    "record_daemon_event",
    "_give_back",
}
"""The functions every audit event is written through, and where each takes the event's kind."""
KIND_AT = {"obligation_event": 2, "audit_submission": 2, "record_daemon_event": 2}
DYNAMIC_KINDS = {
    'f"obligation.{state}"': {"obligation.open", "obligation.overdue"},  # the tick's transitions
    'f"phase.{state}"': {"phase.active", "phase.closed"},
    'f"{family}.sent"': {"mail.sent", "robot.sent"},
    'f"{family}.failed"': {"mail.failed", "robot.failed"},
    'f"{family}.retry"': {"mail.retry", "robot.retry"},
}
SYNTHESIZED_KINDS = {"obligation.created"}  # ``duban show``'s entry for an obligation made at start


def _kinds_in(node: ast.AST, names: dict[str, str]) -> set[str]:
    """The kinds an expression may give: a constant, a module constant, an f-string, either branch."""
    if isinstance(node, ast.JoinedStr):
        return DYNAMIC_KINDS[ast.unparse(node).replace("'", '"')]
    if isinstance(node, ast.Constant):
        return {node.value} if isinstance(node.value, str) and "." in node.value else set()
    if isinstance(node, ast.Name):
        return set().union(*(_kinds_in(value, {}) for value in names.get(node.id, [])))
    return set().union(*(_kinds_in(child, names) for child in ast.iter_child_nodes(node)))


def _written_kinds() -> set[str]:
    """Every kind an audit event is written with, read from the code (constants, names, f-strings)."""
    root = Path(__file__).resolve().parent.parent / "orchestrator"
    kinds: set[str] = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names: dict[str, list[ast.AST]] = {}  # a name → every value assigned to it in the module
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        names.setdefault(target.id, []).append(node.value)
            elif isinstance(node, ast.FunctionDef) and node.name in AUDIT_WRITERS:  # a default kind
                arguments = node.args.args + node.args.kwonlyargs
                defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults
                defaults += node.args.kw_defaults
                found = [d for a, d in zip(arguments, defaults, strict=True) if a.arg == "kind" and d]
                kinds |= set().union(*(_kinds_in(d, names) for d in found))
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            name = getattr(call.func, "id", getattr(call.func, "attr", None))
            shift = 0
            if name not in AUDIT_WRITERS:  # a writer handed to another call: run_in_executor(record_…, …)
                handed = [i for i, a in enumerate(call.args) if getattr(a, "id", None) in AUDIT_WRITERS]
                if not handed:
                    continue
                shift, name = handed[0] + 1, call.args[handed[0]].id
            found = [k.value for k in call.keywords if k.arg == "kind"]
            if name in KIND_AT and len(call.args) > shift + KIND_AT[name]:
                found.append(call.args[shift + KIND_AT[name]])
            for value in found:
                kinds |= _kinds_in(value, names)
    return kinds


def test_every_audit_event_kind_has_its_word_and_no_word_is_left_over() -> None:
    written = _written_kinds()
    assert len(written) > 40  # (the reader found the writers)
    assert written | SYNTHESIZED_KINDS == set(labels.EVENT_KINDS)
    words = list(labels.EVENT_KINDS.values())
    assert len(set(words)) == len(words)  # one word, one kind: `duban log --kind 完成` finds one


def test_the_old_english_details_read_in_the_words_new_events_are_written_in() -> None:
    from orchestrator.admin.audit_text import OLD_DETAILS

    assert {key for _, key in OLD_DETAILS if key} <= set(labels.EVENT_DETAILS)
