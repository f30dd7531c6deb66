"""Where a definition names units, read from its raw TOML data (so that a definition with other
problems is still checked): every reference list, every ``role:X`` with the task it serves, and the
did-you-mean hint the checks share."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TASK_TABLES = ("tasks", "duties")
REF_KEYS = ("lead", "responsible")


def entries(data: Mapping[str, Any], table: str) -> list[tuple[int, dict[str, Any]]]:
    """``(index, table)`` of every entry of the array of tables ``table`` that is a table."""
    value = data.get(table)
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def did_you_mean(value: str, known: Iterable[str]) -> str:
    """``did you mean "X"?`` for the known name closest to ``value`` (a misspelling or a part of it), or ""."""
    known = list(known)
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    if not close and len(value) >= 3:
        close = sorted(
            (k for k in known if value.lower() in k.lower() or k.lower() in value.lower()), key=len
        )
    return f'did you mean "{close[0]}"?' if close else ""


def ref_lists(data: Mapping[str, Any]) -> Iterable[tuple[tuple, Any, bool]]:
    """Every unit reference list in raw definition data: ``(loc, value, may_be_lead)``."""
    workflow = data.get("workflow") if isinstance(data.get("workflow"), dict) else {}
    if "contact" in workflow:
        yield ("workflow", "contact"), workflow["contact"], False
    for k, step in entries(workflow, "escalation"):
        yield ("workflow", "escalation", k, "to"), step.get("to"), True
    for table in TASK_TABLES:
        for i, task in entries(data, table):
            for key in REF_KEYS:
                yield (table, i, key), task.get(key), False
            for k, step in entries(task, "escalation"):
                yield (table, i, "escalation", k, "to"), step.get("to"), True
            for j, indicator in entries(task, "indicators"):
                yield (table, i, "indicators", j, "reported_by"), indicator.get("reported_by"), False
    evaluation = data.get("evaluation") if isinstance(data.get("evaluation"), dict) else {}
    for key in ("subjects", "recipients"):
        yield ("evaluation", key), evaluation.get(key), False


def refs_at(loc: tuple, value: Any) -> list[tuple[tuple, str]]:
    """The references of one list (or of one string), each with its own location."""
    if isinstance(value, str):
        return [(loc, value)]
    if isinstance(value, list):
        return [((*loc, j), ref) for j, ref in enumerate(value) if isinstance(ref, str)]
    return []


@dataclass(frozen=True)
class RoleUse:
    """One place a plan names ``role:X``: where (``loc``), for what (``key``: lead, responsible,
    escalation, reported_by, contact, subjects, recipients) and in which task (``task``: its id and
    title, or None for the plan's ``[workflow]`` and ``[evaluation]``)."""

    loc: tuple
    key: str
    task: tuple[str, str] | None

    def label(self) -> str:
        """``T01 建立健全行政决策机制`` (the title cut short), or ``[workflow] contact``."""
        if self.task is not None:
            task_id, title = self.task
            short = title if len(title) <= 12 else title[:11] + "…"
            return f"{task_id} {short}".strip()
        return f"[{self.loc[0]}] {self.key}"


def role_uses(data: Mapping[str, Any]) -> dict[str, list[RoleUse]]:
    """Every ``role:X`` of a definition: role → its uses, in file order."""
    found: dict[str, list[RoleUse]] = {}
    for loc, value, _ in ref_lists(data):
        for ref_loc, ref in refs_at(loc, value):
            if not ref.startswith("role:"):
                continue
            task = None
            if loc[0] in TASK_TABLES:
                raw = data[loc[0]][loc[1]]
                task = (str(raw.get("id", "?")), str(raw.get("title", "")))
            key = "escalation" if "escalation" in loc else loc[-1] if loc[0] != "workflow" else loc[1]
            found.setdefault(ref[5:], []).append(RoleUse(ref_loc, key, task))
    return found


def contact_of(data: Mapping[str, Any]) -> str | None:
    """The plan's office: its ``[workflow] contact`` reference, if it has one."""
    workflow = data.get("workflow")
    contact = workflow.get("contact") if isinstance(workflow, dict) else None
    return contact if isinstance(contact, str) else None
