"""What the unit page, the office page and ``duban review`` read (nothing here changes a row).

- ``unit_obligations``: a unit's obligations in the running programs, most urgent first, each with
  its colour — 红 overdue, 黄 due within 3 working days or returned, 蓝 open (or in review, or not
  open yet), 绿 done (灰 waived) — its due date with weekday, lead units, deliverable, the office's
  last word and its history (as a unit should read it: who did what is 本单位 / 督办办公室 / 系统,
  never an operator's login name).
- ``pending_reviews``: completions and extensions waiting for the office, oldest first, with files.
- ``unacknowledged``: open obligations whose unit has neither acknowledged nor submitted.
- ``board``: units × tasks of the running programs, each cell the most urgent colour of its
  obligations.

The code: ``admin.portal_views`` (the views, colours and words), ``admin.unit_page`` and
``admin.office_views``; this module keeps their names importable as one.
"""

from __future__ import annotations

from notifications.labels import UNIT_PAGE_STATES as STATE_LABELS
from orchestrator.admin.office_views import board, pending_reviews, submission_rows, unacknowledged
from orchestrator.admin.portal_views import (
    DECISION_LABELS,
    EVENT_LABELS,
    KIND_LABELS,
    YELLOW_WORKDAYS,
    BoardView,
    Cell,
    Colour,
    FileView,
    HistoryEntry,
    Review,
    SubmissionView,
    Unacknowledged,
    UnitObligation,
    colour_of,
    submission_views,
    workdays_until,
)
from orchestrator.admin.unit_page import unit_obligations

__all__ = [
    "DECISION_LABELS",
    "EVENT_LABELS",
    "KIND_LABELS",
    "STATE_LABELS",
    "YELLOW_WORKDAYS",
    "BoardView",
    "Cell",
    "Colour",
    "FileView",
    "HistoryEntry",
    "Review",
    "SubmissionView",
    "Unacknowledged",
    "UnitObligation",
    "board",
    "colour_of",
    "pending_reviews",
    "submission_rows",
    "submission_views",
    "unacknowledged",
    "unit_obligations",
    "workdays_until",
]
