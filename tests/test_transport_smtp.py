"""SmtpTransport against real aiosmtpd servers: delivery, TLS, AUTH, and every failure mode."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, date, datetime

import pytest
from smtp_server import SilentServer, SmtpServer, refused_port, self_signed_cert, server_tls_context
from structlog.testing import capture_logs

from notifications.errors import PermanentFailure, TemporaryFailure, TransportError
from notifications.model import Digest, DigestItem, Recipient
from notifications.render import Renderer
from notifications.transport import SendResult, SmtpTransport, Transport, classify

PASSWORD = "S3cret-pa55-未公开"
NOW = datetime(2026, 6, 8, 1, 0, tzinfo=UTC)
UNIT = Recipient("county-police", "县公安局", ("gaj@example.gov.cn", "gaj-office@example.gov.cn"))
RENDERER = Renderer(
    sender="督办系统 <duban@example.gov.cn>", domain="duban.example.gov.cn", timezone="Asia/Shanghai"
)


def make_message(task: str = "T05", recipient: Recipient = UNIT):
    item = DigestItem(
        key=f"rule-of-law-pilot:2026:{task}:{recipient.unit_id}:-:reminder:0",
        kind="reminder",
        workflow="rule-of-law-pilot",
        workflow_title="法治政府建设指标体系试点",
        phase="mobilize",
        phase_name="动员部署阶段",
        task=task,
        task_title="制定本单位工作方案并报送联络员名单",
        section="三、实施步骤",
        detail=None,
        unit=recipient.unit_id,
        unit_name=recipient.name,
        occurrence=None,
        due=date(2026, 6, 10),
        opens=date(2026, 5, 10),
        lead_names=("县政府法制办",),
    )
    return RENDERER.render(Digest(recipient, date(2026, 6, 8), (item,)), now=NOW)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def server():
    with SmtpServer() as running:
        yield running


@pytest.fixture
def tls_server(tls_files):
    cert, key = tls_files
    with SmtpServer(
        tls_context=server_tls_context(cert, key),
        require_starttls=True,
        credentials={"duban": PASSWORD},
    ) as running:
        yield running


def plain(server, **options) -> SmtpTransport:
    return SmtpTransport(
        host=server.host, port=server.port, security="none", local_hostname="duban.test", **options
    )


async def send_one(transport: SmtpTransport, message, recipients) -> SendResult:
    await transport.open()
    try:
        return await transport.send(message, recipients)
    finally:
        await transport.close()


# -- delivery ---------------------------------------------------------------------------------


async def test_a_digest_arrives_with_envelope_parts_and_chinese_subject(server):
    message = make_message()
    transport = plain(server)
    assert isinstance(transport, Transport)
    result = await send_one(transport, message, UNIT.emails)
    assert result == SendResult(accepted=UNIT.emails, refused={})
    (received,) = server.received
    assert received.mail_from == "duban@example.gov.cn"
    assert received.rcpt_tos == list(UNIT.emails)
    got = received.message
    assert got["Subject"] == "【督办提醒】法治政府建设指标体系试点：1项即将到期"
    assert got["Message-ID"] == message["Message-ID"]
    assert [p.get_content_type() for p in got.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    assert "制定本单位工作方案并报送联络员名单" in got.get_body(("plain",)).get_content()


async def test_one_connection_is_reused_for_a_batch(server):
    transport = plain(server)
    await transport.open()
    for task in ("T01", "T02", "T03"):
        await transport.send(make_message(task), ["gaj@example.gov.cn"])
    await transport.close()
    assert len(server.received) == 3
    assert server.connections == 1


async def test_starttls_and_auth_with_the_self_signed_cert_as_ca_file(tls_server, tls_files):
    transport = SmtpTransport(
        host="localhost",
        port=tls_server.port,
        username="duban",
        password=PASSWORD,
        ca_file=tls_files[0],
        local_hostname="duban.test",
        timeout=5,
    )
    await send_one(transport, make_message(), ["gaj@example.gov.cn"])
    (received,) = tls_server.received
    assert received.tls is True
    assert received.login == "duban"


async def test_implicit_tls(tls_files):
    cert, key = tls_files
    with SmtpServer(tls_context=server_tls_context(cert, key), implicit_tls=True) as server:
        transport = SmtpTransport(
            host="127.0.0.1", port=server.port, security="tls", ca_file=cert, local_hostname="duban.test"
        )
        await send_one(transport, make_message(), ["gaj@example.gov.cn"])
        assert server.received[0].tls is True


async def test_untrusted_certificate_is_permanent(tls_server):
    transport = SmtpTransport(
        host="localhost",
        port=tls_server.port,
        username="duban",
        password=PASSWORD,
        local_hostname="duban.test",
        timeout=5,
    )
    with pytest.raises(PermanentFailure, match="certificate") as caught:
        await transport.open()
    assert f"localhost:{tls_server.port}" in str(caught.value)
    assert tls_server.received == [] and tls_server.auth_attempts == []  # nothing sent in clear


async def test_verify_false_accepts_the_self_signed_cert(tls_server):
    transport = SmtpTransport(
        host="127.0.0.1",
        port=tls_server.port,
        username="duban",
        password=PASSWORD,
        verify=False,
        local_hostname="duban.test",
    )
    await send_one(transport, make_message(), ["gaj@example.gov.cn"])
    assert len(tls_server.received) == 1


async def test_starttls_required_but_not_offered_is_permanent(server):
    transport = SmtpTransport(host=server.host, port=server.port, local_hostname="duban.test")
    with pytest.raises(PermanentFailure, match=f"{server.host}:{server.port}"):
        await transport.open()


async def test_bad_password_is_permanent_535(tls_server, tls_files):
    transport = SmtpTransport(
        host="localhost",
        port=tls_server.port,
        username="duban",
        password="wrong-" + PASSWORD,
        ca_file=tls_files[0],
        local_hostname="duban.test",
    )
    with pytest.raises(PermanentFailure, match="535") as caught:
        await transport.open()
    assert PASSWORD not in str(caught.value)


# -- refusals ---------------------------------------------------------------------------------


async def test_451_on_data_is_temporary_and_the_connection_stays_usable(server):
    server.data_replies.append("451 4.3.0 try later")
    transport = plain(server)
    await transport.open()
    with pytest.raises(TemporaryFailure, match=r"451 4\.3\.0 try later") as caught:
        await transport.send(make_message(), ["gaj@example.gov.cn"])
    assert f"{server.host}:{server.port}" in str(caught.value)
    await transport.send(make_message(), ["gaj@example.gov.cn"])
    await transport.close()
    assert len(server.received) == 1 and server.connections == 1


async def test_554_on_data_is_permanent(server):
    server.data_replies.append("554 5.7.1 message rejected as spam")
    with pytest.raises(PermanentFailure, match=r"554 5\.7\.1"):
        await send_one(plain(server), make_message(), ["gaj@example.gov.cn"])


async def test_one_refused_recipient_is_reported_and_the_other_delivered(server):
    server.rcpt_reply["gone@example.gov.cn"] = "550 5.1.1 no such user"
    result = await send_one(plain(server), make_message(), ["gone@example.gov.cn", "gaj@example.gov.cn"])
    assert result.accepted == ("gaj@example.gov.cn",)
    assert result.refused == {"gone@example.gov.cn": "550 5.1.1 no such user"}
    assert server.received[0].rcpt_tos == ["gaj@example.gov.cn"]


@pytest.mark.parametrize(
    ("reply", "error"),
    [("550 5.1.1 no such user", PermanentFailure), ("450 4.2.1 mailbox busy", TemporaryFailure)],
)
async def test_all_recipients_refused(server, reply, error):
    server.rcpt_reply.update({address: reply for address in UNIT.emails})
    with pytest.raises(error) as caught:
        await send_one(plain(server), make_message(), UNIT.emails)
    assert reply.split()[0] in str(caught.value)
    assert "gaj-office@example.gov.cn" in str(caught.value)
    assert server.received == []


# -- the network ------------------------------------------------------------------------------


async def test_connection_refused_is_temporary():
    with refused_port() as port:  # nothing listens there
        transport = SmtpTransport(host="127.0.0.1", port=port, security="none", local_hostname="duban.test")
        with pytest.raises(TemporaryFailure, match=f"127.0.0.1:{port}"):
            await transport.open()


async def test_a_silent_server_times_out_quickly_as_temporary():
    with SilentServer() as silent:
        transport = SmtpTransport(
            host=silent.host, port=silent.port, security="none", timeout=1, local_hostname="duban.test"
        )
        started = time.monotonic()
        with pytest.raises(TemporaryFailure, match="timed out"):
            await transport.open()
        assert time.monotonic() - started < 10  # its 1 s, not the default 30 s (room for a busy machine)


@pytest.mark.parametrize("pause", [0, 0.2])
async def test_a_dropped_connection_is_reopened_and_the_message_delivered(server, pause):
    server.drop_after = 1
    transport = plain(server)
    await transport.open()
    await transport.send(make_message("T01"), ["gaj@example.gov.cn"])
    await asyncio.sleep(pause)  # 0: the client may not have noticed yet; 0.2: it has
    await transport.send(make_message("T02"), ["gaj@example.gov.cn"])
    await transport.close()
    assert [r.message["Message-ID"] for r in server.received] == [
        make_message("T01")["Message-ID"],
        make_message("T02")["Message-ID"],
    ]
    assert server.connections == 2


async def test_a_hang_up_mid_conversation_is_retried_once_on_a_fresh_connection(server):
    server.drop_on_mail = 1
    with capture_logs() as logs:
        result = await send_one(plain(server), make_message(), ["gaj@example.gov.cn"])
    assert result.accepted == ("gaj@example.gov.cn",)
    assert len(server.received) == 1
    assert "smtp.reconnecting" in [entry["event"] for entry in logs]


async def test_a_second_hang_up_is_temporary(server):
    server.drop_on_mail = 2
    with pytest.raises(TemporaryFailure, match="connection lost"):
        await send_one(plain(server), make_message(), ["gaj@example.gov.cn"])
    assert server.received == []


# -- secrets ----------------------------------------------------------------------------------


async def test_the_password_never_shows(tls_server, tls_files, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    def transport(password: str, **options) -> SmtpTransport:
        settings = {"ca_file": tls_files[0], "local_hostname": "duban.test", "timeout": 2, **options}
        made = SmtpTransport(
            host="localhost", port=tls_server.port, username="duban", password=password, **settings
        )
        seen.append(repr(made))
        return made

    with capture_logs() as logs, refused_port() as nowhere:
        await send_one(transport(PASSWORD), make_message(), ["gaj@example.gov.cn"])
        failures = [
            transport(PASSWORD, ca_file=None),  # certificate rejected
            transport(PASSWORD + "x"),  # 535
            SmtpTransport(host="127.0.0.1", port=nowhere, password=PASSWORD, username="duban"),
        ]
        for failing in failures:
            with pytest.raises(TransportError) as caught:
                await failing.open()
            seen += [str(caught.value), repr(caught.value)]
    output = capsys.readouterr()
    seen += [repr(entry) for entry in logs] + [caplog.text, output.out, output.err]
    assert len(tls_server.received) == 1
    assert "'***'" in seen[0]
    for text in seen:
        assert PASSWORD not in text


def test_classify_blanks_secrets_and_keeps_one_line():
    from aiosmtplib import SMTPResponseException

    error = classify(
        SMTPResponseException(535, f"5.7.8 bad credentials for {PASSWORD}\nsecond line"),
        server="mail.example.gov.cn:587",
        secrets=[PASSWORD],
    )
    assert isinstance(error, PermanentFailure)
    assert (
        str(error) == "mail.example.gov.cn:587: server replied: 535 5.7.8 bad credentials for *** second line"
    )
