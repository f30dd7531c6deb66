"""Every state and notice kind has its zh-CN word in the one label table."""

from __future__ import annotations

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
