"""Letters: claimed outbox rows loaded and turned into emails (a stored body, or a digest rendered now)."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP

from sqlalchemy.engine import Engine, Row
from sqlmodel import Session, select

from notifications.model import Digest
from notifications.render import Renderer
from notifications.render_pool import RenderPool
from orchestrator.engine.digest import DigestBuilder, Group, Scorecard
from orchestrator.store.db import among, chunks
from orchestrator.store.models import NotificationItem, OutboxMessage
from orchestrator.store.states import Channel
from workflows.catalog import Bundle


@dataclass(frozen=True)
class Letter:
    """A claimed message, detached from the database: what to send, to whom, or why it cannot be."""

    outbox_id: int
    message_id: str
    recipient: str
    to: tuple[str, ...]  # the envelope: the addresses still owed (all of the row's ``to`` at first)
    attempts: int
    kind: str
    body: bytes | None
    digest: Digest | None
    problem: str | None  # set when no message can be made (e.g. the digest cannot be built)
    refused: Mapping[str, str] = field(default_factory=dict)  # refused for good by earlier attempts
    channel: str = Channel.EMAIL  # or robot:NAME


def load_letters(
    engine: Engine, ids: Sequence[int], bundles: Mapping[str, Bundle], scorecard: Scorecard | None
) -> list[Letter]:
    """The claimed messages with their digests built, in one session (bulk queries on plain rows)."""
    outbox, items_table = OutboxMessage.__table__, NotificationItem.__table__
    with Session(engine) as session:
        connection = session.connection()
        rows: dict[int, Row] = {}
        items: dict[int, list[Row]] = {}
        dialect = connection.dialect
        for chunk in chunks(ids):
            query = select(outbox).where(among(outbox.c.id, chunk, dialect))
            rows.update({row.id: row for row in connection.execute(query).all()})
        # A robot message carries the items of its email (``parent_id``): the same digest.
        carriers = sorted({row.parent_id or row.id for row in rows.values()})
        for chunk in chunks(carriers):
            query = (
                select(items_table)
                .where(among(items_table.c.message_id, chunk, dialect))
                .order_by(items_table.c.id)
            )
            for item in connection.execute(query).all():
                items.setdefault(item.message_id, []).append(item)
        builder = DigestBuilder(session, bundles, scorecard)
        builder.prefetch([i for group in items.values() for i in group])
        return [_letter(rows[i], items.get(rows[i].parent_id or i, []), builder) for i in ids if i in rows]


def _letter(row: Row, items: list[Row], builder: DigestBuilder) -> Letter:
    digest = problem = None
    if row.body is None:
        if not items:
            problem = "cannot render: the message has no notification items"
        elif (program := builder.program(items[0].program_id)) and builder.bundle(program) is None:
            problem = (
                f"not sent: {program.workflow} {program.year} is not in config's [[programs]]: the daemon"
                " does not run it (its units and their addresses are not loaded)"
            )
        else:
            try:
                digest = builder.digest(Group(row.recipient, row.send_date, tuple(items)))
            except Exception as exc:  # one broken digest must not stop the batch: it is marked failed
                problem = f"cannot render: {type(exc).__name__}: {one_line(exc)}"
    return Letter(
        outbox_id=row.id,
        message_id=row.message_id,
        recipient=row.recipient,
        to=tuple(row.owed if row.owed else row.to),
        attempts=row.attempts,
        kind=row.kind,
        body=row.body,
        digest=digest,
        problem=problem,
        refused=dict(row.refused or {}),
        channel=row.channel,
    )


def _make(letter: Letter, renderer: Renderer | None, now: datetime) -> Generator[None, None, EmailMessage]:
    """The email of ``letter``: its stored body, or its digest rendered now (in steps). Raises on failure."""
    if letter.problem is not None:
        raise _Unrenderable(letter.problem)
    if letter.body is not None:
        return message_from_bytes(letter.body, policy=SMTP)  # type: ignore[return-value]
    if renderer is None or letter.digest is None:
        raise _Unrenderable("cannot render: no renderer for a digest")
    return (yield from renderer.render_in_steps(letter.digest, now=now, message_id=letter.message_id))


class _Unrenderable(Exception):
    """A message that cannot be made (its text says why); it is marked failed."""


def prepare(
    letter: Letter, renderer: Renderer | None, now: datetime
) -> Generator[None, None, EmailMessage | str]:
    """The message, or the one-line reason it cannot be made: a generator that yields between the
    rendering's steps (``Renderer.render_in_steps``) and returns it."""
    try:
        return (yield from _make(letter, renderer, now))
    except _Unrenderable as exc:
        return str(exc)
    except Exception as exc:  # a template or data error in one digest must not stop the batch
        return f"cannot render: {type(exc).__name__}: {one_line(exc)}"


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


@dataclass(frozen=True)
class Letters:
    """What turns claimed rows into emails: the loaded plans, the scorecard hook, the renderer (and
    the daemon's render process, if it has one)."""

    bundles: Mapping[str, Bundle]
    scorecard: Scorecard | None
    renderer: Renderer | None
    pool: RenderPool | None = None
