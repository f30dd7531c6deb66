"""Issue 26, points 11–13: a robot that never finishes answering, a slow robot, a failing robot.

The fake robot platform (``tests/robot_server.py``) answers as the real ones do, and here also
without end (``ENDLESS``) or a byte now and then (``trickle``). Each request has a size cap and one
deadline; the daemon (a real subprocess, a real aiosmtpd server) delivers the robots apart from the
email and each robot apart from the others; failures are counted per robot.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from datetime import timedelta

import pytest
from engine_support import local
from robot_server import ENDLESS, FakeRobots, RobotServer, trickle
from smtp_server import SmtpServer
from sqlalchemy import text
from sqlmodel import Session
from test_daemon import smtp_mail, wait_until
from test_robots_cli import SECRET, TOKEN, WECOM_KEY, deployment
from test_robots_delivery import NINE, make_env

from notifications.errors import TemporaryFailure
from notifications.im import MAX_ANSWER_BYTES, Robot, RobotMessage, RobotTransport
from notifications.transport import SmtpTransport
from orchestrator.admin.status import status_report
from orchestrator.cli.status import _stuck_line
from orchestrator.engine.outbox import deliver, deliver_robots
from orchestrator.engine.outbox.claims import claim
from orchestrator.service.config import MailSettings

MESSAGE = RobotMessage(
    robot="police-wecom", title="【督办提醒】", text="### 【督办提醒】县公安局", message_id="<a.robot@x>"
)


@pytest.fixture
def platform():
    fake = FakeRobots(wecom={"k1": "police-wecom"})
    with RobotServer(fake) as server:
        yield server


def transport(server: RobotServer, timeout: float) -> RobotTransport:
    wecom = {"police-wecom": Robot("police-wecom", "wecom", key="k1")}
    return RobotTransport(
        wecom, wecom_url=server.wecom_url, dingtalk_url=server.dingtalk_url, timeout=timeout
    )


async def posted(robot: RobotTransport) -> tuple[Exception | None, float]:
    """Post ``MESSAGE``: (the error, seconds taken). Twenty seconds at most: the old transport read an
    endless answer for ever (11.5 GB in 30 s) and never timed out on a trickle."""
    began = time.monotonic()
    try:
        await asyncio.wait_for(robot.send(MESSAGE), 20)
    except TemporaryFailure as exc:
        return exc, time.monotonic() - began
    finally:
        await robot.close()
    return None, time.monotonic() - began


# -- point 11: an answer without end -------------------------------------------------------------


async def test_an_endless_answer_is_cut_off_at_the_size_cap_and_retried(platform):
    platform.robots.script["police-wecom"] = [ENDLESS]
    error, seconds = await posted(transport(platform, timeout=10))
    assert str(error) == "wecom robot police-wecom: an answer of more than 64 KB: not the platform's, cut off"
    assert seconds < 5  # the cap, not the deadline, ended it
    assert MAX_ANSWER_BYTES < platform.robots.streamed < 100 * MAX_ANSWER_BYTES


async def test_a_trickling_answer_ends_at_the_requests_deadline(platform):
    """A byte every 0.3 s: httpx's timeout (per read) never fires; the request's deadline does."""
    platform.robots.script["police-wecom"] = [trickle(0.3)]
    error, seconds = await posted(transport(platform, timeout=1.5))
    assert str(error) == "wecom robot police-wecom: no complete answer within 1.5 s"
    assert 1.4 < seconds < 4


# -- point 13: one robot's failures charge only its own messages ------------------------------------


def robot_units(wecom: int, dingtalk: int) -> str:
    """``wecom`` agencies in one WeCom group, then ``dingtalk`` agencies in one DingTalk group."""
    head = '[[units]]\nid = "office"\nname = "县推进依法行政工作领导小组办公室"\nemails = ["office@example.gov.cn"]\nroles = ["office"]\n\n'
    agencies = [
        f'[[units]]\nid = "agency-{i}"\nname = "第{i}执法局"\nemails = ["a{i}@example.gov.cn"]\n'
        f'roles = ["agency"]\nrobots = ["{"police-wecom" if i <= wecom else "tax-dingtalk"}"]\n\n'
        for i in range(1, wecom + dingtalk + 1)
    ]
    return head + "".join(agencies)


async def test_three_failures_of_one_robot_never_fail_another_robots_messages(tmp_path):
    """Before: three 502s of the WeCom robot marked every DingTalk message "not tried: wecom robot…"
    and, with ``max_attempts = 1``, failed them all without a single post."""
    for env in make_env(tmp_path / "plan", robot_units(wecom=4, dingtalk=6)):
        env.queue()
        env.platform.script["police-wecom"] = [502, 502, 502, 502]
        mail = MailSettings(domain=env.mail.domain, max_attempts=1, retry_base=60)
        report = await deliver_robots(
            env.engine, env.clock, env.transport(), env.bundles, mail, rng=random.Random(1)
        )
        rows = {m.recipient: m for m in env.outbox() if m.channel != "email"}
        dingtalk = [rows[f"agency-{i}"] for i in range(5, 11)]
        assert {m.state for m in dingtalk} == {"sent"} and len(env.platform.by_robot("tax-dingtalk")) == 6
        wecom = [rows[f"agency-{i}"] for i in range(1, 5)]
        assert [m.state for m in wecom] == ["failed", "failed", "failed", "pending"]  # tried: 3
        held = wecom[3]
        assert held.attempts == 0 and "已连续 3 次发送失败" in env.events("robot.held")[0].detail
        assert (report.sent, report.failed, report.held) == (6, 3, 1)
        assert not any("not tried" in (m.last_error or "") for m in dingtalk)


# -- point 12: a slow robot holds neither the email nor another robot ----------------------------------


def test_a_trickling_robot_delays_neither_email_retries_nor_another_robot(short_tmp):
    """The daemon, a real SMTP server that answers the first four DATA with 451 (so every email is
    retried a second later) and a WeCom robot that trickles for ever. Before: the robots were posted
    inside the outbox job, which never ran twice at once — no email retry went out while the robot
    trickled, nor the DingTalk group's messages, and SIGTERM waited on the robot."""
    fake = FakeRobots(wecom={WECOM_KEY: "town0-wecom"}, dingtalk={TOKEN: ("county-dingtalk", SECRET)})
    fake.script["town0-wecom"] = [trickle(0.5)]
    smtp = SmtpServer(data_replies=["451 4.3.0 try later"] * 4).start()
    try:
        with RobotServer(fake) as server:
            env = deployment(short_tmp / "deploy", server)
            urls = f'wecom_url = "{server.wecom_url}"\ndingtalk_url = "{server.dingtalk_url}"\n'
            mail = smtp_mail(smtp.port) + f'\n[im]\nrobots_file = "robots.toml"\ntimeout = 3\n{urls}'
            env.mail = mail
            env.write_config()
            env.upgrade()
            daemon = env.start()
            try:
                wait_until(lambda: len(smtp.received) == 4, timeout=20, what="the four emails, retried")
                wait_until(
                    lambda: len(fake.by_robot("county-dingtalk")) == 2, timeout=20, what="the DingTalk group"
                )
                assert fake.by_robot("town0-wecom") == []  # it still trickles (each request cut at 3 s)
                daemon.signal(signal.SIGTERM)
                began = time.monotonic()
                assert daemon.wait(15) == 0, daemon.output()
                assert time.monotonic() - began < 8  # the request in flight ends at its deadline
            finally:
                env.cleanup()  # (a daemon still running is killed)
    finally:
        smtp.stop()
    assert Counter(r.message["To"] for r in smtp.received).most_common(1)[0][1] == 1  # each once
    wecom = env.rows(
        "SELECT state, attempts, last_error FROM outbox_message WHERE channel = 'robot:town0-wecom'"
    )
    assert wecom and all(
        state == "pending" and "no complete answer within 3 s" in error for state, _, error in wecom
    )


def stuck_channels(env, at) -> dict[str, dict]:
    """``duban status``'s stuck channels at ``at``, by channel."""
    with Session(env.engine) as session:
        report = status_report(
            session,
            at,
            tick_interval=60,
            calendar_of=lambda _: env.bundle.calendar,
            send_window=env.mail.window,
        )
    return {row["channel"]: row for row in report["stuck"]}


@pytest.fixture
def smtp_server():
    with SmtpServer() as server:
        yield server


def await_(work):
    return asyncio.run(work)


def test_status_names_a_channel_that_is_stuck(tmp_path, smtp_server):
    """A robot whose message has been on the wire for six minutes, and emails due as long with none
    sent: both stuck. Emails being sent, or waiting for the next send window, are not."""
    for env in make_env(tmp_path / "plan"):
        env.queue()  # 09:00: four emails and three robot messages due
        assert stuck_channels(env, NINE + timedelta(minutes=4)) == {}  # due four minutes: not yet
        (claimed,), _ = claim(env.engine, NINE, "slow-node", 1, ("digest",), 8, channel="robot:police-wecom")
        later = NINE + timedelta(minutes=6)  # and it never answered
        rows = stuck_channels(env, later)
        assert set(rows) == {"email", "robot:police-wecom", "robot:police-dingtalk", "robot:tax-dingtalk"}
        assert rows["robot:police-wecom"] == {
            "channel": "robot:police-wecom",
            "due": 0,
            "due_since": None,
            "sending": 1,
            "sending_since": "2026-06-01T09:00:00+08:00",
            "last_sent_at": None,
        }
        assert (rows["email"]["due"], rows["email"]["due_since"]) == (4, "2026-06-01T09:00:00+08:00")
        assert _stuck_line(rows["robot:police-wecom"]) == (
            "群机器人 police-wecom：1 条消息自 2026-06-01 09:00:00 起发送中，仍无结果（最近一次发出：从未；见 duban log）"
        )

        env.clock.set(later)
        transport = SmtpTransport(host=smtp_server.host, port=smtp_server.port, security="none")
        await_(deliver(env.engine, env.clock, transport, env.renderer, env.bundles, env.mail))
        rows = stuck_channels(env, later + timedelta(seconds=1))
        assert "email" not in rows and "robot:police-wecom" in rows  # the emails went: not stuck

        with env.engine.begin() as connection:  # given back, due since 09:00 ...
            connection.execute(
                text("UPDATE outbox_message SET state = 'pending' WHERE id = :id"), {"id": claimed}
            )
        assert stuck_channels(env, local(2026, 6, 1, 19, 0)) == {}  # ... but at 19:00 the window is closed
