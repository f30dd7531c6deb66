"""Enqueue: pending items whose send slot has come become outbox messages.

Items are grouped (``digest.group_items``, the grouping ``simulate`` uses) into one message per
recipient and local day, with a Message-ID derived from the item keys; the messages, the items'
``queued`` state and a ``mail.queued`` event per message commit in one transaction.

The office's 待审核 notice is counted when it is due: if nothing waits for review in its program any
more (everything was decided since it was queued), the item is skipped (``notice.skipped``) — the
office gets no email saying 目前没有待审核的申请.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine, Row
from sqlmodel import Session, select

from notifications.model import NoticeKind, digest_message_id
from notifications.render import Renderer
from notifications.robots import robot_message_id
from notifications.view import subject_line
from orchestrator.engine.digest import DigestBuilder, Group, group_items
from orchestrator.engine.outbox.letters import one_line
from orchestrator.store.audit import DAEMON, event_row, insert_events
from orchestrator.store.db import (
    IN_LIMIT,
    among,
    bulk_insert,
    chunks,
    gc_paused,
    memoized,
    set_per_id,
    transaction,
)
from orchestrator.store.models import NotificationItem, Obligation, OutboxMessage, Program, Submission
from orchestrator.store.states import REVIEW_KINDS, Channel, ItemState, OutboxKind, OutboxState
from workflows.catalog import Bundle

log = structlog.get_logger("duban.dispatch")

_ENQUEUE_LOCK = 0x6475626F  # "dubo": PostgreSQL advisory lock class serializing ``enqueue``


def timezones(session: Session, program_ids: Iterable[int]) -> dict[int, ZoneInfo]:
    rows = session.exec(select(Program.id, Program.timezone).where(Program.id.in_(set(program_ids))))
    return {pid: ZoneInfo(tz) for pid, tz in rows}


@gc_paused()
def enqueue(
    engine: Engine,
    now: datetime,
    bundles: Mapping[str, Bundle],
    renderer: Renderer,
    programs: Collection[int] | None = None,
) -> int:
    """Group every pending item with ``send_at <= now`` into outbox messages; returns how many were
    created. With ``programs`` (ids), only their items: those of a program the daemon does not run
    wait (``tick``'s ``programs``).

    One transaction: the messages, the items' ``queued`` state and link, and a ``mail.queued`` event
    per message. Concurrent calls are serialized (an advisory lock on PostgreSQL, the single writer on
    SQLite), so one unit never gets two messages for one day because two processes split its items.
    A province's busiest day (170k items for 5,000 units, ten times that centrally) is read once, in
    order of recipient, and grouped in parts of about ``PART_ITEMS`` items — a recipient's items are
    always in one part, so the messages are the same; their order is then by part first.
    """
    created = queued = 0
    with transaction(engine) as session:
        if engine.dialect.name == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(:cls, hashtext(current_schema()))"), {"cls": _ENQUEUE_LOCK}
            )
        builder = DigestBuilder(session, bundles)
        for part in _parts(session.connection(), now, programs):
            made, items = _enqueue_part(session, builder, part, now, renderer)
            created, queued = created + made, queued + items
    if created:
        log.info("mail.queued", messages=created, items=queued)
    return created


PART_ITEMS = 50_000
ITEMS = NotificationItem.__table__


def _due(now: datetime) -> tuple:
    return (ITEMS.c.state == ItemState.PENDING, ITEMS.c.send_at <= now)


ITEM_COLUMNS = [ITEMS.c[n] for n in ("id", "key", "kind", "recipient", "program_id", "phase")]


def _parts(connection, now: datetime, programs: Collection[int] | None = None) -> Iterator[list[Row]]:
    """The due items in parts of about ``PART_ITEMS`` items, each of whole recipients: one query in
    order of recipient, read page by page. (A query per range of recipients read every due item
    each time: a province's busiest day, 1.4M items in 28 parts, was read 28 times over.)

    Not the lists of late units (a province's escalations list up to a million a day): a flag, and
    each list read when its group's subject line is counted (``_late_of``)."""
    query = (
        select(*ITEM_COLUMNS, memoized(ITEMS.c.send_at), ITEMS.c.late.is_not(None).label("listing"))
        .where(*_due(now))
        .order_by(ITEMS.c.recipient, ITEMS.c.send_at, ITEMS.c.id)  # each recipient's in send order
        .execution_options(yield_per=IN_LIMIT)  # (a server-side cursor on PostgreSQL)
    )
    if programs is not None:
        query = query.where(ITEMS.c.program_id.in_(sorted(programs)))
    part: list[Row] = []
    for row in connection.execute(query):
        if len(part) >= PART_ITEMS and row.recipient != part[-1].recipient:
            yield part
            part = []
        part.append(row)
    if part:
        yield part


def _enqueue_part(
    session, builder: DigestBuilder, items: list[Row], now: datetime, renderer
) -> tuple[int, int]:
    """One part's items grouped into messages, queued: ``(messages created, items read)``."""
    read = len(items)
    items = _without_stale_reviews(session, items, now)
    if not items:
        return 0, read
    connection = session.connection()
    groups = group_items(items, timezones(session, {i.program_id for i in items}))
    keyed = {digest_message_id((i.key for i in g.items), renderer.domain): g for g in groups}
    ids = _existing_messages(connection, list(keyed))
    late = _late_of(connection)
    rows = [
        _message_row(builder, group, message_id, now, late)
        for message_id, group in keyed.items()
        if message_id not in ids
    ]
    if rows:
        bulk_insert(connection, OutboxMessage.__table__, rows)
        ids.update(_existing_messages(connection, [row["message_id"] for row in rows]))
        insert_events(session, [_queued_event(row, ids[row["message_id"]], now) for row in rows])
        robot_rows = _robot_rows(builder, keyed, rows, ids)
        if robot_rows:
            bulk_insert(connection, OutboxMessage.__table__, robot_rows)
            queued = _existing_messages(connection, [row["message_id"] for row in robot_rows])
            insert_events(session, [_queued_event(r, queued[r["message_id"]], now) for r in robot_rows])
    links = [(item.id, ids[message_id]) for message_id, group in keyed.items() for item in group.items]
    set_per_id(connection, "notification_item", "message_id", links, "bigint", state=ItemState.QUEUED.value)
    return len(rows), read


def _without_stale_reviews(session, items: list[Row], now: datetime) -> list[Row]:
    """``items`` less the office's 待审核 notices of programs with nothing waiting for review any
    more: those are skipped, each with a ``notice.skipped`` event (a few a day: one query per program)."""
    programs = {i.program_id for i in items if i.kind == NoticeKind.REVIEW_PENDING}
    if not programs:
        return items
    waiting = set(
        session.exec(
            select(Obligation.program_id)
            .join(Submission, Submission.obligation_id == Obligation.id)
            .where(
                Obligation.program_id.in_(sorted(programs)),
                Submission.decision.is_(None),
                Submission.kind.in_(tuple(REVIEW_KINDS)),
            )
            .distinct()
        )
    )
    stale = [i for i in items if i.kind == NoticeKind.REVIEW_PENDING and i.program_id not in waiting]
    if not stale:
        return items
    session.execute(
        ITEMS.update().where(ITEMS.c.id.in_([i.id for i in stale])).values(state=ItemState.SKIPPED)
    )
    insert_events(
        session,
        [
            event_row(
                at=now,
                actor=DAEMON,
                kind="notice.skipped",
                program_id=i.program_id,
                unit=i.recipient,
                subject=i.key,
                detail="nothing waits for review any more: no 待审核 email",
            )
            for i in stale
        ],
    )
    gone = {i.id for i in stale}
    return [i for i in items if i.id not in gone]


def _existing_messages(connection, message_ids: list[str]) -> dict[str, int]:
    """Message-ID → outbox id of those already queued (the same items queued again: not a new email)."""
    outbox = OutboxMessage.__table__
    found: dict[str, int] = {}
    for chunk in chunks(message_ids):
        query = select(outbox.c.message_id, outbox.c.id).where(
            among(outbox.c.message_id, chunk, connection.dialect)
        )
        found.update({message_id: outbox_id for message_id, outbox_id in connection.execute(query).all()})
    return found


def _late_of(connection) -> Callable[[Row], list | None]:
    """An item's list of late units, read alone (one list in memory at a time)."""
    query = select(ITEMS.c.late).where(ITEMS.c.id == bindparam("item_id"))

    def late(item: Row) -> list | None:
        return connection.execute(query, {"item_id": item.id}).scalar_one() if item.listing else None

    return late


def _message_row(builder: DigestBuilder, group: Group, message_id: str, now, late) -> dict:
    """The outbox row of one group. A digest that cannot be built is queued all the same (it fails,
    with its reason, when it is sent): one broken item must not keep every other email back."""
    try:
        to, subject = list(builder.addressee(group).emails), subject_line(builder.summary(group, late))
    except Exception as exc:  # any error of one digest: the others are queued all the same
        log.error("mail.digest_failed", unit=group.recipient, error=one_line(exc))
        to, subject = [], f"【督办】（{len(group.items)}项通知，无法生成邮件）"
    return {
        "message_id": message_id,
        "recipient": group.recipient,
        "to": to,
        "subject": subject,
        "send_date": group.send_date,
        "state": OutboxState.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "refused": {},
        "created_at": now,
        "kind": OutboxKind.DIGEST,
    }


def _robot_rows(
    builder: DigestBuilder, keyed: dict[str, Group], rows: list[dict], ids: dict[str, int]
) -> list[dict]:
    """One row per robot of the recipient unit for each new email: the same digest, its own delivery
    (state, attempts, errors), found again by the email it goes with (``parent_id``)."""
    robot_rows = []
    for row in rows:
        group = keyed[row["message_id"]]
        for name in _robots_of(builder, group):
            robot_rows.append(
                row
                | {
                    "message_id": robot_message_id(row["message_id"], name),
                    "to": [],
                    "channel": Channel.robot(name),
                    "parent_id": ids[row["message_id"]],
                }
            )
    return robot_rows


def _robots_of(builder: DigestBuilder, group: Group) -> list[str]:
    bundle = builder.bundle(builder.program(group.items[0].program_id))
    unit = bundle.units.directory.by_id.get(group.recipient) if bundle else None
    return list(dict.fromkeys(unit.robots)) if unit else []


def _queued_event(row: dict, outbox_id: int, now: datetime) -> dict:
    channel = row.get("channel", Channel.EMAIL)
    after = {"outbox_id": outbox_id, "to": row["to"], "send_date": str(row["send_date"])}
    return event_row(
        at=now,
        actor=DAEMON,
        kind="mail.queued" if channel == Channel.EMAIL else "robot.queued",
        unit=row["recipient"],
        subject=row["message_id"],
        after=after if channel == Channel.EMAIL else after | {"channel": channel},
        detail=row["subject"],
    )
