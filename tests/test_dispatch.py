"""The outbox dispatcher against a real aiosmtpd server: tick → enqueue → deliver on a fake clock.

Every test runs on a real SQLite file made by ``orchestrator.store.db.upgrade``; the ones marked
``postgres`` run the same steps on PostgreSQL too (a fresh schema each). Nothing here mocks the
database or the SMTP conversation: the server is aiosmtpd (``tests/smtp_server.py``) with the
faults mail systems have.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import structlog
from engine_support import local, postgres_engine
from icalendar import Calendar
from smtp_server import SilentServer, SmtpServer, refused_port, self_signed_cert, server_tls_context
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from structlog.testing import LogCapture
from support import unit, units_toml, write_bundle

from notifications.render import Renderer
from notifications.transport import SendResult, SmtpTransport, Transport
from orchestrator.engine.clock import FakeClock
from orchestrator.engine.outbox import (
    ADMIN_RECIPIENT,
    CLAIM_SECONDS,
    DeliverReport,
    deliver,
    enqueue,
    report_failures,
)
from orchestrator.engine.outbox.claims import claim
from orchestrator.engine.programs import start_program
from orchestrator.engine.tick import tick
from orchestrator.engine.window import SendPolicy
from orchestrator.service.config import MailSettings, Settings, SmtpSettings
from orchestrator.service.runtime import make_transport
from orchestrator.store.db import transaction
from orchestrator.store.models import Event, NotificationItem, OutboxMessage
from workflows.catalog import Bundle

PLAN = """\
[workflow]
id = "dispatch-test"
title = "督办投递测试方案"
timezone = "Asia/Shanghai"
calendar = "cn-workdays"
reminders = ["-7d", "-1wd"]
escalation = [{ after = "1wd", to = "lead" }]
contact = "office"

[[phases]]
id = "p1"
name = "组织实施阶段"
start = "06-01"
end = "06-30"

[[tasks]]
id = "T1"
title = "报送本单位工作方案"
section = "一、工作要求"
detail = "各单位结合实际制定工作方案，明确分管领导和工作人员。"
phase = "p1"
due = "06-10"
lead = ["office"]
responsible = ["role:agency"]
deliverable = "工作方案；分管领导和工作人员名单"

[[tasks]]
id = "T2"
title = "报送行政执法人员名单"
phase = "p1"
due = "06-10"
lead = ["office"]
responsible = ["role:agency"]
"""

UNITS = units_toml(
    unit("office", "县推进依法行政工作领导小组办公室", "office"),
    unit("agency-1", "县公安局", "agency", emails=["police@example.gov.cn", "police-office@example.gov.cn"]),
    unit("agency-2", "县税务局", "agency", emails=["tax@example.gov.cn"]),
    unit("agency-3", "县市场监督管理局", "agency", emails=["market@example.gov.cn"]),
)

DIGESTS = 4  # on 06-01: office (phase started) and each agency (phase started + T1, T2 opened)
MORNING = local(2026, 6, 1, 0, 0)  # the tick that opens the phase and the tasks (a Monday)
NINE = local(2026, 6, 1, 9, 0)  # their send slot
PASSWORD = "Pa55-督办-s3cret!"
PASSWORD_ENV = "DUBAN_TEST_SMTP_PASSWORD"


# -- fixtures ---------------------------------------------------------------------------------


@dataclass
class Env:
    """A started program on a real database, with the clock, settings and renderer of a daemon."""

    engine: Engine
    bundle: Bundle
    clock: FakeClock
    mail: MailSettings
    renderer: Renderer
    policy: SendPolicy

    @property
    def bundles(self) -> dict[str, Bundle]:
        return {self.bundle.definition.workflow.id: self.bundle}

    def queue(self, at: datetime = NINE, *, tick_at: datetime = MORNING) -> int:
        """Tick at ``tick_at``, then enqueue at ``at`` (the clock is left at ``at``)."""
        self.clock.set(tick_at)
        tick(self.engine, self.clock.now(), self.policy)
        self.clock.set(at)
        return enqueue(self.engine, self.clock.now(), self.bundles, self.renderer)

    async def deliver(self, transport: Transport, **options) -> DeliverReport:
        options.setdefault("rng", random.Random(4))
        return await deliver(
            self.engine, self.clock, transport, self.renderer, self.bundles, self.mail, **options
        )

    def outbox(self, **where) -> list[OutboxMessage]:
        with Session(self.engine) as session:
            query = select(OutboxMessage).order_by(OutboxMessage.id)
            for name, value in where.items():
                query = query.where(getattr(OutboxMessage, name) == value)
            return list(session.exec(query))

    def message(self, recipient: str) -> OutboxMessage:
        (found,) = self.outbox(recipient=recipient)
        return found

    def events(self, kind: str, subject: str | None = None) -> list[Event]:
        with Session(self.engine) as session:
            query = select(Event).where(Event.kind == kind).order_by(Event.id)
            if subject is not None:
                query = query.where(Event.subject == subject)
            return list(session.exec(query))


def make_bundle(folder: Path, units: str = UNITS) -> Bundle:
    """The test plan and ``units``, written as files and loaded as ``duban`` loads them."""
    return write_bundle(folder, PLAN, units)


def make_env(engine: Engine, folder: Path, units: str = UNITS, **mail_options) -> Env:
    """The test plan started on ``engine`` on 05-20; the clock is the daemon's, on a fake."""
    bundle = make_bundle(folder, units)
    mail = MailSettings(
        sender="督办系统 <duban@example.gov.cn>",
        admin="duban-admin@example.gov.cn",
        domain="duban.example.gov.cn",
        retry_base=60,
        retry_max=3600,
        **mail_options,
    )
    with transaction(engine) as session:
        start_program(session, bundle, 2026, local(2026, 5, 20))
    renderer = Renderer(
        sender=mail.sender, reply_to=mail.reply_to, domain=mail.domain, timezone="Asia/Shanghai"
    )
    policy = SendPolicy(mail.window, {bundle.definition.workflow.id: bundle.calendar}, bundle.calendar)
    return Env(engine, bundle, FakeClock(local(2026, 5, 20)), mail, renderer, policy)


@pytest.fixture
def env(store, tmp_path) -> Env:
    return make_env(store, tmp_path / "plan")


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as running:
        yield running


@pytest.fixture
def logs() -> Iterator[list[dict]]:
    """Every structlog event at every level (the configuration is restored afterwards)."""
    saved = structlog.get_config()
    capture = LogCapture()
    structlog.configure(
        processors=[capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    try:
        yield capture.entries
    finally:
        structlog.configure(**saved)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


def plain(server, *, timeout: float = 5.0) -> SmtpTransport:
    return SmtpTransport(
        host=server.host, port=server.port, security="none", timeout=timeout, local_hostname="duban.test"
    )


def transport_from(mail: MailSettings) -> Transport:
    """What the daemon builds from ``[mail.smtp]`` (its own function): the password read now."""
    return make_transport(Settings(mail=mail.model_copy(update={"transport": "smtp"})))


def received_by_id(server: SmtpServer) -> Counter:
    return Counter(r.message["Message-ID"] for r in server.received)


def between(delta: timedelta, seconds: float) -> bool:
    """``delta`` is ``seconds`` give or take the ±20 % jitter."""
    return timedelta(seconds=0.8 * seconds) <= delta <= timedelta(seconds=1.2 * seconds)


# -- a digest, end to end ---------------------------------------------------------------------


async def test_a_digest_arrives_with_recipients_parts_chinese_subject_and_calendar(env, server):
    assert env.queue() == DIGESTS
    report = await env.deliver(plain(server))

    assert report.sent == DIGESTS and not (report.failed or report.retried)
    assert server.connections == 1  # one connection for the whole batch
    police = env.message("agency-1")
    (received,) = [r for r in server.received if r.message["Message-ID"] == police.message_id]
    assert received.mail_from == "duban@example.gov.cn"
    assert sorted(received.rcpt_tos) == ["police-office@example.gov.cn", "police@example.gov.cn"]
    message = received.message
    assert (
        message["Subject"]
        == police.subject
        == "【督办提醒】督办投递测试方案：2项新任务，「组织实施阶段」开始"
    )
    assert [a.display_name for a in message["To"].addresses] == ["县公安局", "县公安局"]
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    body = message.get_body(("plain",)).get_content()
    assert "县公安局" in body and "报送本单位工作方案" in body and "2026年6月10日" in body
    assert "县推进依法行政工作领导小组办公室 office@example.gov.cn" in body  # whom to ask

    (ics,) = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    calendar = Calendar.from_ical(ics.get_content())
    events = {str(e["SUMMARY"]): e for e in calendar.walk("VEVENT")}  # all-day events, the default
    assert set(events) == {
        "督办投递测试方案：组织实施阶段",
        "【截止】报送本单位工作方案（县公安局）",
        "【截止】报送行政执法人员名单（县公安局）",
    }
    assert events["【截止】报送本单位工作方案（县公安局）"].decoded("DTSTART") == date(2026, 6, 10)
    assert not calendar.walk("VTODO")

    assert {m.state for m in env.outbox()} == {"sent"}
    assert police.attempts == 1 and police.sent_at == NINE and police.claimed_by is None
    assert len(env.events("mail.sent")) == DIGESTS
    assert len(env.events("mail.queued")) == DIGESTS
    with Session(env.engine) as session:
        states = set(session.exec(select(NotificationItem.state)))
    assert states == {"queued"}


async def test_every_address_of_a_unit_is_in_the_to_header_even_when_the_header_folds(
    store, tmp_path, server
):
    # Python 3.11.7's folder wrote this unit's To as "… <a>\r\n =?utf-8?q?=2C?=\r\n … <b>": one address.
    long_addresses = UNITS.replace(
        'emails = ["market@example.gov.cn"]',
        'emails = ["shichangjianguan@example.gov.cn", "shijian.fagui@example.gov.cn"]',
    )
    env = make_env(store, tmp_path / "plan", units=long_addresses)
    env.queue()
    await env.deliver(plain(server))
    market = env.message("agency-3")
    (received,) = [r for r in server.received if r.message["Message-ID"] == market.message_id]
    to = received.message["To"]
    assert not to.defects
    assert [(a.display_name, a.addr_spec) for a in to.addresses] == [
        ("县市场监督管理局", "shichangjianguan@example.gov.cn"),
        ("县市场监督管理局", "shijian.fagui@example.gov.cn"),
    ]
    assert sorted(received.rcpt_tos) == sorted(market.to)
    assert max(len(line) for line in received.data.split(b"\r\n")) <= 78


async def test_items_wait_for_the_send_window_and_a_second_run_sends_nothing(env, server):
    assert env.queue(at=local(2026, 6, 1, 8, 59)) == 0  # before 09:00: nothing is due yet
    env.clock.set(NINE)
    assert enqueue(env.engine, env.clock.now(), env.bundles, env.renderer) == DIGESTS
    assert enqueue(env.engine, env.clock.now(), env.bundles, env.renderer) == 0
    assert (await env.deliver(plain(server))).sent == DIGESTS
    assert (await env.deliver(plain(server))).sent == 0
    assert len(server.received) == DIGESTS


async def test_the_send_window_is_configurable(store, tmp_path, server):
    env = make_env(store, tmp_path / "plan", send_window="10:30-16:00")
    assert env.queue(at=local(2026, 6, 1, 10, 29)) == 0
    env.clock.set(local(2026, 6, 1, 10, 30))
    assert enqueue(env.engine, env.clock.now(), env.bundles, env.renderer) == DIGESTS
    await env.deliver(plain(server))
    assert {m.send_date for m in env.outbox()} == {date(2026, 6, 1)}
    assert all(r.message["Date"].datetime.strftime("%H:%M") == "10:30" for r in server.received)


# -- TLS, AUTH, secrets -----------------------------------------------------------------------


async def test_starttls_and_auth_with_a_self_signed_certificate_and_the_password_from_the_environment(
    store, tmp_path, tls_files, monkeypatch, caplog, capsys, logs
):
    cert, key = tls_files
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    with SmtpServer(
        tls_context=server_tls_context(cert, key), require_starttls=True, credentials={"duban": PASSWORD}
    ) as server:
        smtp = SmtpSettings(
            host="localhost",  # the certificate names localhost and 127.0.0.1
            port=server.port,
            security="starttls",
            username="duban",
            password_env=PASSWORD_ENV,
            ca_file=cert,
            timeout=5,
        )
        env = make_env(store, tmp_path / "plan", smtp=smtp)
        env.queue()
        caplog.set_level(logging.DEBUG)
        report = await env.deliver(transport_from(env.mail))
    assert report.sent == DIGESTS
    assert all(r.tls and r.login == "duban" for r in server.received)
    assert server.auth_attempts and {login for _, login in server.auth_attempts} == {"duban"}
    assert_secret_nowhere(PASSWORD, env, logs, caplog, capsys)


async def test_a_rejected_password_is_retried_and_never_logged_or_stored(
    store, tmp_path, tls_files, monkeypatch, caplog, capsys, logs
):
    cert, key = tls_files
    wrong = "Wr0ng-口令-" + PASSWORD
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    with SmtpServer(
        tls_context=server_tls_context(cert, key), require_starttls=True, credentials={"duban": PASSWORD}
    ) as server:
        smtp = SmtpSettings(
            host="localhost", port=server.port, username="duban", password_env=PASSWORD_ENV, ca_file=cert
        )
        env = make_env(store, tmp_path / "plan", smtp=smtp)
        env.queue()
        caplog.set_level(logging.DEBUG)
        report = await env.deliver(transport_from(env.mail))
        assert report.retried == DIGESTS and not server.received
        assert {m.state for m in env.outbox()} == {"pending"}
        assert all("535" in (m.last_error or "") for m in env.outbox())
        assert any(e["event"] == "mail.unavailable" for e in logs)
        env.clock.advance(timedelta(hours=2))
        monkeypatch.setenv(PASSWORD_ENV, PASSWORD)  # the operator fixes the secret
        report = await env.deliver(transport_from(env.mail))
    assert report.sent == DIGESTS
    for secret in (wrong, PASSWORD):
        assert_secret_nowhere(secret, env, logs, caplog, capsys)


def assert_secret_nowhere(secret: str, env: Env, events: list[dict], caplog, capsys) -> None:
    """Not in a structlog event, a stdlib log record (ours or aiosmtplib's), stdout/stderr, or the database."""
    forms = {secret, base64.b64encode(secret.encode()).decode()}
    plain_login = base64.b64encode(f"\0duban\0{secret}".encode()).decode()  # AUTH PLAIN's wire form
    forms.add(plain_login)
    logged = [repr(e) for e in events] + [
        f"{r.name} {r.getMessage()}"
        for r in caplog.records
        if r.name != "mail.log"  # mail.log: the test server
    ]
    output = capsys.readouterr()
    with Session(env.engine) as session:
        stored = [repr(m.model_dump()) for m in session.exec(select(OutboxMessage))]
        stored += [repr(e.model_dump()) for e in session.exec(select(Event))]
    assert any(e["event"] == "mail.sent" for e in events)  # the capture saw the run
    for form in forms:
        for text_ in [*logged, output.out, output.err, *stored]:
            assert form not in text_


# -- temporary and permanent failures ---------------------------------------------------------


async def test_451_then_250_is_delivered_exactly_once_after_a_retry(env, server):
    env.queue()
    server.data_replies = ["451 4.3.0 try again later"]  # the first message's DATA only
    report = await env.deliver(plain(server))
    assert (report.sent, report.retried) == (DIGESTS - 1, 1)

    (waiting,) = env.outbox(state="pending")
    assert waiting.attempts == 1 and "451" in waiting.last_error
    assert between(waiting.next_attempt_at - NINE, 60)
    assert waiting.message_id not in received_by_id(server)
    assert (await env.deliver(plain(server))).sent == 0  # not due yet

    env.clock.set(waiting.next_attempt_at + timedelta(seconds=1))
    report = await env.deliver(plain(server))
    assert report.sent == 1
    assert received_by_id(server)[waiting.message_id] == 1
    assert set(received_by_id(server).values()) == {1}  # every message exactly once
    again = env.message(waiting.recipient)
    assert (again.state, again.attempts, again.last_error) == ("sent", 2, None)
    kinds = [
        e.kind for e in env.events("mail.retry") + env.events("mail.sent") if e.subject == again.message_id
    ]
    assert kinds == ["mail.retry", "mail.sent"]


async def test_temporary_failures_back_off_exponentially_and_give_up_after_max_attempts(
    store, tmp_path, server
):
    env = make_env(store, tmp_path / "plan", max_attempts=3)
    env.queue()
    server.rcpt_reply = {"market@example.gov.cn": "450 4.2.1 mailbox busy"}
    waits = []
    for attempt in (1, 2):
        await env.deliver(plain(server))
        market = env.message("agency-3")
        assert (market.state, market.attempts) == ("pending", attempt)
        waits.append(market.next_attempt_at - env.clock.now())
        env.clock.set(market.next_attempt_at)
    assert between(waits[0], 60) and between(waits[1], 120)
    await env.deliver(plain(server))
    market = env.message("agency-3")
    assert (market.state, market.attempts) == ("failed", 3)
    assert "450" in market.last_error
    assert len(env.events("mail.failed", market.message_id)) == 1


async def test_550_for_one_recipient_marks_it_refused_the_others_get_the_message_and_the_admin_is_told(
    env, server
):
    env.queue()
    server.rcpt_reply = {
        "police-office@example.gov.cn": "550 5.1.1 no such user",  # one of two addresses
        "tax@example.gov.cn": "550 5.1.1 no such user",  # the only address: refused outright
    }
    report = await env.deliver(plain(server))
    assert (report.sent, report.failed, report.refused) == (DIGESTS - 1, 1, 1)

    police = env.message("agency-1")
    assert police.state == "sent"
    assert police.refused == {"police-office@example.gov.cn": "550 5.1.1 no such user"}
    (delivered,) = [r for r in server.received if r.message["Message-ID"] == police.message_id]
    assert delivered.rcpt_tos == ["police@example.gov.cn"]
    (refusal,) = env.events("mail.refused", police.message_id)
    assert refusal.after["refused"] == police.refused
    tax = env.message("agency-2")
    assert tax.state == "failed" and "550" in tax.last_error and tax.attempts == 1

    listed = await report_failures(env.engine, env.clock, plain(server), env.mail)
    assert listed == 2
    (admin,) = [r for r in server.received if r.rcpt_tos == ["duban-admin@example.gov.cn"]]
    text_ = admin.message.get_body(("plain",)).get_content()
    assert admin.message["Subject"] == "【督办系统】2封邮件投递失败或被拒收"
    assert f"#{tax.id} 致 agency-2（tax@example.gov.cn）" in text_
    assert "police-office@example.gov.cn：550 5.1.1 no such user" in text_
    assert "duban outbox retry --all-failed" in text_
    (report_row,) = env.outbox(recipient=ADMIN_RECIPIENT)
    assert (report_row.kind, report_row.state, report_row.to) == ("failure_report", "sent", [env.mail.admin])
    assert all(m.reported_at == NINE for m in (env.message("agency-1"), env.message("agency-2")))
    assert len(env.outbox()) == DIGESTS + 1  # nothing deleted: the failed one is kept

    env.clock.advance(timedelta(hours=3))  # the same local day: no second report
    assert await report_failures(env.engine, env.clock, plain(server), env.mail) == 0
    assert len(env.outbox(recipient=ADMIN_RECIPIENT)) == 1


async def test_a_failure_report_that_cannot_be_sent_stays_queued_and_deliver_sends_it_later(env, server):
    env.queue()
    server.rcpt_reply = {"tax@example.gov.cn": "550 5.1.1 no such user"}
    await env.deliver(plain(server))
    with refused_port() as port:
        nowhere = SmtpTransport(host="127.0.0.1", port=port, security="none", timeout=2)
        assert await report_failures(env.engine, env.clock, nowhere, env.mail) == 1
    (queued,) = env.outbox(recipient=ADMIN_RECIPIENT)
    assert (queued.state, queued.attempts) == ("pending", 1)

    env.clock.set(queued.next_attempt_at)
    report = await env.deliver(plain(server))
    assert report.sent == 1
    (admin,) = [r for r in server.received if r.rcpt_tos == ["duban-admin@example.gov.cn"]]
    assert admin.message["Message-ID"] == queued.message_id


async def test_connection_refused_is_a_retry_with_backoff_for_every_message(env):
    env.queue()
    with refused_port() as port:
        report = await env.deliver(SmtpTransport(host="127.0.0.1", port=port, security="none", timeout=2))
    assert report.retried == DIGESTS and report.sent == report.failed == 0
    for message in env.outbox():
        assert (message.state, message.attempts, message.claimed_by) == ("pending", 1, None)
        assert between(message.next_attempt_at - NINE, 60)
        assert "cannot connect" in message.last_error
    assert len(env.events("mail.retry")) == DIGESTS


async def test_a_silent_server_times_out_once_per_batch_and_is_retried(env):
    env.queue()
    with SilentServer() as silent:
        report = await env.deliver(
            SmtpTransport(host=silent.host, port=silent.port, security="none", timeout=0.5)
        )
        connections = silent.connections
    assert report.retried == DIGESTS
    assert connections == 1  # one timeout for the batch, not one per message
    for message in env.outbox():
        assert (message.state, message.attempts) == ("pending", 1)
        assert "timed out" in message.last_error
        assert message.next_attempt_at > NINE


class AfterFirstSend:
    """The real transport; ``then()`` runs once the first message went through (a fault mid-batch)."""

    def __init__(self, inner: SmtpTransport, then) -> None:
        self.inner, self.then, self.sends = inner, then, 0

    async def open(self) -> None:
        await self.inner.open()

    async def send(self, message: EmailMessage, recipients) -> SendResult:
        result = await self.inner.send(message, recipients)
        self.sends += 1
        if self.sends == 1:
            self.then()
        return result

    async def close(self) -> None:
        await self.inner.close()


@pytest.mark.parametrize("fault", ["idle_drop", "drop_on_mail"])
async def test_the_server_dropping_the_connection_mid_batch_the_rest_are_delivered_after_reconnecting(
    env, server, fault
):
    env.queue()

    def hang_up() -> None:
        if fault == "idle_drop":
            server.drop_after = 1  # from now on: closes each connection after one message
        else:
            server.drop_on_mail = 1  # the next MAIL FROM gets no reply: the server hangs up

    report = await env.deliver(AfterFirstSend(plain(server), hang_up))
    assert report.sent == DIGESTS and not report.retried
    assert set(received_by_id(server).values()) == {1} and len(server.received) == DIGESTS
    assert server.connections == (3 if fault == "idle_drop" else 2)


async def test_the_batch_stops_after_repeated_temporary_failures(env, server):
    env.queue()
    server.data_replies = ["421 4.3.2 shutting down"] * 3
    report = await env.deliver(plain(server))
    assert report.retried == DIGESTS and not server.received  # three tried, the fourth not even tried
    assert {m.state for m in env.outbox()} == {"pending"}
    assert sum("not tried" in m.last_error for m in env.outbox()) == 1


# -- crashes, stops, broken digests -----------------------------------------------------------


class CrashAfterAccept:
    """The real transport, but the process "dies" right after the server accepted the first message."""

    def __init__(self, inner: SmtpTransport) -> None:
        self.inner = inner
        self.crashed = False

    async def open(self) -> None:
        await self.inner.open()

    async def send(self, message: EmailMessage, recipients) -> SendResult:
        result = await self.inner.send(message, recipients)
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("killed between the server's 250 and the database commit")
        return result

    async def close(self) -> None:
        await self.inner.close()


async def test_a_crash_between_accept_and_commit_resends_with_the_same_message_id_after_the_claim_expires(
    env, server
):
    env.queue()
    with pytest.raises(RuntimeError, match="killed"):
        await env.deliver(CrashAfterAccept(plain(server)), node="node-a")
    (in_flight,) = env.outbox(state="sending")
    assert in_flight.claimed_by == "node-a"
    assert received_by_id(server) == Counter({in_flight.message_id: 1})
    assert {m.state for m in env.outbox() if m.id != in_flight.id} == {"pending"}  # given back untouched

    report = await env.deliver(plain(server), node="node-b")  # the claim is still valid: left alone
    assert report.sent == DIGESTS - 1 and env.message(in_flight.recipient).state == "sending"

    env.clock.advance(timedelta(seconds=CLAIM_SECONDS + 1))
    report = await env.deliver(plain(server), node="node-b")
    assert (report.sent, report.reclaimed) == (1, 1)
    assert received_by_id(server)[in_flight.message_id] == 2  # the same Message-ID twice: one email
    assert env.message(in_flight.recipient).state == "sent"
    assert len(env.events("mail.sent", in_flight.message_id)) == 1
    assert len(env.events("mail.reclaimed", in_flight.message_id)) == 1


class KillsTheSender:
    """The real transport, except that sending to ``address`` kills the process (every time)."""

    def __init__(self, inner: SmtpTransport, address: str) -> None:
        self.inner, self.address = inner, address

    async def open(self) -> None:
        await self.inner.open()

    async def send(self, message: EmailMessage, recipients) -> SendResult:
        if self.address in recipients:
            raise RuntimeError("segmentation fault")
        return await self.inner.send(message, recipients)

    async def close(self) -> None:
        await self.inner.close()


async def test_a_message_that_kills_its_sender_every_time_ends_failed_and_does_not_block_the_others(
    store, tmp_path, server
):
    env = make_env(store, tmp_path / "plan", max_attempts=2)
    env.queue()
    transport = KillsTheSender(plain(server), "tax@example.gov.cn")
    with pytest.raises(RuntimeError):
        await env.deliver(transport)
    await env.deliver(transport)  # the rest of the batch, given back by the dead run
    assert len(server.received) == DIGESTS - 1
    env.clock.advance(timedelta(seconds=CLAIM_SECONDS + 1))
    with pytest.raises(RuntimeError):  # reclaimed and sent again: it kills the sender again
        await env.deliver(transport)
    env.clock.advance(timedelta(seconds=CLAIM_SECONDS + 1))
    report = await env.deliver(transport)  # reclaimed a second time: out of attempts
    assert (report.reclaimed, report.sent) == (1, 0)
    tax = env.message("agency-2")
    assert (tax.state, tax.attempts) == ("failed", 2)
    assert "认领已过期" in tax.last_error
    assert [e.after["state"] for e in env.events("mail.reclaimed", tax.message_id)] == ["pending", "failed"]


async def test_a_stop_request_finishes_the_message_in_flight_and_gives_the_rest_back(env, server):
    env.queue()
    sent: list[int] = []
    report = await env.deliver(plain(server), stop=lambda: bool(sent.append(1) or len(sent) > 1))
    assert report.sent == 1
    waiting = env.outbox(state="pending")
    assert len(waiting) == DIGESTS - 1
    assert all(m.attempts == 0 and m.claimed_by is None and m.last_error is None for m in waiting)


async def test_a_digest_that_cannot_be_rendered_is_failed_and_the_batch_goes_on(env, server, tmp_path):
    env.queue()
    # The units file is edited between queueing and sending: agency-2 is gone, its digest has no address.
    without = UNITS.replace('id = "agency-2"', 'id = "agency-9"')
    changed = make_bundle(tmp_path / "changed", without)
    report = await deliver(
        env.engine, env.clock, plain(server), env.renderer, {"dispatch-test": changed}, env.mail
    )
    assert (report.sent, report.failed) == (DIGESTS - 1, 1)
    tax = env.message("agency-2")
    assert tax.state == "failed" and tax.last_error.startswith("cannot render:")
    assert "has no email address" in tax.last_error
    assert len(server.received) == DIGESTS - 1


async def test_the_rate_limit_paces_the_sends(store, tmp_path, server):
    env = make_env(store, tmp_path / "plan", rate_limit=20)
    env.queue()
    started = time.monotonic()
    assert (await env.deliver(plain(server))).sent == DIGESTS
    assert time.monotonic() - started >= (DIGESTS - 1) / 20


# -- PostgreSQL: claims under concurrency -----------------------------------------------------

MANY = 24


def many_units(count: int) -> str:
    extra = "".join(
        f'\n[[units]]\nid = "town-{n:02d}"\nname = "第{n}镇人民政府"\n'
        f'emails = ["town{n}@example.gov.cn"]\nroles = ["agency"]\n'
        for n in range(count - 3)
    )
    return UNITS + extra


@pytest.mark.postgres
def test_two_concurrent_deliveries_never_send_a_message_twice(tmp_path):
    with postgres_engine() as engine, SmtpServer() as server:
        env = make_env(engine, tmp_path / "plan", units=many_units(MANY))
        assert env.queue() == MANY + 1
        start = threading.Barrier(2)
        reports: dict[str, list[DeliverReport]] = {"node-a": [], "node-b": []}

        def worker(node: str) -> None:
            start.wait()
            while True:
                report = asyncio.run(env.deliver(plain(server), node=node, limit=3))
                reports[node].append(report)
                if not report.sent:
                    return

        threads = [threading.Thread(target=worker, args=(n,)) for n in reports]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        sent = [i for node in reports for r in reports[node] for i in r.sent_ids]
        assert sorted(sent) == [m.id for m in env.outbox()]  # each message sent by exactly one node
        assert set(received_by_id(server).values()) == {1} and len(server.received) == MANY + 1
        assert len(env.events("mail.sent")) == MANY + 1


@pytest.mark.postgres
def test_a_claim_skips_rows_locked_by_another_transaction_instead_of_waiting(tmp_path):
    with postgres_engine() as engine:
        env = make_env(engine, tmp_path / "plan")
        env.queue()
        first, second, *_ = [m.id for m in env.outbox()]
        claimed: list[list[int]] = []
        with engine.connect() as other:
            other.execute(
                text("SELECT id FROM outbox_message WHERE id IN (:a, :b) FOR UPDATE"),
                {"a": first, "b": second},
            )
            claimer = threading.Thread(
                target=lambda: claimed.append(claim(engine, NINE, "node-b", 100, ("digest",), 8)[0])
            )
            claimer.start()
            claimer.join(timeout=5)
            waited = claimer.is_alive()  # a claim that waits for the lock instead of skipping the rows
            other.rollback()
        claimer.join(timeout=10)
        assert not waited
        (ids,) = claimed
        assert first not in ids and second not in ids and len(ids) == DIGESTS - 2
        states = {m.id: m.state for m in env.outbox()}
        assert states[first] == states[second] == "pending"
