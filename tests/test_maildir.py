"""MaildirTransport (the embedded default) and CaptureTransport."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default

import pytest

from notifications import transport as transport_module
from notifications.errors import PermanentFailure, TemporaryFailure
from notifications.model import Digest, DigestItem, Recipient
from notifications.render import Renderer
from notifications.transport import CaptureTransport, MaildirTransport, SendResult, Transport

NOW = datetime(2026, 6, 8, 1, 0, tzinfo=UTC)
UNIT = Recipient("town-a", "甲镇人民政府", ("jiazhen@example.gov.cn",))
RENDERER = Renderer(
    sender="督办系统 <duban@example.gov.cn>", domain="duban.example.gov.cn", timezone="Asia/Shanghai"
)


def make_message(task: str = "T02", now: datetime = NOW) -> EmailMessage:
    item = DigestItem(
        key=f"rule-of-law-pilot:2026:{task}:town-a:-:due_today:0",
        kind="due_today",
        workflow="rule-of-law-pilot",
        workflow_title="法治政府建设指标体系试点",
        phase="mobilize",
        phase_name="动员部署阶段",
        task=task,
        task_title="报送本单位实施方案",
        section=None,
        detail=None,
        unit="town-a",
        unit_name=UNIT.name,
        occurrence=None,
        due=date(2026, 6, 10),
        opens=None,
    )
    return RENDERER.render(Digest(UNIT, date(2026, 6, 10), (item,)), now=now)


def files(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_a_message_is_written_atomically_under_new(tmp_path):
    maildir = MaildirTransport(tmp_path / "mail")
    assert isinstance(maildir, Transport)
    await maildir.open()
    assert files(tmp_path / "mail") == ["cur", "new", "tmp"]
    message = make_message()
    result = await maildir.send(message, UNIT.emails)
    await maildir.close()
    assert result == SendResult(accepted=UNIT.emails, refused={})
    (written,) = (tmp_path / "mail" / "new").iterdir()
    assert written.name == message["Message-ID"].strip("<>") + ".eml"
    assert written == maildir.path_for(message)
    assert written.read_bytes() == message.as_bytes(policy=SMTP)
    assert files(tmp_path / "mail" / "tmp") == []


async def test_send_creates_the_directories_without_open(tmp_path):
    await MaildirTransport(tmp_path / "deep" / "mail").send(make_message(), UNIT.emails)
    assert len(files(tmp_path / "deep" / "mail" / "new")) == 1


async def test_a_resend_with_the_same_message_id_replaces_the_file(tmp_path):
    maildir = MaildirTransport(tmp_path)
    first, again = make_message(), make_message(now=NOW + timedelta(hours=1))
    assert first["Message-ID"] == again["Message-ID"]
    await maildir.send(first, UNIT.emails)
    await maildir.send(again, UNIT.emails)
    (written,) = (tmp_path / "new").iterdir()
    assert written.read_bytes() == again.as_bytes(policy=SMTP)
    await maildir.send(make_message("T03"), UNIT.emails)
    assert len(files(tmp_path / "new")) == 2


async def test_the_file_parses_back(tmp_path):
    maildir = MaildirTransport(tmp_path)
    message = make_message()
    await maildir.send(message, UNIT.emails)
    parsed = message_from_bytes(maildir.path_for(message).read_bytes(), policy=default)
    assert parsed["Subject"] == "【督办提醒】法治政府建设指标体系试点：1项今日到期"
    assert parsed["To"].addresses[0].display_name == "甲镇人民政府"
    assert "报送本单位实施方案" in parsed.get_body(("plain",)).get_content()
    assert [p.get_content_type() for p in parsed.walk()][-1] == "text/calendar"


async def test_a_failed_rename_leaves_neither_a_partial_file_nor_a_temporary_one(tmp_path, monkeypatch):
    maildir = MaildirTransport(tmp_path)

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(transport_module.os, "replace", disk_full)
    with pytest.raises(TemporaryFailure, match="No space left on device"):
        await maildir.send(make_message(), UNIT.emails)
    assert files(tmp_path / "new") == [] and files(tmp_path / "tmp") == []


async def test_an_unusable_root_is_a_transport_error(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(TemporaryFailure, match="maildir"):
        await MaildirTransport(blocker).open()


async def test_a_message_without_message_id_is_refused(tmp_path):
    message = make_message()
    del message["Message-ID"]
    with pytest.raises(PermanentFailure, match="Message-ID"):
        await MaildirTransport(tmp_path).send(message, UNIT.emails)


async def test_a_hostile_message_id_stays_inside_the_maildir(tmp_path):
    message = make_message()
    message.replace_header("Message-ID", "<../../etc/passwd@x>")
    await MaildirTransport(tmp_path / "mail").send(message, UNIT.emails)
    assert files(tmp_path) == ["mail"]
    (written,) = (tmp_path / "mail" / "new").iterdir()
    assert "/" not in written.name and os.sep not in written.name


async def test_capture_keeps_what_was_sent_and_can_refuse_or_fail():
    capture = CaptureTransport(
        refuse={"gone@example.gov.cn": "550 5.1.1 no such user"},
        failures=[TemporaryFailure("smtp.test:25: 451 4.3.0 try later")],
    )
    await capture.open()
    message = make_message()
    with pytest.raises(TemporaryFailure):
        await capture.send(message, UNIT.emails)
    result = await capture.send(message, [*UNIT.emails, "gone@example.gov.cn"])
    assert result.refused == {"gone@example.gov.cn": "550 5.1.1 no such user"}
    assert capture.sent == [(message, (*UNIT.emails, "gone@example.gov.cn"))]
    with pytest.raises(PermanentFailure, match="550"):
        await capture.send(message, ["gone@example.gov.cn"])
    await capture.close()
    assert (capture.opened, capture.closed) == (1, 1)


async def test_an_unwritable_maildir_is_said_to_be_unwritable_not_a_network_error(tmp_path):
    """Issue 26: a maildir that cannot be written was reported as a "network error"."""
    maildir = MaildirTransport(tmp_path / "mail")
    await maildir.open()
    (tmp_path / "mail" / "tmp").rmdir()
    (tmp_path / "mail" / "tmp").write_text("")  # (root may write anywhere: a file where a folder must be)
    with pytest.raises(TemporaryFailure) as caught:
        await maildir.send(make_message(), UNIT.emails)
    assert (
        str(caught.value)
        == f"maildir {tmp_path / 'mail'}: cannot write {tmp_path / 'mail' / 'tmp'}: File exists"
    )
    with pytest.raises(TemporaryFailure, match="cannot write") as caught:
        await maildir.open()
    assert "network" not in str(caught.value)
