"""What a unit does through its link, and how the office decides (the loop closes inside duban).

A unit's actions — ``acknowledge`` (签收), ``feedback`` (反馈), ``submit_completion`` (办结申请),
``request_extension`` (延期申请) — each store one ``Submission`` row (with its ``Evidence`` files)
and one audit ``Event`` with actor ``unit:<id>``, the client address and the user agent. A unit may
act only on its own obligations in running programs: any other id is ``NotFound`` (the web's
404), nothing stored. A double submit stores one row: the same ``nonce`` (the form's one-time
value) returns the row stored the first time, and so does a second completion while one is in
review, a second identical feedback, a second acknowledgement or a second identical extension.

The office decides completions and extensions: ``approve`` and ``return_submission`` (actor
``office:<email>`` from the office page, the OS user from the CLI).

- completion: ``open|overdue|pending → submitted`` (waiting notices withdrawn, no more reminders
  or escalations while in review); approved → ``done`` with ``done_at`` = the submission time and
  ``done_late`` from the due date, the files listed as evidence; returned → open or overdue as the
  dates say (the notices still ahead fire again), the reason on the unit's page and in its next
  digest.
- extension: only up to the due date, for a later date; approved → the due date moves (the office
  may grant another date with ``until``), the obligation's notices are re-armed for the new date
  (``engine.extensions``), before/after in the audit log; returned → nothing moves.

Each function works in the caller's session; the caller commits (one request, one transaction).
``Desk`` carries what some of them need besides the session: the loaded plans (names, deliverables,
working-day calendars, notices to re-arm) and the send policy (when the unit's notice of a decision
and the office's 待审核 notice go out); without it they still work, with plainer output.

The code lives in ``admin.acting`` (who acts, on what, storing a submission), ``admin.unit_actions``
(the unit's four actions), ``admin.decisions`` (the office's) and ``admin.submission_notices`` (what
they queue); the read side in ``admin.portal``. This module keeps the names importable as one.
"""

from __future__ import annotations

from orchestrator.admin.acting import MAX_NOTE, NO_DESK, Actor, BadRequest, Desk, own_obligation
from orchestrator.admin.decisions import Decided, approve, return_submission
from orchestrator.admin.portal import (
    BoardView,
    Colour,
    Review,
    UnitObligation,
    board,
    pending_reviews,
    unacknowledged,
    unit_obligations,
)
from orchestrator.admin.submission_notices import (
    REVIEW_PENDING,
    SUBMISSION_APPROVED,
    SUBMISSION_RETURNED,
    office_units,
)
from orchestrator.admin.unit_actions import acknowledge, feedback, request_extension, submit_completion

__all__ = [
    "MAX_NOTE",
    "NO_DESK",
    "REVIEW_PENDING",
    "SUBMISSION_APPROVED",
    "SUBMISSION_RETURNED",
    "Actor",
    "BadRequest",
    "BoardView",
    "Colour",
    "Decided",
    "Desk",
    "Review",
    "UnitObligation",
    "acknowledge",
    "approve",
    "board",
    "feedback",
    "office_units",
    "own_obligation",
    "pending_reviews",
    "request_extension",
    "return_submission",
    "submit_completion",
    "unacknowledged",
    "unit_obligations",
]
