"""Outcomes committed by group: ``GROUP_SIZE`` sends (or ``GROUP_SECONDS``) per transaction, the claim
fence once a group, and every way out of a batch committing what was sent — against a real aiosmtpd
server, on a real SQLite file and on PostgreSQL. The daemon killed mid-group is in test_daemon.py.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterator

import pytest
from smtp_server import SmtpServer
from sqlalchemy import text
from test_dispatch import DIGESTS, Env, make_env, many_units, plain, received_by_id

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
