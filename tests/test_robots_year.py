"""A year with group robots on some units: each unit-day one message per robot, none lost, none twice.

The small plan (reminders, due dates, escalations to the lead and the office, a duty in October)
runs from 01-01 to the next 01-31 on a fake clock, on a real SQLite file, through the real outbox:
tick → enqueue → deliver (emails into a maildir) → deliver_robots (the fake robot platform on
127.0.0.1, its per-minute limit counted on the same fake clock). The clock steps from event to
event as ``duban simulate`` steps it, paced retries included. Twenty-four of 36 agencies and a lead unit
share one county DingTalk group, so on busy days the per-robot limit paces them.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta

import pytest
from engine_support import SMALL_PLAN, TZ, write_bundle
from robot_server import DINGTALK_TOO_FAST, WECOM_TOO_FAST, FakeRobots, RobotServer
from sqlmodel import Session, select

from notifications import zh
from notifications.im import Robot, RobotTransport
from notifications.render import Renderer
from notifications.transport import MaildirTransport
from orchestrator.engine.clock import FakeClock
from orchestrator.engine.outbox import deliver, deliver_robots, enqueue
from orchestrator.engine.programs import start_program
from orchestrator.engine.simulate import next_event
from orchestrator.engine.tick import tick
from orchestrator.service.config import MailSettings, Settings
from orchestrator.service.runtime import send_policy
from orchestrator.store.db import make_engine, transaction, upgrade
from orchestrator.store.models import Event, OutboxMessage

YEAR = 2026
AGENCIES = 36
WECOM_KEY = "year-wecom-key"
COUNTY = ("county-token", "SECcounty-secret")
LEAD = ("lead-token", "SEClead-secret")


def units() -> str:
    parts = [
        '[[units]]\nid = "office"\nname = "领导小组办公室"\nemails = ["office@example.gov.cn"]\nroles = ["office"]\n'
        'robots = ["office-wecom"]\n',
        '[[units]]\nid = "lead-a"\nname = "牵头单位甲"\nemails = ["lead-a@example.gov.cn"]\nroles = ["lead"]\n'
        'robots = ["lead-dingtalk", "county-dingtalk"]\n',
    ]
    for n in range(1, AGENCIES + 1):
        robots = 'robots = ["county-dingtalk"]\n' if n % 3 else ""  # two in three of them
        parts.append(
            f'[[units]]\nid = "agency-{n}"\nname = "执法局{n:02d}"\nemails = ["a{n}@example.gov.cn"]\n'
            f'roles = ["agency"]\n{robots}'
        )
    return "\n".join(parts)


@pytest.fixture(scope="module")
def year(tmp_path_factory):
    folder = tmp_path_factory.mktemp("robot-year")
    bundle = write_bundle(folder / "plan", SMALL_PLAN, units())
    engine = make_engine(f"sqlite:///{folder / 'duban.db'}")
    upgrade(engine)
    begin = datetime.combine(date(YEAR, 1, 1), time(0), TZ).astimezone(UTC)
    end = datetime.combine(date(YEAR + 1, 2, 1), time(0), TZ).astimezone(UTC)
    clock = FakeClock(begin)
    platform = FakeRobots(
        wecom={WECOM_KEY: "office-wecom"},
        dingtalk={COUNTY[0]: ("county-dingtalk", COUNTY[1]), LEAD[0]: ("lead-dingtalk", LEAD[1])},
        window_now=lambda: clock.now().timestamp(),
    )
    robots = {
        "office-wecom": Robot("office-wecom", "wecom", key=WECOM_KEY),
        "county-dingtalk": Robot("county-dingtalk", "dingtalk", access_token=COUNTY[0], secret=COUNTY[1]),
        "lead-dingtalk": Robot("lead-dingtalk", "dingtalk", access_token=LEAD[0], secret=LEAD[1]),
    }
    mail = MailSettings(domain="duban.example.gov.cn")
    bundles = {bundle.definition.workflow.id: bundle}
    policy = send_policy(Settings(), bundles)
    renderer = Renderer(sender=mail.sender, domain=mail.domain, timezone="Asia/Shanghai")
    with transaction(engine) as session:
        start_program(session, bundle, YEAR, begin, horizon_days=800)

    async def run() -> int:
        steps = 0
        with RobotServer(platform) as server:
            transport = RobotTransport(robots, wecom_url=server.wecom_url, dingtalk_url=server.dingtalk_url)
            maildir = MaildirTransport(folder / "mail")
            while True:
                now = clock.now()
                tick(engine, now, policy)
                enqueue(engine, now, bundles, renderer)
                await deliver(engine, clock, maildir, renderer, bundles, mail, limit=10_000)
                await deliver_robots(engine, clock, transport, bundles, mail, rng=random.Random(steps))
                steps += 1
                following = next_event(engine, now + timedelta(seconds=1))
                if following is None or following >= end:
                    return steps
                clock.set(following)

    asyncio.run(run())
    with Session(engine) as session:
        rows = list(session.exec(select(OutboxMessage)))
        sends = Counter(session.exec(select(Event.subject).where(Event.kind == "robot.sent")).all())
        paced = len(session.exec(select(Event.id).where(Event.kind == "robot.paced")).all())
    engine.dispose()
    return {"rows": rows, "platform": platform, "sends": sends, "paced": paced, "bundle": bundle}


def test_every_robot_message_was_delivered_once_and_the_platform_found_nothing_wrong(year):
    robot_rows = [m for m in year["rows"] if m.channel != "email"]
    assert robot_rows and {m.state for m in year["rows"]} == {"sent"}
    assert len(year["platform"].received) == len(robot_rows)  # none lost, none twice
    assert set(year["sends"].values()) == {1} and set(year["sends"]) == {m.message_id for m in robot_rows}
    assert year["platform"].problems == []
    refusals = [body for _, body in year["platform"].answers if body in (DINGTALK_TOO_FAST, WECOM_TOO_FAST)]
    assert refusals == []  # paced, never throttled
    assert year["paced"] > 0  # the shared county group did hit its limit on busy days


def test_each_unit_day_with_an_email_has_one_message_in_each_of_its_robots_groups(year):
    directory = year["bundle"].units.directory
    name_to_unit = {u.name: u.id for u in directory.units}
    emailed = {
        (m.recipient, m.send_date) for m in year["rows"] if m.channel == "email" and m.kind == "digest"
    }
    for robot in ("office-wecom", "county-dingtalk", "lead-dingtalk"):
        expected = {(u, d) for u, d in emailed if robot in directory.by_id[u].robots}
        got: Counter = Counter()
        for received in year["platform"].by_robot(robot):
            head, when = received.text.splitlines()[:2]
            unit = name_to_unit[head.removeprefix("### 【督办提醒】")]
            day = next(d for u, d in expected if u == unit and when.startswith(zh.day_with_weekday(d)))
            got[(unit, day)] += 1
        assert set(got) == expected and set(got.values()) == {1}, robot
    per_day = defaultdict(int)
    for received in year["platform"].by_robot("county-dingtalk"):
        per_day[received.text.splitlines()[1][:12]] += 1
    assert max(per_day.values()) > 20  # more than a minute's worth on one day: paced, all delivered
