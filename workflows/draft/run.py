"""One plan's file (and a units file) → the draft's text and its summary: what ``duban draft`` calls."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workflows.draft.model import Draft, make_draft
from workflows.draft.names import Matcher
from workflows.draft.render import render, summary
from workflows.draft.source import read_plan


@dataclass(frozen=True)
class Drafted:
    draft: Draft
    text: str
    summary: list[str]

    @property
    def empty(self) -> bool:
        return not (self.draft.entries or self.draft.phases)


def draft_file(plan: Path, units: Path | None = None) -> Drafted:
    """Read ``plan`` (.txt or .docx) and draft its definition; names matched to ``units`` when given.

    Raises ``DraftInputError`` for a file that cannot be read as a plan, ``DefinitionError`` for a
    units file with problems.
    """
    directory = None
    if units is not None:
        from workflows.loader import load_units

        directory = load_units(units).directory
    lines = read_plan(plan)
    draft = make_draft(lines, Matcher(directory))
    text = render(draft, plan.name, str(units) if units else None)
    return Drafted(draft, text, summary(draft, text))


__all__ = ["Drafted", "draft_file"]
