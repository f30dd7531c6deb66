"""Several daemons on one PostgreSQL schema send together: the leader ticks and enqueues, every
daemon claims due emails in small batches (``SKIP LOCKED``) and sends them. Real subprocesses, a
real PostgreSQL schema, a real aiosmtpd server whose answers are held until both daemons are at it.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections import Counter

import pytest
from engine_support import postgres_engine
from smtp_server import SmtpServer, _Handler
from test_daemon import smtp_mail, wait_until
from test_dispatch import NINE, make_env

from orchestrator.engine.outbox.claims import claim
from orchestrator.engine.outbox.deliver import GROUP_SIZE
from orchestrator.service.leader import PostgresLock
from orchestrator.service.upkeep import release_stale_claims

TOWNS = 40
MESSAGES = TOWNS + 1  # one digest each for the towns and the office

pytestmark = pytest.mark.postgres


class _Gated(_Handler):
    """Holds every DATA until ``owner.gate`` is set, then answers after ``owner.data_delay`` seconds.

    ``owner.data_peers`` records the connection of each DATA as it arrives (the message is "on the
    wire"): two peers mean both daemons are sending.
    """

    async def handle_DATA(self, server, session, envelope) -> str:
        self.owner.data_peers.append(tuple(session.peer))
        while not self.owner.gate.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(self.owner.data_delay)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def relay():
    server = SmtpServer().start()
    server.gate, server.data_delay, server.data_peers = threading.Event(), 0.05, []
    server._controller.handler = _Gated(server)  # for the connections from now on
    yield server
    server.gate.set()
    server.stop()


def two_daemons(env, relay):
    """``(leader, standby)``, started together; let go once both have a message on the wire."""
    daemons = [env.start(), env.start()]
    wait_until(lambda: len(set(relay.data_peers)) >= 2, timeout=30, what="both daemons sending")
    relay.gate.set()
    leading = [any(e.get("event") == "daemon.leader" for e in d.events()) for d in daemons]
    assert sorted(leading) == [False, True]
    return tuple(sorted(daemons, key=lambda d: not leading[daemons.index(d)]))


def sent_by(daemon) -> list[str]:
    """The Message-IDs this daemon handed to the relay (its ``smtp.sent`` log lines)."""
    return [e["message_id"] for e in daemon.events() if e.get("event") == "smtp.sent"]


def outbox_ids(env) -> set[str]:
    return {m for (m,) in env.rows("SELECT message_id FROM outbox_message")}


def all_sent(env) -> bool:
    return env.scalar("SELECT count(*) FROM outbox_message WHERE state = 'sent'") == MESSAGES


def test_a_standby_sends_its_share_never_ticks_or_enqueues_and_each_message_goes_once(
    make_duban_env, pg_url, relay
):
    env = make_duban_env(towns=TOWNS, database_url=pg_url, mail=smtp_mail(relay.port))
    leader, standby = two_daemons(env, relay)
    wait_until(lambda: all_sent(env), what="every message sent")

    received = Counter(r.message["Message-ID"] for r in relay.received)
    assert set(received) == outbox_ids(env) and set(received.values()) == {1}  # each once, none lost
    mine, theirs = sent_by(leader), sent_by(standby)
    assert mine and theirs and sorted(mine + theirs) == sorted(received)  # both sent, each its own
    assert env.scalar("SELECT count(*) FROM event WHERE kind = 'mail.reclaimed'") == 0  # live claims kept

    names = {e.get("event") for e in standby.events()}
    assert "dispatch.shared" in names
    assert not names & {"tick.done", "tick.idle", "mail.queued", "dispatch.done", "program.started"}
    beat = env.rows("SELECT role, last_tick_at FROM heartbeat WHERE pid = :pid", pid=standby.pid)
    assert beat == [("standby", None)]
    status = env.cli("status")
    assert "待命：协助发送" in status.stdout and "主实例：定时处理并发送" in status.stdout, status.stdout
    assert standby.stop() == 0 and leader.stop() == 0


def test_a_standby_killed_mid_batch_loses_nothing_and_repeats_only_under_the_same_message_id(
    make_duban_env, pg_url, relay
):
    """(A killed leader's claims go back by the same ``release_stale_claims``, at the takeover.)"""
    relay.data_delay = 0.1
    env = make_duban_env(towns=TOWNS, database_url=pg_url, mail=smtp_mail(relay.port))
    leader, standby = two_daemons(env, relay)
    killed, survivor = standby, leader
    wait_until(lambda: len(sent_by(killed)) >= 3, what="the victim sending")
    killed.proc.kill()  # SIGKILL mid-batch: its session ends, and with it the lock of its name
    assert killed.wait() == -signal.SIGKILL
    wait_until(lambda: all_sent(env), what="every message sent by the survivor")

    received = Counter(r.message["Message-ID"] for r in relay.received)
    assert set(received) == outbox_ids(env)  # every message arrived, nothing else did
    assert sum(n - 1 for n in received.values()) <= GROUP_SIZE  # at most its last group, same Message-IDs
    assert env.scalar("SELECT count(*) FROM outbox_message") == MESSAGES  # no item in a second message
    assert env.scalar("SELECT count(*) FROM notification_item WHERE message_id IS NULL") == 0
    # handed back at once (the survivor saw its lock free), not after CLAIM_SECONDS
    assert env.scalar("SELECT count(*) FROM event WHERE kind = 'mail.reclaimed'") == 1
    assert survivor.stop() == 0


def test_only_the_claims_of_a_daemon_whose_session_is_gone_are_handed_back(tmp_path):
    with postgres_engine() as engine:
        env = make_env(engine, tmp_path / "plan")
        env.queue()
        alive, dead = PostgresLock(engine, "host:1"), PostgresLock(engine, "host:2")
        assert alive.try_acquire() and not dead.try_acquire()  # one leads; both hold their names
        assert alive.present() and dead.present()
        kept = claim(engine, NINE, "host:1", 2, ("digest",), 8)[0]
        lost = claim(engine, NINE, "host:2", 2, ("digest",), 8)[0]
        assert kept and lost
        dead.release()  # its connection closes, as a killed process's does
        newcomer = PostgresLock(engine, "host:3")
        assert newcomer.gone(["host:1", "host:2"]) == {"host:2"}
        assert release_stale_claims(engine, NINE, "host:3", newcomer.gone) == sorted(lost)
        assert sorted(m.id for m in env.outbox(state="sending")) == sorted(kept)
        assert {m.claimed_by for m in env.outbox(state="sending")} == {"host:1"}
        alive.release()
