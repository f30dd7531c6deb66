"""Helpers for engine tests: a small plan, its bundle, and reads of what the engine stored.

The stores (``sqlite_engine``, ``postgres_engine``) and the builder come from ``support``; they are
imported here too, under the names engine tests have always used.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import support
from sqlmodel import Session, select
from support import PG_URL, plan_toml, postgres_engine, sqlite_engine, task, unit, units_toml, workflow

from orchestrator.service.config import Settings
from orchestrator.service.runtime import send_policy
from orchestrator.store.models import NotificationItem, Obligation, Timer

TZ = ZoneInfo("Asia/Shanghai")

SMALL_PLAN = plan_toml(
    workflow(
        "small",
        "小型测试方案",
        reminders=["-7d", "-1wd"],
        escalation=[{"after": "1wd", "to": "lead"}, {"after": "5wd", "to": "role:office"}],
    ),
    phases=[{"id": "implement", "name": "组织实施阶段", "start": "06-01", "end": "06-30"}],
    tasks=[
        task(
            "T1",
            "报送工作方案",
            phase="implement",
            lead=["role:office"],
            responsible=["role:agency"],
            due="06-10",
        ),
        task("T2", "国庆后报送材料", lead=["lead-a"], responsible=["agency-1"], due="10-01", window="-14d"),
    ],
)
"""The engine tests' plan: T1 due 06-10 for every agency (phase 06-01…06-30); T2 due 10-01 (the
National Day holidays) for agency-1, led by lead-a."""

SMALL_UNITS = units_toml(
    unit("office", "领导小组办公室", "office"),
    unit("lead-a", "牵头单位甲", "lead"),
    unit("agency-1", "执法局一", "agency", emails=["a1@example.gov.cn"]),
    unit("agency-2", "执法局二", "agency", emails=["a2@example.gov.cn"]),
)


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
    """The small plan (or ``plan``) and its units written in ``folder`` and loaded."""
    return support.write_bundle(folder, plan, units)


def policy_for(bundle):
    return send_policy(Settings(), {bundle.definition.workflow.id: bundle})


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


__all__ = [
    "PG_URL",
    "SMALL_PLAN",
    "SMALL_UNITS",
    "TZ",
    "items",
    "local",
    "obligation",
    "pending_timers",
    "policy_for",
    "postgres_engine",
    "program_fields",
    "sqlite_engine",
    "stored_items",
    "write_bundle",
]
