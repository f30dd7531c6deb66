"""What the units and the office are told of submissions, over a real SMTP conversation (aiosmtpd):
every digest to a unit carries its personal link; a decision reaches the unit's next digest (the
return's reason included); the office's digest says 待审核 N 项 with its review page."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import date

import pytest
from smtp_server import SmtpServer
from sqlmodel import Session
from test_submissions import DEFINITION, OFFICE, UNITS, A, B, at

from notifications.render import Renderer
from notifications.transport import SmtpTransport
from orchestrator.admin.links import link_for_unit, read_unit_token
from orchestrator.admin.submissions import (
    Desk,
    approve,
    request_extension,
    return_submission,
    submit_completion,
)
from orchestrator.engine.clock import FakeClock
from orchestrator.engine.outbox import deliver, enqueue
from orchestrator.engine.programs import start_program
from orchestrator.engine.tick import tick
from orchestrator.service.config import MailSettings, Settings
from orchestrator.service.runtime import send_policy
from orchestrator.store.db import make_engine, transaction, upgrade
from orchestrator.store.models import Obligation
from workflows.catalog import load_bundle

SECRET = "m" * 40
BASE = "https://duban.example.gov.cn"


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as running:
        yield running


@pytest.fixture
def world(tmp_path):
    (tmp_path / "def.toml").write_text(DEFINITION, encoding="utf-8")
    (tmp_path / "units.toml").write_text(UNITS, encoding="utf-8")
    bundle = load_bundle(tmp_path / "def.toml", tmp_path / "units.toml")
    engine = make_engine(f"sqlite:///{tmp_path / 'duban.db'}")
    upgrade(engine)
    with transaction(engine) as session:
        start_program(session, bundle, 2026, at("2026-05-20T09:00"))

    def link_for(unit: str) -> str:
        with Session(engine) as session:
            return link_for_unit(SECRET, BASE, session, unit, now=at("2026-06-01T08:00"))

    renderer = Renderer(
        sender="督办系统 <duban@example.gov.cn>",
        domain="duban.test",
        timezone="Asia/Shanghai",
        link_for=link_for,
        office_url=f"{BASE}/office",
    )
    bundles = {"review-test": bundle}
    yield engine, bundle, bundles, renderer, Desk(bundles, send_policy(Settings(), bundles))
    engine.dispose()


async def send(world, server, when: str) -> list:
    engine, _bundle, bundles, renderer, desk = world
    clock = FakeClock(at(when))
    tick(engine, clock.now(), desk.policy)
    enqueue(engine, clock.now(), bundles, renderer)
    before = len(server.received)
    transport = SmtpTransport(host=server.host, port=server.port, security="none", timeout=5)
    await deliver(engine, clock, transport, renderer, bundles, MailSettings(), rng=random.Random(1))
    return [r.message for r in server.received[before:]]


def body(message) -> str:
    return message.get_body(("plain",)).get_content()


def html(message) -> str:
    return message.get_body(("html",)).get_content()


def to(message) -> str:
    return message["To"].addresses[0].addr_spec


def obligation_of(engine, unit: str, task: str = "T1") -> Obligation:
    from sqlmodel import select

    with Session(engine) as session:
        return session.exec(select(Obligation).where(Obligation.unit == unit, Obligation.task == task)).one()


async def test_every_digest_carries_the_units_own_working_link(world, server):
    engine = world[0]
    messages = await send(world, server, "2026-06-01T10:00")
    assert {to(m) for m in messages} == {
        "town-a@example.gov.cn",
        "town-b@example.gov.cn",
        "office@example.gov.cn",
    }
    for message in messages:
        (link,) = set(re.findall(rf"{BASE}/u/[\w.\-]+", body(message)))
        assert f'href="{link}"' in html(message)
        unit = message["To"].addresses[0].addr_spec.split("@")[0]
        with Session(engine) as session:
            assert (
                read_unit_token(
                    SECRET, link.rpartition("/")[2], session, 86400 * 456, now=at("2026-06-02T10:00")
                )
                == unit
            )
        assert SECRET not in message.as_string()


async def test_a_return_reaches_the_units_next_digest_with_its_reason_and_the_office_hears_of_pending(
    world, server
):
    engine, desk = world[0], world[4]
    await send(world, server, "2026-06-01T10:00")
    t1a, t1b = obligation_of(engine, "town-a"), obligation_of(engine, "town-b")
    with transaction(engine) as session:
        done = submit_completion(session, t1a.id, A, at("2026-06-02T08:00"), "已报送", desk=desk).id
        request_extension(session, t1b.id, B, at("2026-06-02T08:10"), date(2026, 6, 20), "需会签", desk=desk)
    messages = await send(world, server, "2026-06-02T09:30")
    (office,) = [m for m in messages if to(m) == "office@example.gov.cn"]
    assert "待审核 2 项：办结申请 1 项，延期申请 1 项" in body(office) and f"{BASE}/office" in body(office)
    assert "待审核" in office["Subject"]
    with transaction(engine) as session:
        return_submission(session, done, OFFICE, at("2026-06-03T10:00"), "缺少盖章页<script>", desk=desk)
    messages = await send(world, server, "2026-06-03T10:30")
    (unit,) = [m for m in messages if to(m) == "town-a@example.gov.cn"]
    assert "退回理由：缺少盖章页<script>" in body(unit)
    assert "缺少盖章页&lt;script&gt;" in html(unit) and "<script>" not in html(unit)
    assert "申请退回" in unit["Subject"]


async def test_an_approval_reaches_the_units_next_digest(world, server):
    engine, desk = world[0], world[4]
    await send(world, server, "2026-06-01T10:00")
    t1a = obligation_of(engine, "town-a")
    with transaction(engine) as session:
        done = submit_completion(session, t1a.id, A, at("2026-06-02T08:00"), "已报送", desk=desk).id
        approve(session, done, OFFICE, at("2026-06-02T11:00"), note="材料齐全", desk=desk)
    messages = await send(world, server, "2026-06-02T11:30")
    (unit,) = [m for m in messages if to(m) == "town-a@example.gov.cn"]
    assert "办结申请已审核通过，该事项已办结。审核意见：材料齐全。" in body(unit)


async def test_a_decision_email_opens_with_a_true_sentence_never_a_lone_full_stop(world, server):
    engine, desk = world[0], world[4]
    await send(world, server, "2026-06-01T10:00")
    t1a, t1b = obligation_of(engine, "town-a"), obligation_of(engine, "town-b")
    with transaction(engine) as session:
        returned = submit_completion(session, t1a.id, A, at("2026-06-02T08:00"), "已报送", desk=desk).id
        approved = submit_completion(session, t1b.id, B, at("2026-06-02T08:00"), "已报送", desk=desk).id
    (office,) = [m for m in await send(world, server, "2026-06-02T09:30") if to(m) == "office@example.gov.cn"]
    assert "\n本期有申请等待审核。\n" in text(office)
    with transaction(engine) as session:
        return_submission(session, returned, OFFICE, at("2026-06-03T10:00"), "缺少盖章页", desk=desk)
        approve(session, approved, OFFICE, at("2026-06-03T10:00"), desk=desk)
    messages = {to(m): m for m in await send(world, server, "2026-06-03T10:30")}
    first = "现将截至2026年6月3日（周三）贵单位的督办事项通知如下。\n"
    assert first + "本期共有退回的申请1项。\n" in text(messages["town-a@example.gov.cn"])
    assert first + "本期共有审核通过的申请1项。\n" in text(messages["town-b@example.gov.cn"])
    for message in [office, *messages.values()]:
        assert "。" not in [line.strip() for line in text(message).splitlines()], text(message)
        assert "<strong>。</strong>" not in html(message)


def text(message) -> str:
    return body(message).replace("\r\n", "\n")


async def test_the_office_gets_no_review_email_once_everything_is_decided(world, server):
    """Issue 27, point 12: a completion submitted before the send window and decided before it
    opens leaves nothing to review — the office gets no 【待审核】 email saying 目前没有待审核的申请
    (the item is skipped, in the audit log). A submission later that day makes it pending again."""
    engine, desk = world[0], world[4]
    await send(world, server, "2026-06-01T10:00")
    t1a, t1b = obligation_of(engine, "town-a"), obligation_of(engine, "town-b")
    with transaction(engine) as session:
        done = submit_completion(session, t1a.id, A, at("2026-06-02T07:30"), "已报送", desk=desk).id
        approve(session, done, OFFICE, at("2026-06-02T08:00"), desk=desk)
    messages = await send(world, server, "2026-06-02T09:30")
    assert [to(m) for m in messages] == ["town-a@example.gov.cn"]  # the unit hears of its approval
    assert not any("待审核" in str(m["Subject"]) or "目前没有待审核" in body(m) for m in messages)
    from sqlmodel import select

    from orchestrator.store.models import Event, NotificationItem

    with Session(engine) as session:
        (item,) = session.exec(
            select(NotificationItem).where(NotificationItem.kind == "review_pending")
        ).all()
        assert item.state == "skipped"
        skipped = session.exec(
            select(Event).where(Event.kind == "notice.skipped", Event.subject == item.key)
        ).all()
        assert len(skipped) == 1

    with transaction(engine) as session:  # the same day: town-b submits; the office is told after all
        submit_completion(session, t1b.id, B, at("2026-06-02T14:00"), "已报送", desk=desk)
    (office,) = await send(world, server, "2026-06-02T14:30")
    assert to(office) == "office@example.gov.cn" and "待审核 1 项：办结申请 1 项" in body(office)
