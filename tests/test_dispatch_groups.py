"""Outcomes committed by group: ``GROUP_SIZE`` sends (or ``GROUP_SECONDS``) per transaction, the claim
fence once a group, and every way out of a batch committing what was sent — against a real aiosmtpd
server, on a real SQLite file and on PostgreSQL. The daemon killed mid-group is in test_daemon.py.
"""

from __future__ import annotations

import asyncio
import importlib
from collections import Counter
from collections.abc import Iterator

import pytest
from smtp_server import SmtpServer
from sqlalchemy import text
from test_dispatch import DIGESTS, Env, make_env, many_units, plain, received_by_id
from test_render_process import wait_for

from orchestrator.engine.outbox.deliver import GROUP_SIZE

MESSAGES = GROUP_SIZE + 3  # a full group, then three more
UNITS = many_units(MESSAGES - 1)


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as running:
        yield running


def committed(env: Env) -> int:
    """Messages whose outcome is in the database (read on a connection of its own)."""
    with env.engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM outbox_message WHERE state = 'sent'")).scalar()


class Watching:
    """The real transport; before each send, ``before(sends so far)`` runs (it may raise or wait)."""

    def __init__(self, inner, before) -> None:
        self.inner, self.before, self.sends = inner, before, 0

    async def open(self) -> None:
        await self.inner.open()

    async def send(self, message, recipients):
        await self.before(self.sends)
        result = await self.inner.send(message, recipients)
        self.sends += 1
        return result

    async def close(self) -> None:
        await self.inner.close()


async def test_outcomes_are_committed_a_group_at_a_time_while_the_batch_goes_on(store, tmp_path, server):
    env = make_env(store, tmp_path / "plan", units=UNITS)
    assert env.queue() == MESSAGES
    seen: list[tuple[int, int]] = []  # (sends so far, outcomes committed) before each send

    async def look(sends: int) -> None:
        seen.append((sends, committed(env)))

    report = await env.deliver(Watching(plain(server), look))
    assert report.sent == MESSAGES and committed(env) == MESSAGES
    assert all(0 <= sends - done <= GROUP_SIZE for sends, done in seen)  # never more than a group open
    assert seen[1] == (1, 0)  # the first outcome waits for its group…
    assert any(done > 0 for _, done in seen)  # …which is committed while the batch goes on
    assert [c for _, c in seen] == sorted(c for _, c in seen)
    assert len(env.events("mail.sent")) == MESSAGES  # one event a message, as before


async def test_a_sender_whose_claims_were_taken_over_stops_within_one_group(
    store, tmp_path, server, monkeypatch
):
    # one claim of every message: with small batches a takeover only finds the batch in flight,
    # already confirmed as a group, and the rows not yet claimed are claimed afresh (correctly)
    monkeypatch.setattr(importlib.import_module("orchestrator.engine.outbox.deliver"), "FIRST_BATCH", 1000)
    env = make_env(store, tmp_path / "plan", units=UNITS)
    env.queue()

    async def take_over_after_the_first(sends: int) -> None:
        if sends == 1:  # what a standby's takeover does: release_stale_claims, then claim
            with env.engine.begin() as connection:
                connection.execute(
                    text("UPDATE outbox_message SET claimed_by = 'new-leader' WHERE state = 'sending'")
                )

    report = await env.deliver(Watching(plain(server), take_over_after_the_first), window=env.policy)
    # the group confirmed before the takeover is finished (GROUP_SIZE, or fewer when GROUP_SECONDS
    # closed it first); the next group's claims are found taken and nothing of it is sent
    assert 1 <= report.sent <= GROUP_SIZE
    assert len(server.received) == report.sent
    assert report.lost == min(GROUP_SIZE, MESSAGES - report.sent)
    assert committed(env) == report.sent  # what it did send is recorded
    taken = env.outbox(state="sending")
    assert len(taken) == MESSAGES - report.sent and {m.claimed_by for m in taken} == {"new-leader"}


async def test_a_stop_request_mid_group_commits_what_was_sent_and_a_rerun_sends_nothing_twice(
    store, tmp_path, server
):
    env = make_env(store, tmp_path / "plan")
    env.queue()
    asked: list[int] = []
    report = await env.deliver(plain(server), stop=lambda: bool(asked.append(1) or len(asked) > 2))
    assert report.sent == 2 < GROUP_SIZE  # stopped inside the first group
    sent = env.outbox(state="sent")
    assert len(sent) == 2 and {m.message_id for m in sent} == set(received_by_id(server))
    assert {e.subject for e in env.events("mail.sent")} == {m.message_id for m in sent}
    assert len(env.outbox(state="pending")) == DIGESTS - 2

    again = await env.deliver(plain(server))
    assert again.sent == DIGESTS - 2
    assert len(server.received) == DIGESTS and set(received_by_id(server).values()) == {1}


async def test_an_error_mid_group_commits_the_sends_before_it_and_keeps_the_one_in_flight_claimed(
    store, tmp_path, server
):
    env = make_env(store, tmp_path / "plan")
    env.queue()

    async def crash_on_the_third(sends: int) -> None:
        if sends == 2:
            raise RuntimeError("the process is going down")

    with pytest.raises(RuntimeError):
        await env.deliver(Watching(plain(server), crash_on_the_third))
    states = [m.state for m in env.outbox()]
    assert sorted(states) == ["pending", "sending", "sent", "sent"]  # sent, sent, in flight, untried
    assert committed(env) == len(server.received) == 2


async def test_a_cancelled_delivery_commits_the_sends_before_it(store, tmp_path, server):
    env = make_env(store, tmp_path / "plan")
    env.queue()
    third = asyncio.Event()

    async def hang_on_the_third(sends: int) -> None:
        if sends == 2:
            third.set()
            await asyncio.Event().wait()  # a server that never answers

    task = asyncio.ensure_future(env.deliver(Watching(plain(server), hang_on_the_third)))
    await asyncio.wait_for(third.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert committed(env) == len(server.received) == 2
    assert sorted(m.state for m in env.outbox()) == ["pending", "sending", "sent", "sent"]


def one_batch(monkeypatch) -> None:
    """One claim of every message (no small first batch): the groups follow each other in one batch."""
    monkeypatch.setattr(importlib.import_module("orchestrator.engine.outbox.deliver"), "FIRST_BATCH", 1000)


async def test_the_next_groups_commit_runs_while_the_last_message_of_a_group_is_on_the_wire(
    store, tmp_path, server, monkeypatch
):
    one_batch(monkeypatch)
    env = make_env(store, tmp_path / "plan", units=UNITS)
    env.queue()
    during: list[int] = []  # outcomes committed, seen while the first group's last message is sent

    def the_commit() -> int | None:
        return done if (done := committed(env)) >= GROUP_SIZE - 1 else None

    async def at_the_groups_last(sends: int) -> None:
        if sends == GROUP_SIZE - 1:  # the group's last send: the next group's commit has begun
            during.append(await asyncio.to_thread(wait_for, the_commit, "the next group's commit", 10.0))

    report = await env.deliver(Watching(plain(server), at_the_groups_last))
    assert report.sent == MESSAGES and committed(env) == MESSAGES
    # the outcomes before it are committed while it is on the wire (its own goes with the next
    # group's commit): the send does not wait for the database, nor the database for the send
    assert during == [GROUP_SIZE - 1]


async def test_a_commit_that_fails_in_its_thread_keeps_its_outcomes_for_the_batchs_end(
    store, tmp_path, server, monkeypatch
):
    one_batch(monkeypatch)
    deliver_module = importlib.import_module("orchestrator.engine.outbox.deliver")
    confirm = deliver_module.confirm
    calls: list[int] = []

    def confirm_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second group's fence, in its worker thread
            raise RuntimeError("the database went away for a moment")
        return confirm(*args, **kwargs)

    monkeypatch.setattr(deliver_module, "confirm", confirm_once)
    env = make_env(store, tmp_path / "plan", units=UNITS)
    env.queue()
    with pytest.raises(RuntimeError, match="went away"):
        await env.deliver(plain(server))
    # the failed transaction's outcomes were put back and committed on the way out, with the last
    # send's; nothing of the next group was sent, and its claims are given back
    assert len(server.received) == committed(env) == GROUP_SIZE
    assert len(env.events("mail.sent")) == GROUP_SIZE
    assert Counter(m.state for m in env.outbox()) == {"sent": GROUP_SIZE, "pending": MESSAGES - GROUP_SIZE}
