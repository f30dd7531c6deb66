"""Done when: a unit's inbox after a simulated year holds one readable digest per working day on
which something concerned it — never two, never a lost one.

The pilot (``rule-of-law-pilot`` with the shipped ``config.toml``: the example units and the
normative-documents register) runs for a year on a fake clock, on a real SQLite file, through the
real dispatcher (``tick`` → ``enqueue`` → ``deliver``) into a ``MaildirTransport``; the clock steps
from event to event as ``duban simulate`` steps it. The inbox is then read back from the ``.eml``
files alone and compared with what ``duban simulate --json`` (the real CLI) predicts.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from sqlalchemy import func
from sqlmodel import Session, select

from notifications.model import digest_message_id
from notifications.transport import MaildirTransport
from orchestrator.engine.clock import FakeClock
from orchestrator.engine.outbox import deliver, enqueue
from orchestrator.engine.programs import start_program
from orchestrator.engine.simulate import next_event
from orchestrator.engine.tick import tick
from orchestrator.service.config import load_settings
from orchestrator.service.runtime import load_bundle_for, make_renderer, send_policy
from orchestrator.store.db import make_engine, transaction, upgrade
from orchestrator.store.models import Event, NotificationItem, OutboxMessage

REPO = Path(__file__).resolve().parent.parent
DUBAN = str(Path(sys.executable).with_name("duban"))
CONFIG = REPO / "config.toml"
WORKFLOW, YEAR = "rule-of-law-pilot", 2026
TZ = ZoneInfo("Asia/Shanghai")
UNITS = (  # a few units of every kind: lead + office, county office, an agency, a township, a register owner
    "county-legal-office",
    "county-government-office",
    "county-public-security-bureau",
    "chengguan-town",
    "county-human-resources-bureau",
)


@dataclass(frozen=True)
class Mail:
    """One ``.eml`` file of the maildir: its headers parsed (``full()`` parses the whole message)."""

    path: Path
    message: EmailMessage  # headers only

    def full(self) -> EmailMessage:
        return message_from_bytes(self.path.read_bytes(), policy=default)  # type: ignore[return-value]

    @property
    def message_id(self) -> str:
        return self.message["Message-ID"]

    @property
    def day(self) -> date:
        return self.message["Date"].datetime.astimezone(TZ).date()

    @property
    def addresses(self) -> frozenset[str]:
        return frozenset(a.addr_spec for a in self.message["To"].addresses)


@dataclass
class Year:
    inbox: list[Mail]
    predicted: list[dict]
    items: dict[str, list[str]]  # Message-ID -> the keys of the items it carries (from the database)
    unit_of: dict[frozenset[str], str]  # a unit's addresses -> its id
    calendar: object
    outbox_states: Counter
    sends: Counter  # Message-ID -> how many times the audit log says it was sent
    facts: dict[str, int]  # item key -> the facts it carries (an escalation: one per late unit)


async def _run_year(engine, bundle, settings, maildir: Path) -> None:
    """Start the program on 01-01 and run the daemon's steps at every event until 01-31 next year."""
    begin = datetime.combine(date(YEAR, 1, 1), time(0), TZ).astimezone(UTC)
    end = datetime.combine(date(YEAR + 1, 2, 1), time(0), TZ).astimezone(UTC)
    clock = FakeClock(begin)
    with transaction(engine) as session:
        start_program(session, bundle, YEAR, begin, horizon_days=800)  # as `duban simulate` does
    bundles = {WORKFLOW: bundle}
    policy = send_policy(settings, bundles)
    renderer = make_renderer(settings, bundle.definition.workflow.timezone)
    transport = MaildirTransport(maildir)
    while True:
        now = clock.now()
        tick(engine, now, policy)
        enqueue(engine, now, bundles, renderer)
        await deliver(engine, clock, transport, renderer, bundles, settings.mail, limit=10_000)
        following = next_event(engine, now + timedelta(seconds=1))
        if following is None or following >= end:
            return
        clock.set(following)


def _start_simulate() -> subprocess.Popen:
    """``duban simulate … --json`` (the real CLI), started now to run while the year runs here."""
    return subprocess.Popen(
        # (--from: the whole year, whatever program a `make run` here may have started late)
        [
            DUBAN,
            "--config",
            str(CONFIG),
            "simulate",
            WORKFLOW,
            "--year",
            str(YEAR),
            "--from",
            f"{YEAR}-01-01",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def _predicted(simulate: subprocess.Popen) -> list[dict]:
    out, err = simulate.communicate(timeout=300)
    assert simulate.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture(scope="module")
def year(tmp_path_factory) -> Year:
    folder = tmp_path_factory.mktemp("year")
    settings = load_settings(CONFIG, required=True)
    bundle = load_bundle_for(settings, WORKFLOW, on_assumed=lambda *_: None)
    engine = make_engine(f"sqlite:///{folder / 'duban.db'}")
    upgrade(engine)
    simulate = _start_simulate()
    try:
        asyncio.run(_run_year(engine, bundle, settings, folder / "mail"))
    except BaseException:
        simulate.kill()
        raise
    headers = BytesHeaderParser(policy=default)
    inbox = [
        Mail(path, headers.parsebytes(path.read_bytes()))  # type: ignore[arg-type]
        for path in sorted((folder / "mail" / "new").glob("*.eml"))
    ]
    with Session(engine) as session:
        ids = dict(session.exec(select(OutboxMessage.id, OutboxMessage.message_id)).all())
        items: dict[str, list[str]] = defaultdict(list)
        facts: dict[str, int] = {}
        for key, outbox_id, late in session.exec(
            select(NotificationItem.key, NotificationItem.message_id, NotificationItem.late).where(
                NotificationItem.message_id.is_not(None)
            )
        ):
            items[ids[outbox_id]].append(key)
            facts[key] = len(late) if late else 1
        states = Counter(session.exec(select(OutboxMessage.state)).all())
        sends = Counter(session.exec(select(Event.subject).where(Event.kind == "mail.sent")).all())
        unqueued = session.exec(select(func.count()).where(NotificationItem.state == "pending")).one()
    engine.dispose()
    assert unqueued == 0
    directory = bundle.units.directory
    unit_of = {frozenset(u.emails): u.id for u in directory.by_id.values()}
    return Year(inbox, _predicted(simulate), dict(items), unit_of, bundle.calendar, states, sends, facts)


def by_unit(year: Year) -> dict[str, list[Mail]]:
    inbox: dict[str, list[Mail]] = defaultdict(list)
    for mail in year.inbox:
        inbox[year.unit_of[mail.addresses]].append(mail)
    return inbox


def test_every_message_was_delivered_and_is_in_the_inbox_once(year):
    assert year.outbox_states == Counter({"sent": len(year.inbox)})
    assert year.sends == Counter({m.message_id: 1 for m in year.inbox})  # each handed over exactly once
    assert len({m.message_id for m in year.inbox}) == len(year.inbox)
    assert len(year.inbox) == len(year.predicted) > 1000


def test_the_inbox_is_exactly_what_simulate_predicts(year):
    delivered = {
        (m.message_id, m.day, year.unit_of[m.addresses], str(m.message["Subject"])) for m in year.inbox
    }
    predicted = {
        (e["message_id"], datetime.fromisoformat(e["send_at"]).date(), e["to_unit"], e["subject"])
        for e in year.predicted
    }
    assert delivered == predicted


@pytest.mark.parametrize("unit", UNITS)
def test_a_units_inbox_holds_one_readable_digest_per_working_day_never_two_never_a_lost_one(year, unit):
    inbox = by_unit(year)[unit]
    predicted = [e for e in year.predicted if e["to_unit"] == unit]
    assert inbox and len(inbox) == len(predicted)

    days = Counter(m.day for m in inbox)
    assert max(days.values()) == 1  # never two on one day
    assert all(year.calendar.is_workday(day) for day in days)  # only on working days
    assert {(m.message_id, m.day) for m in inbox} == {
        (e["message_id"], datetime.fromisoformat(e["send_at"]).date()) for e in predicted
    }  # never a lost one, none extra

    seen: Counter = Counter()
    for mail in inbox:
        keys = year.items[mail.message_id]
        assert digest_message_id(keys, "duban.example.gov.cn") == mail.message_id  # it carries these items
        seen.update(keys)
        assert_readable(mail)
    assert set(seen.values()) == {1}  # every item of the unit in exactly one message
    assert sum(len(e["items"]) for e in predicted) == sum(year.facts[key] for key in seen)


def assert_readable(mail: Mail) -> None:
    """The whole message parses without defects, with its text, HTML and calendar parts."""
    message = mail.full()
    assert not message.defects and message.get_content_type() == "multipart/mixed"
    assert str(message["Subject"]).startswith("【督办")
    assert message["Date"].datetime.astimezone(TZ).strftime("%H:%M") == "09:00"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "本邮件由督办系统根据工作方案自动发送" in text and '<html lang="zh-CN">' in html
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            assert Calendar.from_ical(part.get_content()).walk("VTODO") or Calendar.from_ical(
                part.get_content()
            ).walk("VEVENT")
