"""Schema migrations: a database made by an earlier duban upgrades in place, keeping its rows, and
the migrated schema is exactly what the models describe — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from engine_support import policy_for, postgres_engine, program_fields, stored_items, write_bundle
from sqlalchemy import insert, select
from sqlmodel import Session, SQLModel

from orchestrator.engine.programs import start_program
from orchestrator.engine.tick import tick
from orchestrator.store.db import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    transaction,
    upgrade,
)
from orchestrator.store.models import Obligation, Program, Timer

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
        (timer,) = session.exec(select(Timer)).scalars()
        assert (timer.kind, timer.obligation_id, timer.task) == ("escalation", 1, None)


def test_an_escalation_timer_of_the_first_release_still_fires_for_its_obligation(empty, tmp_path):
    """A timer materialized before the upgrade (one per obligation) fires as it did then: one item per
    recipient about its unit. The next start replaces the unfired ones by per-task steps."""
    _at_first_release(empty)
    upgrade(empty)
    bundle = write_bundle(tmp_path)
    report = tick(empty, NOW, policy_for(bundle))
    assert report.fired == 1
    (item,) = stored_items(empty, kind="escalation")
    assert (item.recipient, item.unit, item.late) == ("office", "agency-1", None)


def test_a_start_after_the_upgrade_moves_unfired_timers_to_task_occurrences(empty, tmp_path):
    _at_first_release(empty)
    upgrade(empty)
    bundle = write_bundle(tmp_path)
    with transaction(empty) as session:
        start_program(session, bundle, 2026, datetime(2026, 6, 1, tzinfo=UTC))
    with Session(empty) as session:
        legacy = session.exec(
            select(Timer).where(Timer.obligation_id.is_not(None), Timer.kind == "escalation")
        )
        assert {t.outcome for t in legacy.scalars()} == {"cancelled"}
        steps = session.exec(select(Timer).where(Timer.obligation_id.is_(None), Timer.task == "T1"))
        assert {t.kind for t in steps.scalars()} >= {
            "task_opened",
            "reminder",
            "due_today",
            "overdue",
            "escalation",
        }


def test_the_models_schema_revision_is_the_migrations_head():
    from orchestrator.store.models import SCHEMA_REVISION

    assert head_revision() == SCHEMA_REVISION  # open_database compares with SCHEMA_REVISION, not Alembic
