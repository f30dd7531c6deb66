"""Group robots through the real outbox: tick → enqueue → deliver (email, aiosmtpd) and
deliver_robots (the fake robot platform on 127.0.0.1), on a real SQLite file (and the same steps
on PostgreSQL, a fresh schema each) and a fake clock.

The fake platform (``tests/robot_server.py``) checks the payload, the WeCom key and the DingTalk
token, signature and timestamp, and answers with the platforms' real error bodies.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
import structlog
from engine_support import local, postgres_engine
from robot_server import (
    DINGTALK_TOO_FAST,
    WECOM_TOO_FAST,
    WECOM_TOO_LONG,
    FakeRobots,
    RobotServer,
)
from smtp_server import SmtpServer, refused_port
from sqlalchemy import text
from sqlmodel import Session, select
from structlog.testing import LogCapture

from notifications.im import Robot, RobotTransport
from notifications.render import Renderer
from notifications.transport import SmtpTransport
from orchestrator.engine.clock import FakeClock
from orchestrator.engine.outbox import deliver, deliver_robots, enqueue, queue_failure_report
from orchestrator.engine.programs import start_program
from orchestrator.engine.tick import tick
from orchestrator.engine.window import SendPolicy
from orchestrator.service.config import MailSettings
from orchestrator.store.db import make_engine, transaction, upgrade
from orchestrator.store.models import Event, OutboxMessage
from workflows.catalog import Bundle, load_bundle

PLAN = """\
[workflow]
id = "robot-test"
title = "群机器人投递测试方案"
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
phase = "p1"
due = "06-10"
lead = ["office"]
responsible = ["role:agency"]

[[tasks]]
id = "T2"
title = "报送行政执法人员名单"
phase = "p1"
due = "06-10"
lead = ["office"]
responsible = ["role:agency"]
"""

UNITS = """\
[[units]]
id = "office"
name = "县推进依法行政工作领导小组办公室"
emails = ["office@example.gov.cn"]
roles = ["office"]

[[units]]
id = "agency-1"
name = "县公安局"
emails = ["police@example.gov.cn"]
roles = ["agency"]
robots = ["police-wecom", "police-dingtalk"]

[[units]]
id = "agency-2"
name = "县税务局"
emails = ["tax@example.gov.cn"]
roles = ["agency"]
robots = ["tax-dingtalk"]

[[units]]
id = "agency-3"
name = "县市场监督管理局"
emails = ["market@example.gov.cn"]
roles = ["agency"]
"""

WECOM_KEY = "693a91f6-7a0c-4bc4-97a0-0ec2b1fa5aaa"
POLICE_TOKEN = "0c23b5d1e8f7a6c4b3a2918f7e6d5c4b3a2918f7e6d5c4b3a2918f7e6d5c4b3a"
POLICE_SECRET = "SECd3f1c0b9a8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2"
TAX_TOKEN = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
TAX_SECRET = "SEC0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"
SECRETS = (WECOM_KEY, POLICE_TOKEN, POLICE_SECRET, TAX_TOKEN, TAX_SECRET)

MORNING = local(2026, 6, 1, 0, 0)  # the tick that opens the phase and the tasks (a Monday)
NINE = local(2026, 6, 1, 9, 0)


def robots(**changes: Robot) -> dict[str, Robot]:
    configured = {
        "police-wecom": Robot("police-wecom", "wecom", key=WECOM_KEY),
        "police-dingtalk": Robot(
            "police-dingtalk", "dingtalk", access_token=POLICE_TOKEN, secret=POLICE_SECRET
        ),
        "tax-dingtalk": Robot("tax-dingtalk", "dingtalk", access_token=TAX_TOKEN, secret=TAX_SECRET),
    }
    return configured | changes


@dataclass
class Env:
    engine: object
    bundle: Bundle
    clock: FakeClock
    mail: MailSettings
    renderer: Renderer
    policy: SendPolicy
    platform: FakeRobots
    server: RobotServer

    @property
    def bundles(self) -> dict[str, Bundle]:
        return {self.bundle.definition.workflow.id: self.bundle}

    def queue(self, at=NINE, *, tick_at=MORNING) -> int:
        self.clock.set(tick_at)
        tick(self.engine, self.clock.now(), self.policy)
        self.clock.set(at)
        return enqueue(self.engine, self.clock.now(), self.bundles, self.renderer)

    def transport(self, configured: dict[str, Robot] | None = None) -> RobotTransport:
        return RobotTransport(
            configured or robots(), wecom_url=self.server.wecom_url, dingtalk_url=self.server.dingtalk_url
        )

    async def robots(self, configured: dict[str, Robot] | None = None, **options):
        options.setdefault("rng", random.Random(4))
        return await deliver_robots(
            self.engine, self.clock, self.transport(configured), self.bundles, self.mail, **options
        )

    def outbox(self, **where) -> list[OutboxMessage]:
        with Session(self.engine) as session:
            query = select(OutboxMessage).order_by(OutboxMessage.id)
            for name, value in where.items():
                query = query.where(getattr(OutboxMessage, name) == value)
            return list(session.exec(query))

    def events(self, kind: str) -> list[Event]:
        with Session(self.engine) as session:
            return list(session.exec(select(Event).where(Event.kind == kind).order_by(Event.id)))


def make_env(folder: Path, units: str = UNITS, engine=None) -> Iterator[Env]:
    """The test plan started on 05-20 on ``engine`` (default: a SQLite file made by ``upgrade``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plan.toml").write_text(PLAN, encoding="utf-8")
    (folder / "units.toml").write_text(units, encoding="utf-8")
    bundle = load_bundle(folder / "plan.toml", folder / "units.toml", {})
    own = engine is None
    if own:
        engine = make_engine(f"sqlite:///{folder / 'duban.db'}")
        upgrade(engine)
    mail = MailSettings(
        sender="督办系统 <duban@example.gov.cn>",
        admin="duban-admin@example.gov.cn",
        domain="duban.example.gov.cn",
        retry_base=60,
        retry_max=3600,
    )
    with transaction(engine) as session:
        start_program(session, bundle, 2026, local(2026, 5, 20))
    renderer = Renderer(sender=mail.sender, domain=mail.domain, timezone="Asia/Shanghai")
    policy = SendPolicy(mail.window, {bundle.definition.workflow.id: bundle.calendar}, bundle.calendar)
    clock = FakeClock(local(2026, 5, 20))
    platform = FakeRobots(
        wecom={WECOM_KEY: "police-wecom"},
        dingtalk={POLICE_TOKEN: ("police-dingtalk", POLICE_SECRET), TAX_TOKEN: ("tax-dingtalk", TAX_SECRET)},
        window_now=lambda: clock.now().timestamp(),
    )
    with RobotServer(platform) as server:
        yield Env(engine, bundle, clock, mail, renderer, policy, platform, server)
    if own:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request, tmp_path) -> Iterator[Env]:
    if request.param == "sqlite":
        yield from make_env(tmp_path / "plan")
    else:
        with postgres_engine() as engine:
            yield from make_env(tmp_path / "plan", engine=engine)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def db_text(env: Env) -> str:
    """Every stored outbox row and event, as text (to look for secrets)."""
    with env.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM outbox_message")).all()
        rows += connection.execute(text("SELECT * FROM event")).all()
    return "\n".join(repr(tuple(r)) for r in rows)


# -- a digest reaches the email and the unit's work groups ----------------------------------------


async def test_a_digest_goes_out_as_one_email_and_one_group_message_per_robot_each_its_own_delivery(
    env, smtp
):
    assert env.queue() == 4  # four emails: office and three agencies
    emails, rows = env.outbox(channel="email"), [m for m in env.outbox() if m.channel != "email"]
    assert sorted((m.recipient, m.channel) for m in rows) == [
        ("agency-1", "robot:police-dingtalk"),
        ("agency-1", "robot:police-wecom"),
        ("agency-2", "robot:tax-dingtalk"),
    ]
    police_email = next(m for m in emails if m.recipient == "agency-1")
    assert {m.parent_id for m in rows if m.recipient == "agency-1"} == {police_email.id}
    assert len({m.message_id for m in env.outbox()}) == 7  # one idempotency key per row
    assert len(env.events("robot.queued")) == 3 and len(env.events("mail.queued")) == 4

    mail_report = await deliver(
        env.engine, env.clock, SmtpTransport(host=smtp.host, port=smtp.port, security="none"),
        env.renderer, env.bundles, env.mail,
    )  # fmt: skip
    assert mail_report.sent == 4 and len(smtp.received) == 4  # robot rows are not emails
    report = await env.robots()
    assert (report.sent, report.failed, report.retried) == (3, 0, 0)
    assert env.platform.problems == []  # payloads, keys, tokens and signatures as the platforms want
    assert Counter(r.robot for r in env.platform.received) == {
        "police-wecom": 1,
        "police-dingtalk": 1,
        "tax-dingtalk": 1,
    }
    wecom = env.platform.by_robot("police-wecom")[0]
    assert wecom.payload["msgtype"] == "markdown" and set(wecom.payload["markdown"]) == {"content"}
    text_ = wecom.text
    assert "县公安局" in text_ and "2项新任务" in text_ and "「组织实施阶段」开始" in text_
    assert "报送本单位工作方案" in text_ and "截止2026年6月10日" in text_ and "还有9天" in text_
    assert "县推进依法行政工作领导小组办公室 office@example.gov.cn" in text_  # no portal: whom to ask
    ding = env.platform.by_robot("police-dingtalk")[0]
    assert ding.payload["markdown"]["title"].startswith("【督办提醒】县公安局：")
    assert ding.text == text_  # the same digest, the same words
    assert {m.state for m in env.outbox()} == {"sent"}
    assert len(env.events("robot.sent")) == 3 and len(env.events("mail.sent")) == 4
    assert {e.after["channel"] for e in env.events("robot.sent")} == {
        "robot:police-wecom",
        "robot:police-dingtalk",
        "robot:tax-dingtalk",
    }

    again = await env.robots()
    assert again.sent == 0 and len(env.platform.received) == 3  # none twice


async def test_the_group_message_carries_the_units_portal_link_when_there_is_one(env):
    env.queue()
    links = {
        "agency-1": "https://duban.example.gov.cn/u/abc123",
        "agency-2": "https://duban.example.gov.cn/u/def456",
    }
    await env.robots(links=links.get)
    wecom = env.platform.by_robot("police-wecom")[0].text
    assert "[进入本单位督办页面办理](https://duban.example.gov.cn/u/abc123)" in wecom
    assert "office@example.gov.cn" not in wecom
    assert "def456" in env.platform.by_robot("tax-dingtalk")[0].text


async def test_robots_wait_for_the_send_window_like_email(env):
    assert env.queue(at=local(2026, 6, 1, 8, 0)) == 0  # before 09:00: nothing queued
    assert (await env.robots()).sent == 0 and env.platform.received == []


# -- what the platforms answer -------------------------------------------------------------------


async def test_dingtalk_130101_is_retried_after_the_ten_minute_throttle_and_the_email_is_unaffected(env):
    env.queue()
    env.platform.script["police-dingtalk"] = [DINGTALK_TOO_FAST]
    report = await env.robots()
    assert (report.sent, report.retried, report.failed) == (2, 1, 0)
    (row,) = env.outbox(channel="robot:police-dingtalk")
    assert row.state == "pending" and row.attempts == 1 and "130101" in row.last_error
    assert row.next_attempt_at >= NINE + timedelta(minutes=10)
    (retry,) = env.events("robot.retry")
    assert retry.after["channel"] == "robot:police-dingtalk" and "send too fast" in retry.detail
    assert {m.state for m in env.outbox(channel="email")} == {"pending"}  # its own delivery

    env.clock.advance(timedelta(minutes=5))
    assert (await env.robots()).sent == 0  # not before the throttle ends
    env.clock.set(row.next_attempt_at)
    assert (await env.robots()).sent == 1
    assert len(env.platform.by_robot("police-dingtalk")) == 1


async def test_wecom_45009_is_temporary_and_retried(env):
    env.queue()
    env.platform.script["police-wecom"] = [WECOM_TOO_FAST]
    await env.robots()
    (row,) = env.outbox(channel="robot:police-wecom")
    assert row.state == "pending" and "45009" in row.last_error
    env.clock.set(row.next_attempt_at)
    assert (await env.robots()).sent == 1


@pytest.mark.parametrize(
    ("robot", "wrong", "code"),
    [
        ("police-wecom", Robot("police-wecom", "wecom", key="0000-wrong-key"), "93000"),
        ("police-dingtalk", Robot("police-dingtalk", "dingtalk", access_token="wrong-token", secret=POLICE_SECRET), "300001"),
        ("police-dingtalk", Robot("police-dingtalk", "dingtalk", access_token=POLICE_TOKEN, secret="SECwrong"), "310000"),
    ],
)  # fmt: skip
async def test_a_bad_key_token_or_secret_is_permanent_and_reaches_the_admins_report(env, robot, wrong, code):
    env.queue()
    report = await env.robots(robots(**{robot: wrong}))
    assert report.failed == 1 and report.sent == 2
    (row,) = env.outbox(channel=f"robot:{robot}")
    assert row.state == "failed" and row.attempts == 1 and f"errcode {code}" in row.last_error
    assert len(env.events("robot.failed")) == 1

    listed = queue_failure_report(env.engine, env.clock.now(), env.mail, timezone="Asia/Shanghai")
    assert listed == [row.id]
    (admin,) = env.outbox(kind="failure_report")
    message = message_from_bytes(admin.body, policy=default)
    assert message["Subject"] == "【督办系统】1条群机器人消息投递失败或被拒收"
    body = message.get_content()
    assert f"#{row.id} 群机器人 {robot}，致 agency-1" in body and f"errcode {code}" in body
    assert "机器人文件中的key、access_token、secret" in body
    for secret in (*SECRETS, wrong.key, wrong.access_token, wrong.secret):
        if secret:
            assert secret not in body and secret not in db_text(env)


async def test_a_message_too_long_for_the_platform_is_permanent(env):
    env.queue()
    env.platform.script["police-wecom"] = [WECOM_TOO_LONG]
    await env.robots()
    (row,) = env.outbox(channel="robot:police-wecom")
    assert row.state == "failed" and "40058" in row.last_error and "超过长度限制" in row.last_error


async def test_http_5xx_and_a_platform_that_cannot_be_reached_are_retried_never_failed_at_once(env):
    env.queue()
    env.platform.script["police-wecom"] = [502]
    await env.robots()
    (row,) = env.outbox(channel="robot:police-wecom")
    assert row.state == "pending" and "HTTP 502" in row.last_error

    env.clock.set(row.next_attempt_at)
    with refused_port() as wecom, refused_port() as dingtalk, structlog.testing.capture_logs() as logs:
        down = RobotTransport(robots(), wecom_url=f"http://127.0.0.1:{wecom}/cgi-bin/webhook/send",
                              dingtalk_url=f"http://127.0.0.1:{dingtalk}/robot/send")  # fmt: skip
        report = await deliver_robots(
            env.engine, env.clock, down, env.bundles, env.mail, rng=random.Random(1)
        )
    assert report.failed == 0 and report.retried >= 1
    assert {m.state for m in env.outbox() if m.channel != "email"} <= {"pending", "sent"}
    shown = repr(logs) + db_text(env)
    assert all(secret not in shown for secret in SECRETS)


# -- pacing ------------------------------------------------------------------------------------


def shared_robot_units(count: int) -> str:
    """``count`` agencies whose digests all go to one county-wide DingTalk group."""
    head = UNITS.split('[[units]]\nid = "agency-1"')[0]
    agencies = "".join(
        f'[[units]]\nid = "agency-{i}"\nname = "第{i}执法局"\nemails = ["a{i}@example.gov.cn"]\n'
        f'roles = ["agency"]\nrobots = ["tax-dingtalk"]\n\n'
        for i in range(1, count + 1)
    )
    return head + agencies


async def test_twenty_messages_a_minute_per_robot_the_rest_paced_never_dropped_never_throttled(tmp_path):
    for env in make_env(tmp_path / "many", shared_robot_units(45)):
        assert env.queue() == 46
        first = await env.robots()
        assert (first.sent, first.paced, first.failed) == (20, 25, 0)
        paced = [m for m in env.outbox(channel="robot:tax-dingtalk") if m.state == "pending"]
        assert len(paced) == 25 and {m.attempts for m in paced} == {0}  # no attempt spent
        assert {m.next_attempt_at for m in paced} == {NINE + timedelta(minutes=1)}
        assert len(env.events("robot.paced")) == 25

        assert (await env.robots()).sent == 0  # the same minute: nothing more
        env.clock.advance(timedelta(seconds=59))
        assert (await env.robots()).sent == 0
        env.clock.advance(timedelta(seconds=1))
        assert (await env.robots()).sent == 20
        env.clock.advance(timedelta(minutes=1))
        assert (await env.robots()).sent == 5

        assert all(body != DINGTALK_TOO_FAST for _, body in env.platform.answers)  # never throttled
        received = env.platform.by_robot("tax-dingtalk")
        units = Counter(r.text.split("\n")[0] for r in received)
        assert len(received) == 45 and len(units) == 45 and set(units.values()) == {1}
        assert {m.state for m in env.outbox()} == {"sent", "pending"}  # the emails were not delivered here


# -- secrets -----------------------------------------------------------------------------------


async def test_no_secret_in_logs_database_or_repr(env):
    env.queue()
    capture = LogCapture()
    structlog.configure(processors=[capture])
    try:
        await env.robots(robots(**{"police-wecom": Robot("police-wecom", "wecom", key="bad-key-但是秘密")}))
    finally:
        structlog.reset_defaults()
    shown = repr(capture.entries) + db_text(env) + repr(env.transport()) + repr(robots())
    for secret in (*SECRETS, "bad-key-但是秘密"):
        assert secret not in shown
