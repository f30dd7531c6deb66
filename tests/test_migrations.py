"""Schema migrations: a database made by an earlier duban upgrades in place, keeping its rows, and
the migrated schema is exactly what the models describe — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from engine_support import (
    items,
    local,
    policy_for,
    postgres_engine,
    program_fields,
    stored_items,
    write_bundle,
)
from sqlalchemy import delete, insert, select
from sqlmodel import Session, SQLModel

from orchestrator.engine.programs import obligation_key, start_program
from orchestrator.engine.tick import tick
from orchestrator.store.db import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    transaction,
    upgrade,
)
from orchestrator.store.models import Event, NotificationItem, Obligation, Program, Timer
from workflows.plan import plan
from workflows.schedule import obligation_notices

NOW = datetime(2026, 6, 11, 1, 0, tzinfo=UTC)  # 06-11 09:00 in Shanghai: T1 (due 06-10) is late


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty(request, tmp_path):
    """An empty database (no schema) on each backend."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
    else:
        with postgres_engine(migrate=False) as engine:
            yield engine


def _at_first_release(engine) -> None:
    """The schema of the first release (revision 0001), with one program, obligation and timer of
    that time: an escalation step owned by the obligation, as 0001 materialized them."""
    command.upgrade(alembic_config(engine), "0001")
    with engine.begin() as connection:
        program_id = connection.execute(
            insert(Program.__table__)
            .values(**program_fields(NOW, materialized_until=date(2027, 12, 31)))
            .returning(Program.__table__.c.id)
        ).scalar_one()
        obligation_id = connection.execute(
            insert(Obligation.__table__)
            .values(
                key="small/2026/T1/agency-1/-",
                program_id=program_id,
                task="T1",
                title="任务一",
                phase="implement",
                unit="agency-1",
                lead=["office"],
                opens=date(2026, 6, 1),
                due=date(2026, 6, 10),
                state="overdue",
                updated_at=NOW,
            )
            .returning(Obligation.__table__.c.id)
        ).scalar_one()
        columns = {c.name for c in Timer.__table__.c} - {"id", "task", "occurrence", "due", "opens"}
        row = dict(
            key="small/2026/T1/agency-1/-/escalation/0/2026-06-11",
            fire_at=NOW,
            kind="escalation",
            program_id=program_id,
            obligation_id=obligation_id,
            phase="implement",
            step=0,
            on=date(2026, 6, 11),
            recipients=["office"],
            fired_at=None,
            outcome=None,
        )
        assert set(row) == columns
        connection.execute(insert(Timer.__table__).values(**row))


def test_a_first_release_database_upgrades_in_place_and_matches_the_models(empty):
    _at_first_release(empty)
    assert current_revision(empty) == "0001"
    assert upgrade(empty) == ("0001", head_revision())
    with empty.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []
    with Session(empty) as session:
        (timer,) = session.exec(select(Timer)).scalars()  # (0003: the step of its task occurrence)
        assert (timer.kind, timer.obligation_id, timer.task, timer.due) == (
            "escalation",
            None,
            "T1",
            date(2026, 6, 10),
        )
        assert (timer.recipients, timer.fire_at, timer.fired_at) == (["office"], NOW, None)


def test_an_escalation_timer_of_the_first_release_fires_as_its_task_occurrences_step(empty, tmp_path):
    """A timer materialized before the upgrade (one per obligation) became, in 0003, the escalation
    step of its task occurrence: one item per recipient listing the late units."""
    _at_first_release(empty)
    upgrade(empty)
    bundle = write_bundle(tmp_path)
    report = tick(empty, NOW, policy_for(bundle))
    assert report.fired == 1
    (item,) = stored_items(empty, kind="escalation")
    assert (item.recipient, item.unit, item.late) == ("office", None, [[1, "agency-1"]])
    assert item.key == "small/2026/T1/*/-/2026-06-01/2026-06-10/escalation/0/2026-06-11/office"


def _first_release_year(engine, bundle, fired_until: date) -> dict[str, list[dict]]:
    """A first-release database (revision 0001) in the middle of T1 (opens 06-01, due 06-10): its
    obligations, each with its own timers as 0001 materialized them; those due by ``fired_until``
    have fired and left their items. Returns the timer rows by unit."""
    command.upgrade(alembic_config(engine), "0001")
    occurrences = [
        o
        for o in plan(bundle.definition, bundle.units.directory, 2026, bundle.calendar, {})
        if o.task == "T1"
    ]
    task = bundle.definition.task("T1")
    timers: dict[str, list[dict]] = {}
    with engine.begin() as connection:
        program_id = connection.execute(
            insert(Program.__table__).values(**program_fields(NOW)).returning(Program.__table__.c.id)
        ).scalar_one()
        for occ in occurrences:
            key = obligation_key("small", 2026, occ)
            obligation_id = connection.execute(
                insert(Obligation.__table__)
                .values(
                    key=key,
                    program_id=program_id,
                    task=occ.task,
                    title=occ.title,
                    phase=occ.phase,
                    unit=occ.unit,
                    lead=list(occ.lead),
                    occurrence=occ.occurrence,
                    opens=occ.opens,
                    due=occ.due,
                    state="open",
                    updated_at=NOW,
                )
                .returning(Obligation.__table__.c.id)
            ).scalar_one()
            notices = obligation_notices(
                occ, task, bundle.definition.workflow, bundle.units.directory, bundle.calendar
            )
            for notice in notices:
                fired = notice.on <= fired_until
                row = dict(
                    key=f"{key}/{notice.kind}/{notice.step}/{notice.on}", fire_at=local(*_ymd(notice.on)),
                    kind=notice.kind, program_id=program_id, obligation_id=obligation_id, phase=occ.phase,
                    step=notice.step, on=notice.on, recipients=list(notice.to),
                    fired_at=local(*_ymd(notice.on), 9) if fired else None, outcome="fired" if fired else None,
                )  # fmt: skip
                connection.execute(insert(Timer.__table__).values(**row))
                timers.setdefault(occ.unit, []).append(row)
                for recipient in notice.to if fired else ():
                    connection.execute(
                        insert(NotificationItem.__table__).values(
                            key=f"{row['key']}/{recipient}",
                            kind=notice.kind,
                            recipient=recipient,
                            program_id=program_id,
                            obligation_id=obligation_id,
                            phase=occ.phase,
                            task="T1",
                            unit=occ.unit,
                            due=occ.due,
                            on=notice.on,
                            send_at=local(*_ymd(notice.on), 9),
                            state="queued",
                            created_at=NOW,
                        )
                    )
    return timers


def _ymd(day: date) -> tuple[int, int, int]:
    return day.year, day.month, day.day


def _days(engine, bundle, first: date, last: date) -> None:
    """The daemon from ``first`` to ``last``: a start (reconcile) the first morning, a tick every hour."""
    with transaction(engine) as session:
        start_program(session, bundle, 2026, local(*_ymd(first), 8))
    day = first
    while day <= last:
        for hour in range(0, 24, 3):
            tick(engine, local(*_ymd(day), hour), policy_for(bundle))
        day += timedelta(days=1)


def test_first_release_timers_fire_after_the_upgrade_with_the_same_notices(empty, tmp_path):
    """0001 → head with a year half done: the unfired timers of each obligation (0001's model) become
    the timers of its task occurrence; after the upgrade, a start and the ticks up to 06-20, every
    unit has exactly the notices the first release would have sent it — the fired ones once, with
    the same item keys (no second email) — and the escalation steps list the late units."""
    bundle = write_bundle(tmp_path)
    legacy = _first_release_year(empty, bundle, fired_until=date(2026, 6, 3))
    assert upgrade(empty) == ("0001", head_revision())
    with empty.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), SQLModel.metadata) == []
    with Session(empty) as session:
        unfired = list(session.exec(select(Timer).where(Timer.fired_at.is_(None))).scalars())
        assert unfired and all(t.obligation_id is None and t.task == "T1" for t in unfired)
        assert len(unfired) == len({(t.kind, t.step, t.on) for t in unfired})  # one per notice
        (event,) = session.exec(select(Event).where(Event.kind == "timers.converted")).scalars()
        assert event.after["timers"] == sum(1 for rows in legacy.values() for r in rows if not r["fired_at"])
    _days(empty, bundle, date(2026, 6, 4), date(2026, 6, 20))
    expected = {
        f"{row['key']}/{recipient}"
        for rows in legacy.values()
        for row in rows
        if row["kind"] != "escalation"
        for recipient in row["recipients"]
    }
    stored = stored_items(empty, task="T1")
    assert {i.key for i in stored if i.kind != "escalation"} == expected
    assert len([i for i in stored if i.kind != "escalation"]) == len(expected)
    first_release_escalations = {
        (recipient, unit, row["on"])
        for unit, rows in legacy.items()
        for row in rows
        if row["kind"] == "escalation"
        for recipient in row["recipients"]
    }
    escalated = items(empty, task="T1", kind="escalation")
    assert {(i.recipient, i.unit, i.on) for i in escalated} == first_release_escalations
    assert len(escalated) == len(first_release_escalations)


def test_timers_of_one_obligation_whose_task_occurrence_timer_exists(empty, tmp_path):
    """Before 0003 a database can hold both models: a task-occurrence timer that has fired beside one
    obligation's unfired timer of the same notice (the opening notice of a unit that joined late),
    and an unfired task-occurrence timer beside the same obligations' own timers. 0003 narrows the
    first to its obligation (it tells that unit only) and drops the second (covered already); an
    approved extension's own timer (not a first-release key) is narrowed too, keeping its key."""
    bundle = write_bundle(tmp_path)
    _first_release_year(empty, bundle, fired_until=date(2026, 6, 3))
    command.upgrade(alembic_config(empty), "0007")  # (the revision before 0003)
    base = "small/2026/T1/*/-/2026-06-01/2026-06-10"
    group = dict(
        program_id=1, phase="implement", step=0, recipients=[], outcome=None,
        task="T1", occurrence=None, opens=date(2026, 6, 1), due=date(2026, 6, 10),
    )  # fmt: skip
    with empty.begin() as connection:
        connection.execute(
            insert(Timer.__table__),
            [
                group | dict(key=f"{base}/task_opened/0/2026-06-01", kind="task_opened", on=date(2026, 6, 1),
                             fire_at=local(2026, 6, 1), fired_at=local(2026, 6, 1, 9), outcome="fired"),
                group | dict(key=f"{base}/due_today/0/2026-06-10", kind="due_today", on=date(2026, 6, 10),
                             fire_at=local(2026, 6, 10), fired_at=None),
            ],
        )  # fmt: skip
        late_joiner = connection.execute(
            select(Obligation.__table__.c.id, Obligation.__table__.c.key).where(
                Obligation.__table__.c.unit == "agency-2"
            )
        ).one()
        opening = f"{late_joiner.key}/task_opened/0/2026-06-01"  # agency-2 joined after it was sent:
        connection.execute(
            delete(NotificationItem.__table__).where(NotificationItem.key.like(f"{opening}/%"))
        )
        connection.execute(delete(Timer.__table__).where(Timer.key == opening))
        connection.execute(  # its opening notice, as the code before 0003 wrote it
            insert(Timer.__table__).values(
                key=opening,
                fire_at=local(2026, 6, 3, 20),
                kind="task_opened",
                program_id=1,
                obligation_id=late_joiner.id,
                phase="implement",
                step=0,
                on=date(2026, 6, 1),
                recipients=[],
                fired_at=None,
            )
        )
        extended = f"{late_joiner.key}/extended/2026-06-20/reminder/0/2026-06-13"
        connection.execute(
            insert(Timer.__table__).values(
                key=extended,
                fire_at=local(2026, 6, 13),
                kind="reminder",
                program_id=1,
                obligation_id=late_joiner.id,
                phase="implement",
                step=0,
                on=date(2026, 6, 13),
                recipients=[],
                fired_at=None,
            )
        )
    upgrade(empty)
    with Session(empty) as session:
        kept = session.exec(select(Timer).where(Timer.key == extended)).scalars().one()
        assert (kept.obligation_id, kept.task, kept.due) == (late_joiner.id, "T1", date(2026, 6, 10))
        narrowed = session.exec(select(Timer).where(Timer.key == opening)).scalars().one()
        assert (narrowed.obligation_id, narrowed.task, narrowed.opens) == (
            late_joiner.id,
            "T1",
            date(2026, 6, 1),
        )
        due_today = list(session.exec(select(Timer).where(Timer.kind == "due_today")).scalars())
        assert [t.key for t in due_today] == [f"{base}/due_today/0/2026-06-10"]
    before = {i.key for i in stored_items(empty)}
    tick(empty, local(2026, 6, 4, 1), policy_for(bundle))
    new = [i for i in stored_items(empty) if i.key not in before]
    assert [(i.kind, i.unit, i.key) for i in new] == [("task_opened", "agency-2", f"{opening}/agency-2")]
    tick(empty, local(2026, 6, 10, 1), policy_for(bundle))
    today = stored_items(empty, kind="due_today")
    assert sorted(i.unit for i in today) == ["agency-1", "agency-2"]  # once each
