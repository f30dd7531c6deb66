"""``simulate``: the very same engine on an in-memory database with a fake clock.

The clock steps from event to event (the next timer, the next send slot); each step runs ``tick``
and the dispatcher's ``enqueue`` — the grouping into digests, Message-IDs and subjects that the
real dispatcher uses — and records each message as sent at that moment instead of rendering and
handing it to a transport. Nothing is stored, nothing is sent. The result is every email in send
order with the items it carries.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import String, bindparam, cast, func, update
from sqlmodel import Session, select

from orchestrator.engine.clock import FakeClock
from orchestrator.engine.outbox import enqueue
from orchestrator.engine.programs import start_program
from orchestrator.engine.tick import tick
from orchestrator.engine.window import SendPolicy
from orchestrator.store.db import IN_LIMIT, gc_paused, memory_engine, transaction
from orchestrator.store.models import NotificationItem, OutboxMessage, Timer
from orchestrator.store.states import ItemState, OutboxState
from workflows.catalog import Bundle


class Facts(Sequence):
    """The JSON items of one email, kept compact: per stored item its fact and, for an escalation,
    the late units it lists (shared strings). A dict is made for each as it is read: one office's
    digest of a province's year lists a million late units, and a dict for each was most of the
    memory of reading the year back (``benchmarks/province_year.py``)."""

    __slots__ = ("_ends", "_parts")

    def __init__(self) -> None:
        self._parts: list[tuple[dict, list[str] | None]] = []
        self._ends: list[int] = []  # the running count of facts after each part

    @classmethod
    def of(cls, rows: Sequence, late_of: Callable[[int], list], names: dict[str, str]) -> Facts:
        """The facts of one message's stored items (``_ITEM_COLUMNS`` rows, in id order); ``late_of``
        reads one item's list of late units, ``names`` shares each unit id's string between lists.

        An escalation lists each late unit once per message although several steps of it may reach
        the recipient together (catch-up, or a recipient holding both roles): as the digest lists
        them (``DigestBuilder._late_pairs``), by obligation id per kind — and an obligation id names its
        task occurrence, so only items of one kind and (task, occurrence, due) can list the same one."""
        facts = cls()
        listing = Counter(_late_group(row) for row in rows if row[-2])
        seen: dict[tuple, set[int]] = {}
        for row in rows:
            units = None
            if row[-2]:  # (listing)
                group = _late_group(row)
                listed = seen.setdefault(group, set()) if listing[group] > 1 else None
                units = []
                for oid, unit in late_of(row[-1]):  # (id)
                    if listed is None or oid not in listed:
                        if listed is not None:
                            listed.add(oid)
                        units.append(names.setdefault(unit, unit))
                if not units:
                    continue
            facts._add(row, units)
        return facts

    def _add(self, row, units: list[str] | None) -> None:
        _, kind, key, phase, task, unit, recipient, occurrence, due, _, _ = row  # (a row is a tuple)
        fact = {
            "kind": kind,
            "workflow": _workflow_of(key),
            "phase": phase,
            "task": task,
            "unit": unit or recipient,
            "occurrence": occurrence,
            "due": due,
        }
        self._parts.append((fact, units))
        self._ends.append(len(self) + (1 if units is None else len(units)))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __iter__(self) -> Iterator[dict]:
        for fact, units in self._parts:
            if units is None:
                yield dict(fact)
            else:
                for unit in units:
                    yield {**fact, "unit": unit}

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(self)[index]
        size = len(self)
        if not -size <= index < size:
            raise IndexError("fact index out of range")
        index %= size
        part = bisect_right(self._ends, index)
        fact, units = self._parts[part]
        if units is None:
            return dict(fact)
        return {**fact, "unit": units[index - (self._ends[part - 1] if part else 0)]}

    def __eq__(self, other) -> bool:
        if isinstance(other, Facts | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # mutable while it is filled, like a list

    def __repr__(self) -> str:
        return f"Facts({list(self)!r})"


def _late_group(row) -> tuple:
    """(kind, task, occurrence, due): the items whose lists of late units may overlap."""
    return (row[1], row[4], row[7], row[8])


@dataclass(frozen=True)
class SimulatedEmail:
    send_at: datetime
    to_unit: str
    to: list[str]
    subject: str
    message_id: str
    items: Facts

    def as_json(self, tz: ZoneInfo) -> dict:
        return {
            "send_at": self.send_at.astimezone(tz).isoformat(),
            "to_unit": self.to_unit,
            "to": self.to,
            "subject": self.subject,
            "message_id": self.message_id,
            "items": list(self.items),
        }


def next_event(engine, after: datetime) -> datetime | None:
    """The next moment something is due: a timer, an item's send slot, a message's next attempt."""
    with Session(engine) as session:
        candidates = [
            session.exec(select(func.min(Timer.fire_at)).where(Timer.fired_at.is_(None))).one(),
            session.exec(
                select(func.min(NotificationItem.send_at)).where(NotificationItem.state == ItemState.PENDING)
            ).one(),
            session.exec(
                select(func.min(OutboxMessage.next_attempt_at)).where(
                    OutboxMessage.state == OutboxState.PENDING
                )
            ).one(),
        ]
    found = [c for c in candidates if c is not None]
    return max(min(found), after) if found else None


def simulate(
    bundle: Bundle,
    year: int,
    *,
    start: date | None = None,
    until: date | None = None,
    policy: SendPolicy,
    renderer,
    engine=None,
) -> Iterator[SimulatedEmail]:
    """Run the plan from ``start`` (default 01-01) to ``until`` (default 01-31 of the next year),
    then return its emails in send order (an iterator: they are read from the database as needed).

    ``engine`` defaults to a fresh in-memory database (benchmarks pass a scratch file instead).
    """
    tz = ZoneInfo(bundle.definition.workflow.timezone)
    begin = datetime.combine(start or date(year, 1, 1), time(0), tz).astimezone(UTC)
    end = datetime.combine((until or date(year + 1, 1, 31)) + timedelta(days=1), time(0), tz).astimezone(UTC)
    engine = engine if engine is not None else memory_engine()
    clock = FakeClock(begin)
    with transaction(engine) as session:
        start_program(session, bundle, year, begin, horizon_days=800)
    bundles = {bundle.definition.workflow.id: bundle}
    _run(engine, clock, end, policy, bundles, renderer)
    return _emails(engine)


def _run(engine, clock: FakeClock, end: datetime, policy: SendPolicy, bundles, renderer) -> None:
    while True:
        now = clock.now()
        tick(engine, now, policy)
        enqueue(engine, now, bundles, renderer)
        _mark_sent(engine, now)
        following = next_event(engine, now + timedelta(seconds=1))
        if following is None or following >= end:
            return
        clock.set(following)


def _mark_sent(engine, now: datetime) -> None:
    """The capture step: what the dispatcher would hand to a transport now is recorded as sent."""
    with transaction(engine) as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.state == OutboxState.PENDING, OutboxMessage.next_attempt_at <= now)
            .values(state=OutboxState.SENT, sent_at=now, attempts=1)
        )


_ITEM_NAMES = ("message_id", "kind", "key", "phase", "task", "unit", "recipient", "occurrence")


def _emails(engine) -> Iterator[SimulatedEmail]:
    """Every sent message with its items, in send order, streamed: a province's year is 1.8M emails
    and 17M facts, and one office's digest can list a million late units — only one email's facts
    are in memory at a time, compactly (``Facts``), and the lists of late units are read one item at
    a time (a page of items with their lists, parsed together, was a gigabyte at 50,000 units).
    Messages are read in id order, which is their send order here: the simulated dispatcher sends
    every message in the run that queued it (no retries)."""
    messages, items = OutboxMessage.__table__, NotificationItem.__table__
    columns = [
        *(items.c[n] for n in _ITEM_NAMES),
        cast(items.c.due, String).label("due"),
        items.c.late.is_not(None).label("listing"),
        items.c.id,
    ]
    late_query = select(cast(items.c.late, String)).where(items.c.id == bindparam("item_id"))
    names: dict[str, str] = {}  # one string per unit id, shared by every list that names it
    with engine.connect() as connection:

        def late_of(item_id: int) -> list:
            return json.loads(connection.execute(late_query, {"item_id": item_id}).scalar_one())

        streamed = connection.execution_options(yield_per=IN_LIMIT)  # cursors read page by page
        sent = streamed.execute(
            select(*(messages.c[n] for n in ("id", "sent_at", "recipient", "to", "subject", "message_id")))
            .where(messages.c.state == OutboxState.SENT)
            .order_by(messages.c.id)
        )
        for chunk in sent.partitions():
            query = (
                select(*columns)
                .where(items.c.message_id.in_([m.id for m in chunk]))
                .order_by(items.c.message_id, items.c.id)
            )
            rows = iter(streamed.execute(query))
            row = next(rows, None)
            for message in chunk:  # a merge of two id-ordered streams
                mine = []
                while row is not None and row[0] == message.id:  # (message_id)
                    mine.append(row)
                    row = next(rows, None)
                with gc_paused():
                    facts = Facts.of(mine, late_of, names)
                yield SimulatedEmail(
                    send_at=message.sent_at,
                    to_unit=message.recipient,
                    to=list(message.to),
                    subject=message.subject,
                    message_id=message.message_id,
                    items=facts,
                )


def _workflow_of(key: str) -> str:
    return key.split("/", 1)[0]


def render_messages(engine, bundle: Bundle, renderer, *, unit: str | None = None, scorecard=None):
    """Every simulated email rendered as the dispatcher would (``(SimulatedEmail, EmailMessage)``,
    in send order; only those to ``unit`` if given). ``engine`` is the one ``simulate`` ran on."""
    from orchestrator.engine.digest import DigestBuilder, Group

    bundles = {bundle.definition.workflow.id: bundle}
    for email in _emails(engine):
        if unit is not None and email.to_unit != unit:
            continue
        with Session(engine) as session:
            message = session.exec(
                select(OutboxMessage).where(OutboxMessage.message_id == email.message_id)
            ).one()
            stored = session.exec(
                select(NotificationItem)
                .where(NotificationItem.message_id == message.id)
                .order_by(NotificationItem.id)
            ).all()
            builder = DigestBuilder(session, bundles, scorecard)
            digest = builder.digest(Group(message.recipient, message.send_date, tuple(stored)))
            yield email, renderer.render(digest, now=email.send_at)
