"""Helpers for engine tests: a small plan, its bundle, and a store (SQLite file or PostgreSQL)."""

from __future__ import annotations

import contextlib
import textwrap
import uuid
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, event, text
from sqlmodel import Session, select

from orchestrator.service.config import Settings
from orchestrator.service.runtime import send_policy
from orchestrator.store.db import make_engine, upgrade
from orchestrator.store.models import NotificationItem, Obligation, Timer
from workflows.catalog import load_bundle

TZ = ZoneInfo("Asia/Shanghai")
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

SMALL_PLAN = """\
[workflow]
id = "small"
title = "小型测试方案"
timezone = "Asia/Shanghai"
calendar = "cn-workdays"
reminders = ["-7d", "-1wd"]
escalation = [{ after = "1wd", to = "lead" }, { after = "5wd", to = "role:office" }]

[[phases]]
id = "implement"
name = "组织实施阶段"
start = "06-01"
end = "06-30"

[[tasks]]
id = "T1"
title = "报送工作方案"
phase = "implement"
lead = ["role:office"]
responsible = ["role:agency"]
due = "06-10"

[[tasks]]
id = "T2"
title = "国庆后报送材料"
lead = ["lead-a"]
responsible = ["agency-1"]
due = "10-01"
window = "-14d"
"""

SMALL_UNITS = """\
[[units]]
id = "office"
name = "领导小组办公室"
emails = ["office@example.gov.cn"]
roles = ["office"]

[[units]]
id = "lead-a"
name = "牵头单位甲"
emails = ["lead-a@example.gov.cn"]
roles = ["lead"]

[[units]]
id = "agency-1"
name = "执法局一"
emails = ["a1@example.gov.cn"]
roles = ["agency"]

[[units]]
id = "agency-2"
name = "执法局二"
emails = ["a2@example.gov.cn"]
roles = ["agency"]
"""


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    """An aware UTC datetime for a local (Asia/Shanghai) wall time."""
    return datetime.combine(datetime(y, m, d).date(), time(hh, mm), TZ).astimezone(UTC)


def program_fields(at: datetime, **fields) -> dict:
    """A program row's columns (for tests that write one directly, without ``start_program``)."""
    defaults = dict(
        workflow="small",
        year=2026,
        title="小型测试方案",
        timezone="Asia/Shanghai",
        definition_path="small.toml",
        definition_digest="-",
        units_digest="-",
        state="running",
        started_at=at,
        reconciled_at=at,
        materialized_until=date(2026, 12, 31),
    )
    return defaults | fields


def write_bundle(folder: Path, plan: str = SMALL_PLAN, units: str = SMALL_UNITS):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plan.toml").write_text(textwrap.dedent(plan), encoding="utf-8")
    (folder / "units.toml").write_text(textwrap.dedent(units), encoding="utf-8")
    return load_bundle(folder / "plan.toml", folder / "units.toml", {})


def policy_for(bundle):
    return send_policy(Settings(), {bundle.definition.workflow.id: bundle})


def sqlite_engine(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'duban.db'}", create_dir=True)
    upgrade(engine)
    return engine


@contextlib.contextmanager
def postgres_engine(*, migrate: bool = True):
    """A fresh schema in the ``test`` database, migrated to head (or left empty); dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(PG_URL)

    @event.listens_for(engine, "connect")
    def _search_path(dbapi_connection, _record):
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET search_path TO {schema}")
        dbapi_connection.commit()

    try:
        if migrate:
            upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def stored_items(engine, **where) -> list[NotificationItem]:
    """The item rows (an escalation row lists its late units in ``late``)."""
    with Session(engine) as session:
        query = select(NotificationItem)
        for name, value in where.items():
            query = query.where(getattr(NotificationItem, name) == value)
        return list(session.exec(query.order_by(NotificationItem.send_at, NotificationItem.key)))


def items(engine, **where) -> list[NotificationItem]:
    """One per fact: an escalation row becomes one item per late unit (``unit``, ``obligation_id``)."""
    facts = []
    for item in stored_items(engine, **where):
        if item.late:
            facts += [item.model_copy(update={"unit": u, "obligation_id": o}) for o, u in item.late]
        else:
            facts.append(item)
    return facts


def obligation(engine, task: str, unit: str) -> Obligation:
    with Session(engine) as session:
        return session.exec(select(Obligation).where(Obligation.task == task, Obligation.unit == unit)).one()


def pending_timers(engine) -> int:
    with Session(engine) as session:
        return len(list(session.exec(select(Timer.id).where(Timer.fired_at.is_(None)))))
