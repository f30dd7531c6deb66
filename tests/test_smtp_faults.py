"""The outbox under faults: partial 4xx at RCPT, the send window for catch-up and retries, and the
SMTP fault matrix (STARTTLS missing, self-signed certificates, implicit TLS, a cut
in the middle of DATA) — each against a real aiosmtpd server (or a raw socket that cuts DATA), on
a real SQLite file (and PostgreSQL where marked), with the transport the daemon builds from config.
The claim fence is in test_dispatch_groups.py.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from engine_support import local
from smtp_server import SmtpServer, self_signed_cert, server_tls_context
from test_dispatch import (
    DIGESTS,
    NINE,
    Env,
    between,
    make_env,
    plain,
    received_by_id,
    transport_from,
)

from orchestrator.engine.outbox.claims import claim
from orchestrator.service.config import SmtpSettings


@pytest.fixture
def env(store, tmp_path) -> Env:
    return make_env(store, tmp_path / "plan")


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as running:
        yield running


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


def deliver(env: Env, transport, **options):
    return env.deliver(transport, window=env.policy, **options)


# -- 2. a 4xx for some recipients --------------------------------------------------------------


async def test_a_4xx_for_one_recipient_is_retried_for_that_recipient_only_with_the_same_message_id(
    env, server
):
    env.queue()
    server.rcpt_reply = {"police-office@example.gov.cn": "452 4.2.2 mailbox full"}
    report = await deliver(env, plain(server))
    assert (report.sent, report.deferred) == (DIGESTS, 1)

    police = env.message("agency-1")
    assert (police.state, police.attempts, police.owed) == ("pending", 1, ["police-office@example.gov.cn"])
    assert police.refused == {} and "452" in police.last_error
    assert between(police.next_attempt_at - NINE, 60)  # the backoff of a whole-message 4xx
    (first,) = [r for r in server.received if r.message["Message-ID"] == police.message_id]
    assert first.rcpt_tos == ["police@example.gov.cn"]
    (deferral,) = env.events("mail.deferred", police.message_id)
    assert deferral.after["owed"] == ["police-office@example.gov.cn"]

    server.rcpt_reply = {}
    env.clock.set(police.next_attempt_at + timedelta(seconds=1))
    assert (await deliver(env, plain(server))).sent == 1
    copies = [r for r in server.received if r.message["Message-ID"] == police.message_id]
    assert [c.rcpt_tos for c in copies] == [["police@example.gov.cn"], ["police-office@example.gov.cn"]]
    assert copies[1].message["To"] == copies[0].message["To"]  # the same letter, to the one still owed
    police = env.message("agency-1")
    assert (police.state, police.attempts, police.owed, police.last_error) == ("sent", 2, None, None)
    assert set(received_by_id(server)) == {m.message_id for m in env.outbox()}


async def test_a_4xx_recipient_fails_after_max_attempts_as_a_whole_message_4xx_would(store, tmp_path, server):
    env = make_env(store, tmp_path / "plan", max_attempts=2)
    env.queue()
    server.rcpt_reply = {"police-office@example.gov.cn": "451 4.3.0 try later"}
    await deliver(env, plain(server))
    env.clock.set(env.message("agency-1").next_attempt_at)
    await deliver(env, plain(server))
    police = env.message("agency-1")
    assert (police.state, police.attempts, police.owed) == ("failed", 2, ["police-office@example.gov.cn"])
    assert "451" in police.last_error and police.refused == {}
    assert [r.rcpt_tos for r in server.received if r.message["Message-ID"] == police.message_id] == [
        ["police@example.gov.cn"]
    ]
    assert len(env.events("mail.failed", police.message_id)) == 1


# -- 3. nothing leaves outside the send window ---------------------------------------------------


async def test_catch_up_after_downtime_waits_for_the_next_window(env, server):
    evening = local(2026, 6, 1, 20, 0)  # down all day, back at 20:00
    assert env.queue(evening) == DIGESTS
    assert (await deliver(env, plain(server))).sent == 0
    assert server.received == []
    env.clock.set(local(2026, 6, 2, 0, 5))
    assert (await deliver(env, plain(server))).sent == 0
    env.clock.set(local(2026, 6, 2, 9, 0))  # Tuesday 09:00: the next window
    assert (await deliver(env, plain(server))).sent == DIGESTS


async def test_a_retry_whose_backoff_ends_after_the_window_waits_for_the_next_one(env, server):
    late = local(2026, 6, 5, 17, 29)  # Friday, a minute before the window closes
    env.queue(late)
    server.data_replies = ["451 4.3.0 try later"]
    report = await deliver(env, plain(server))
    assert (report.sent, report.retried) == (DIGESTS - 1, 1)
    (waiting,) = env.outbox(state="pending")
    env.clock.set(local(2026, 6, 5, 17, 40))  # its backoff is over, the window is closed
    assert waiting.next_attempt_at < env.clock.now()
    assert (await deliver(env, plain(server))).sent == 0
    env.clock.set(local(2026, 6, 6, 10, 0))  # Saturday: not a working day
    assert (await deliver(env, plain(server))).sent == 0
    env.clock.set(local(2026, 6, 8, 9, 0))  # Monday 09:00
    assert (await deliver(env, plain(server))).sent == 1
    assert set(received_by_id(server).values()) == {1}


async def test_a_reclaimed_message_waits_for_the_next_window(env, server):
    env.queue()
    ids, _ = claim(env.engine, NINE, "dead-node", 1, ("digest",), 8)
    assert len(ids) == 1
    env.clock.set(local(2026, 6, 2, 0, 5))  # the claim has expired: reclaimed at 00:05
    assert (await deliver(env, plain(server))).sent == 0
    assert env.outbox(id=ids[0])[0].state == "pending"
    env.clock.set(local(2026, 6, 2, 9, 0))
    assert (await deliver(env, plain(server))).sent == DIGESTS


# -- the SMTP fault matrix, through the transport the daemon builds from [mail.smtp] -------------


def smtp_env(env: Env, **smtp) -> Env:
    env.mail = env.mail.model_copy(update={"smtp": SmtpSettings(timeout=5, **smtp)})
    return env


async def test_starttls_not_offered_is_refused_and_nothing_goes_in_clear(env, server):
    env.queue()
    smtp_env(env, host=server.host, port=server.port, security="starttls")
    report = await deliver(env, transport_from(env.mail))
    assert report.sent == 0 and server.received == []
    for message in env.outbox():
        assert message.state == "pending" and f"{server.host}:{server.port}" in message.last_error
        assert "STARTTLS" in message.last_error or "not supported" in message.last_error


async def test_a_self_signed_certificate_is_refused_with_verify_true_naming_the_host(env, tls_files):
    cert, key = tls_files
    env.queue()
    with SmtpServer(tls_context=server_tls_context(cert, key), require_starttls=True) as tls:
        smtp_env(env, host="localhost", port=tls.port, security="starttls", verify=True)
        report = await deliver(env, transport_from(env.mail))
        assert report.sent == 0 and tls.received == []
    (first, *_) = env.outbox()
    assert f"localhost:{tls.port}: TLS certificate rejected" in first.last_error


async def test_a_self_signed_certificate_is_accepted_with_verify_false(env, tls_files):
    cert, key = tls_files
    env.queue()
    with SmtpServer(tls_context=server_tls_context(cert, key), require_starttls=True) as tls:
        smtp_env(env, host="127.0.0.1", port=tls.port, security="starttls", verify=False)
        assert (await deliver(env, transport_from(env.mail))).sent == DIGESTS
        assert len(tls.received) == DIGESTS and all(r.tls for r in tls.received)


async def test_implicit_tls_on_any_port(env, tls_files):
    cert, key = tls_files
    env.queue()
    with SmtpServer(tls_context=server_tls_context(cert, key), implicit_tls=True) as tls:
        smtp_env(env, host="127.0.0.1", port=tls.port, security="tls", ca_file=cert)
        assert (await deliver(env, transport_from(env.mail))).sent == DIGESTS
        assert all(r.tls for r in tls.received)


class CutInData:
    """A raw SMTP server that answers up to DATA's 354, reads part of the message and hangs up."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.host, self.port = "127.0.0.1", self.sock.getsockname()[1]
        self.cuts = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        conn.sendall(b"220 cut.test ESMTP\r\n")
        stream = conn.makefile("rb")
        for line in stream:
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250-cut.test\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                stream.read(200)  # a part of the message: then the line is cut
                self.cuts += 1
                conn.shutdown(socket.SHUT_RDWR)
                return
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 OK\r\n")

    def close(self) -> None:
        self.sock.close()


async def test_a_cut_in_the_middle_of_data_is_retried_with_the_same_message_id(env, server):
    env.queue()
    cutter = CutInData()
    try:
        report = await deliver(env, plain(cutter))
    finally:
        cutter.close()
    assert cutter.cuts >= 1 and report.sent == 0
    retried = env.outbox(state="pending")
    assert retried and all(m.attempts == 1 for m in retried)
    assert all("connection lost" in m.last_error or "network" in m.last_error for m in retried)
    env.clock.set(max(m.next_attempt_at for m in env.outbox(state="pending")) + timedelta(seconds=1))
    await asyncio.sleep(0)
    assert (await deliver(env, plain(server))).sent == DIGESTS
    assert set(received_by_id(server).values()) == {1}
    assert set(received_by_id(server)) == {m.message_id for m in env.outbox()}


async def test_a_partial_4xx_on_the_last_attempt_fails_the_message_still_owed(store, tmp_path, server):
    env = make_env(store, tmp_path / "plan", max_attempts=1)
    env.queue()
    server.rcpt_reply = {"police-office@example.gov.cn": "452 4.2.2 mailbox full"}
    await deliver(env, plain(server))
    police = env.message("agency-1")
    assert (police.state, police.owed) == ("failed", ["police-office@example.gov.cn"])
    (failure,) = env.events("mail.failed", police.message_id)
    assert "不再向这些收件地址发送" in failure.detail
