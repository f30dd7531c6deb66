"""Outcomes: each send's result, with its audit events, kept in ``Outcomes`` until its group commits.

The runner (deliver.py) commits a group's outcomes together (``GROUP_SIZE`` messages or
``GROUP_SECONDS``, whichever first) in the transaction that confirms the next group's claims: one
commit per group instead of two short transactions per message. What a crash loses is the last
group's outcomes: those messages are still claimed, go back to pending when the claim expires and
are sent again with the same Message-IDs.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from itertools import groupby

import structlog
from sqlalchemy.engine import Connection

from notifications.labels import EVENT_DETAILS as WORDS
from notifications.transport import SendResult
from orchestrator.engine.outbox.letters import Letter
from orchestrator.engine.outbox.policy import MailPolicy
from orchestrator.store.audit import DAEMON, event_row
from orchestrator.store.db import bulk_insert, bulk_update
from orchestrator.store.models import Event, OutboxMessage
from orchestrator.store.states import Channel, OutboxState

log = structlog.get_logger("duban.dispatch")


def backoff(attempts: int, mail: MailPolicy, rng: random.Random) -> timedelta:
    """Exponential backoff with ±20 % jitter: retry_base · 2^(attempts−1), capped at retry_max."""
    seconds = min(mail.retry_max, mail.retry_base * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=seconds * rng.uniform(0.8, 1.2))


def _shape(row: dict) -> tuple[str, ...]:
    return tuple(sorted(row))


class Outcomes:
    """Outcomes recorded and not yet committed: each message's new state and its audit events.

    ``write`` puts them all in the caller's transaction: one executemany per shape of SET clause (a
    sent message and a retried one change different columns) and one for the events, as plain SQL
    straight through the driver (``db.bulk_update``, ``db.bulk_insert``), on the batch's connection:
    per message, pool checkouts, SQLAlchemy's statement machinery and the ORM's unit of work would
    cost more than the send itself.
    """

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.events: list[dict] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, outbox_id: int, values: dict, events: list[dict]) -> None:
        self.rows.append({"outbox_id": outbox_id, **values})
        self.events.extend(events)

    def write(self, connection: Connection) -> None:
        """Execute the outcomes in ``connection``'s open transaction; ``clear`` once it committed."""
        for _, rows in groupby(sorted(self.rows, key=_shape), key=_shape):
            bulk_update(connection, OutboxMessage.__table__, list(rows), key="outbox_id")
        bulk_insert(connection, Event.__table__, self.events)

    def clear(self) -> None:
        self.rows, self.events = [], []

    def extend(self, later: Outcomes) -> None:
        """Add ``later``'s outcomes after these (a commit that failed gets the ones recorded since)."""
        self.rows += later.rows
        self.events += later.events


def _family(letter: Letter) -> tuple[str, dict]:
    """The event kinds' prefix (``mail`` or ``robot``) and what a robot's events add to ``after``."""
    if letter.channel == Channel.EMAIL:
        return "mail", {}
    return "robot", {"channel": letter.channel}


def record_sent(
    outcomes: Outcomes,
    now: datetime,
    letter: Letter,
    result: SendResult,
    *,
    mail: MailPolicy,
    rng: random.Random,
) -> bool:
    """Record a send the server took (for some recipients at least). Returns True when it is done.

    Recipients refused with 5xx are refused for good. Recipients refused with 4xx (``deferred``)
    are still owed: the message stays pending for them alone, after the backoff a whole-message
    4xx would get, with the same Message-ID. After ``mail.max_attempts`` it is ``failed`` as a
    whole-message 4xx would be, still owed to them (listed in the admin's failure report; ``outbox
    retry`` sends it to them alone).
    """
    attempts = letter.attempts + 1
    deferred = dict(result.deferred)
    giving_up = bool(deferred) and attempts >= mail.max_attempts
    result_refused = dict(result.refused)
    refused = dict(letter.refused) | result_refused
    about = {"at": now, "actor": DAEMON, "unit": letter.recipient, "subject": letter.message_id}
    family, channel = _family(letter)
    events = [
        event_row(
            kind=f"{family}.sent",
            after={
                "outbox_id": letter.outbox_id,
                "to": list(result.accepted),
                "attempts": attempts,
                **channel,
            },
            **about,
        )
    ]
    if result_refused:
        events.append(
            event_row(
                kind="mail.refused",
                after={"outbox_id": letter.outbox_id, "refused": result_refused},
                detail=WORDS["refused"],
                **about,
            )
        )
    values = {
        "sent_at": now,
        "attempts": attempts,
        "refused": refused,
        "claimed_by": None,
        "claimed_until": None,
    }
    shown = None
    if deferred:
        next_attempt = None if giving_up else now + backoff(attempts, mail, rng)
        shown = next_attempt.isoformat() if next_attempt else None
        error = "; ".join(f"{a}: {r}" for a, r in deferred.items())
        state = OutboxState.FAILED if giving_up else OutboxState.PENDING
        values |= {
            "state": state,
            "owed": list(deferred),
            "last_error": WORDS["refused_now"].format(error=error)[:1000],
        }
        if next_attempt is not None:
            values["next_attempt_at"] = next_attempt
        if giving_up:
            detail = WORDS["given_up"].format(n=attempts, error=error)
        else:
            detail = WORDS["deferred"].format(error=error)
        after = {"outbox_id": letter.outbox_id, "state": state, "owed": list(deferred), "attempts": attempts}
        events.append(
            event_row(
                kind="mail.failed" if giving_up else "mail.deferred",
                before={"state": OutboxState.SENDING},
                after=after | {"next_attempt_at": shown},
                detail=detail[:1000],
                **about,
            )
        )
    else:
        values |= {"state": OutboxState.SENT, "owed": None, "last_error": None}
    outcomes.add(letter.outbox_id, values, events)
    log.info(
        f"{family}.sent",
        message=letter.message_id,
        unit=letter.recipient,
        attempts=attempts,
        refused=sorted(result_refused) or None,
        deferred=sorted(deferred) or None,
        next_attempt_at=shown,
    )
    return not deferred


def record_failure(
    outcomes: Outcomes,
    now: datetime,
    letter: Letter,
    error: str,
    *,
    permanent: bool,
    mail: MailPolicy,
    rng: random.Random,
    wait: float | None = None,
) -> bool:
    """Count a failed attempt: pending again after a backoff (at least ``wait`` seconds, when the
    destination said how long), or ``failed``. Returns True when failed."""
    attempts = letter.attempts + 1
    failed = permanent or attempts >= mail.max_attempts
    delay = max(backoff(attempts, mail, rng), timedelta(seconds=wait or 0))
    next_attempt = None if failed else now + delay
    state = OutboxState.FAILED if failed else OutboxState.PENDING
    values: dict = {"state": state, "attempts": attempts, "last_error": error[:1000]}
    values |= {"claimed_by": None, "claimed_until": None}
    if next_attempt is not None:
        values["next_attempt_at"] = next_attempt
    family, channel = _family(letter)
    kind = f"{family}.failed" if failed else f"{family}.retry"
    shown = next_attempt.isoformat() if next_attempt else None
    after = {"outbox_id": letter.outbox_id, "state": state, "attempts": attempts, "next_attempt_at": shown}
    event = event_row(
        at=now,
        actor=DAEMON,
        kind=kind,
        unit=letter.recipient,
        subject=letter.message_id,
        before={"state": OutboxState.SENDING},
        after=after | channel,
        detail=error[:1000],
    )
    outcomes.add(letter.outbox_id, values, [event])
    log.warning(
        kind,
        message=letter.message_id,
        unit=letter.recipient,
        attempts=attempts,
        next_attempt_at=shown,
        error=error,
    )
    return failed
