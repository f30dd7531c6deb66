"""Claims: a process takes due outbox rows for itself, renews them while it sends, and gives back
what it did not try. A claim that outlives its process (``CLAIM_SECONDS``) is released: the message
is sent again, with the same Message-ID.

Two guards make the claim the one place that decides whether a message may leave now:

- the send window: with a ``SendPolicy``, a digest is claimed only while ``now`` is inside the send
  window on a working day of its program's calendar (in the program's time zone). So a catch-up
  after downtime, a retry after a backoff and a re-claimed message all wait for the next window.
  The one exception is the admin's daily failure report: it is about the mail system, not the plan,
  and goes out as soon as it is made.
- the fence: ``confirm`` re-takes the claims of a group of messages right before the group is
  sent, only those still this node's (``claimed_by``), in the transaction that commits the previous
  group's outcomes. A daemon whose claims were handed to another (a lost PostgreSQL lead, an
  expired claim) stops within one group (``deliver.GROUP_SIZE`` messages or ``GROUP_SECONDS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import case, exists, func, or_, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

from notifications.labels import EVENT_DETAILS as WORDS
from orchestrator.engine.window import SendPolicy, in_send_window
from orchestrator.store.audit import DAEMON, record
from orchestrator.store.db import chunks, driver_sql, plain_values, transaction
from orchestrator.store.models import NotificationItem, OutboxMessage, Program
from orchestrator.store.states import Channel, OutboxKind, OutboxState

log = structlog.get_logger("duban.dispatch")

CLAIM_SECONDS = 300  # a claim older than this belongs to a dead process: the message is sent again
CLAIM = timedelta(seconds=CLAIM_SECONDS)
INTERRUPTED = WORDS["interrupted"]


def outbox_update(*where):
    """An UPDATE of outbox rows (no ORM session synchronization: the sessions here hold none)."""
    return update(OutboxMessage).where(*where).execution_options(synchronize_session=False)


def claim(
    engine: Engine,
    now: datetime,
    node: str,
    limit: int,
    kinds: Sequence[str],
    max_attempts: int,
    window: SendPolicy | None = None,
    *,
    robots: bool = False,
    channel: str | None = None,
    due_by: datetime | None = None,
) -> tuple[list[int], int]:
    """Take up to ``limit`` due messages for ``node``: ``(ids in send order, expired claims released)``.

    Email rows, or with ``robots`` the group robots' rows (``channel`` ``robot:NAME``; with
    ``channel``, that robot's alone): each channel is sent by its own transport, as its own
    delivery. With ``window``, digests only of programs whose send window is open at ``now`` (see
    above). ``due_by`` (default ``now``): only rows due by then — a delivery that claims batch after
    batch takes what was due when it began, not a retry it has just scheduled.
    """
    if channel is not None:
        which = OutboxMessage.channel == channel
    else:
        which = OutboxMessage.channel != Channel.EMAIL if robots else OutboxMessage.channel == Channel.EMAIL
    with transaction(engine) as session:
        reclaimed = release_expired(session, now, max_attempts)
        due = (
            select(OutboxMessage.id)
            .where(_due(now if due_by is None else due_by), OutboxMessage.kind.in_(kinds), which)
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
        if window is not None:
            due = in_window_only(session, due, now, window)
        if engine.dialect.name == "postgresql":
            # a MATERIALIZED CTE: run once. As an IN (subquery) PostgreSQL may rescan it in a nested
            # loop and, with SKIP LOCKED, claim more than ``limit`` rows (seen: 4 for a limit of 1).
            chosen = due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
            due = select(chosen.c.id)
        claimed = session.execute(
            outbox_update(
                OutboxMessage.id.in_(due.scalar_subquery()), OutboxMessage.state == OutboxState.PENDING
            )
            .values(
                state=OutboxState.SENDING,
                claimed_by=node,
                claimed_until=now + CLAIM,
            )
            .returning(OutboxMessage.id, OutboxMessage.next_attempt_at)
        ).all()
    return [i for i, _ in sorted(claimed, key=lambda row: (row[1], row[0]))], reclaimed


def _due(by: datetime):
    return (OutboxMessage.state == OutboxState.PENDING) & (OutboxMessage.next_attempt_at <= by)


def due_robot_channels(engine: Engine, now: datetime, window: SendPolicy | None = None) -> list[str]:
    """The robot channels (``robot:NAME``) with digests due at ``now`` (inside the send window, with
    ``window``): the daemon starts one delivery for each."""
    with Session(engine) as session:
        query = select(OutboxMessage.channel).where(
            _due(now), OutboxMessage.channel != Channel.EMAIL, OutboxMessage.kind == OutboxKind.DIGEST
        )
        if window is not None:
            query = in_window_only(session, query, now, window)
        return sorted(set(session.execute(query.distinct()).scalars()))


def in_window_only(session: Session, due, now: datetime, window: SendPolicy):
    """``due`` narrowed to digests of programs whose send window is open at ``now`` (and other kinds)."""
    programs = session.execute(select(Program.id, Program.workflow, Program.timezone)).all()
    open_ids = [
        pid
        for pid, workflow, tz in programs
        if in_send_window(now, ZoneInfo(tz), window.window, window.calendar(workflow))
    ]
    if len(open_ids) == len(programs):
        return due  # inside every program's window (the usual case in working hours): no filter
    items = NotificationItem.__table__.c
    email_row = func.coalesce(OutboxMessage.parent_id, OutboxMessage.id)  # a robot's row: its email's
    in_open_program = exists().where(items.message_id == email_row, items.program_id.in_(open_ids or [-1]))
    return due.where(or_(OutboxMessage.kind != OutboxKind.DIGEST, in_open_program))


def confirm(connection: Connection, now: datetime, node: str, ids: Sequence[int]) -> set[int]:
    """Right before a group is sent: extend this node's claims on ``ids``; the ids still ours.

    One statement in the caller's transaction (the one that commits the previous group's outcomes);
    a row is ours while it is ``sending`` and ``claimed_by`` this node. Plain SQL through the driver:
    it runs once a group, between two SMTP conversations, and SQLAlchemy's statement machinery cost
    more than the statement itself.
    """
    table = OutboxMessage.__table__
    ((until,),) = plain_values(table, connection.dialect, ["claimed_until"], [{"claimed_until": now + CLAIM}])
    ours: set[int] = set()
    for chunk in chunks(ids):
        if connection.dialect.name == "postgresql":
            where, values = "id = ANY(?)", (list(chunk),)
        else:
            where, values = f"id IN ({', '.join('?' for _ in chunk)})", tuple(chunk)
        sql = (
            f"UPDATE outbox_message SET claimed_until = ? WHERE {where} "
            f"AND state = '{OutboxState.SENDING.value}' AND claimed_by = ? RETURNING id"
        )
        ours.update(row[0] for row in driver_sql(connection, sql, (until, *values, node)))
    return ours


def release_expired(session: Session, now: datetime, max_attempts: int) -> int:
    """Claims of a process that died mid-send go back to pending: sent again, with the same Message-ID.

    The interrupted send counts as an attempt (its outcome is unknown), so a message that kills its
    sender every time ends ``failed`` after ``max_attempts`` instead of blocking the outbox forever.
    """
    attempts = OutboxMessage.attempts + 1
    rows = session.execute(
        outbox_update(OutboxMessage.state == OutboxState.SENDING, OutboxMessage.claimed_until < now)
        .values(
            state=case((attempts >= max_attempts, OutboxState.FAILED), else_=OutboxState.PENDING),
            attempts=attempts,
            last_error=INTERRUPTED,
            claimed_by=None,
            claimed_until=None,
        )
        .returning(OutboxMessage.id, OutboxMessage.message_id, OutboxMessage.recipient, OutboxMessage.state)
    ).all()
    for outbox_id, message_id, recipient, state in rows:
        record(
            session,
            at=now,
            actor=DAEMON,
            kind="mail.reclaimed",
            unit=recipient,
            subject=message_id,
            before={"state": OutboxState.SENDING},
            after={"state": state, "outbox_id": outbox_id},
            detail=INTERRUPTED + ("；" + WORDS["resent"] if state == OutboxState.PENDING else ""),
        )
    if rows:
        log.warning(
            "mail.reclaimed", messages=len(rows), failed=sum(r[3] == OutboxState.FAILED for r in rows)
        )
    return len(rows)


def renew(connection: Connection, now: datetime, node: str, ids: Sequence[int]) -> None:
    """Extend this node's claims on ``ids`` (a long batch must not look like a dead one)."""
    with connection.begin():
        for chunk in chunks(ids):
            connection.execute(
                outbox_update(
                    OutboxMessage.id.in_(chunk),
                    OutboxMessage.state == OutboxState.SENDING,
                    OutboxMessage.claimed_by == node,
                ).values(claimed_until=now + CLAIM)
            )


def release(connection: Connection, node: str, ids: Sequence[int]) -> None:
    """Give back claims that were not tried (a stop request, an error): pending again, untouched."""
    with connection.begin():
        for chunk in chunks(ids):
            connection.execute(
                outbox_update(
                    OutboxMessage.id.in_(chunk),
                    OutboxMessage.state == OutboxState.SENDING,
                    OutboxMessage.claimed_by == node,
                ).values(state=OutboxState.PENDING, claimed_by=None, claimed_until=None)
            )
