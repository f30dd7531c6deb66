"""(issue 26, point 17) A unit's page at 42 and at 20,000 units: what its reads cost as the program grows.

The pilot is started for N units on a scratch SQLite file (or, with ``--db``, a new schema of a
PostgreSQL database), exactly as ``duban start`` leaves it: no statistics (no ``ANALYZE``). Then one
unit's page is read (``admin.unit_page.unit_obligations``, every query the page makes) and, beside
it, the obligations query alone in the shape it had before issue 26 (``program_id IN (…)`` in it,
which SQLite without statistics answered through the (program, task, due) index by reading every
obligation of the program) and in today's shape (the unit alone: ``ix_obligation_unit``). Prints
the median of each over ``--runs`` reads, and the query plans.

Usage: python benchmarks/unit_page.py [--units 42,20000] [--runs 30] [--db URL]
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, date, datetime
from pathlib import Path

import structlog
from sqlalchemy import func
from sqlmodel import Session, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _province import write_register, write_units
from dispatch_bench import store

from orchestrator.admin.acting import Desk
from orchestrator.admin.unit_page import unit_obligations, unit_query
from orchestrator.engine.programs import start_program
from orchestrator.store.db import transaction, upgrade
from orchestrator.store.models import Obligation, Program
from orchestrator.store.states import ObligationState
from workflows.catalog import BUILTIN_DEFINITIONS, load_bundle

STARTED = datetime(2026, 5, 6, 1, 0, tzinfo=UTC)
TODAY = date(2026, 6, 15)
UNIT = "unit-00000"  # a law-enforcement agency: ~34 obligations, whatever the size of the program


def old_query(unit: str, programs):
    """The obligations query as it was before issue 26."""
    return select(Obligation).where(
        Obligation.unit == unit,
        Obligation.program_id.in_(programs),
        Obligation.state != ObligationState.CANCELLED,
    )


def median_ms(engine, read, runs: int) -> float:
    samples = []
    for _ in range(runs):
        with Session(engine) as session:
            started = time.perf_counter()
            read(session)
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def plan(engine, statement) -> str:
    if engine.dialect.name != "sqlite":
        return "(EXPLAIN QUERY PLAN is SQLite's)"
    compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
    return " | ".join(row[-1] for row in rows)


def measure(units: int, runs: int, db: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="duban-bench-") as folder:
        _measure(Path(folder), units, runs, db)


def _measure(tmp: Path, units: int, runs: int, db: str | None) -> None:
    bundle = load_bundle(
        BUILTIN_DEFINITIONS / "rule_of_law_pilot.toml",
        write_units(tmp / "units.toml", units),
        {"normative_documents": write_register(tmp / "docs.csv", units)},
    )
    desk = Desk({bundle.definition.workflow.id: bundle})
    with store(db, tmp) as engine:
        upgrade(engine)
        started = time.perf_counter()
        with transaction(engine) as session:
            start_program(session, bundle, 2026, STARTED)
        start_s = time.perf_counter() - started
        gc.collect()  # the start's garbage is not the page's: collected (and frozen) before measuring
        gc.freeze()
        with Session(engine) as session:
            total = session.exec(select(func.count()).select_from(Obligation)).one()
            programs = [p.id for p in session.exec(select(Program))]
            mine = len(unit_obligations(session, UNIT, TODAY, desk=desk))
        page = median_ms(engine, lambda s: unit_obligations(s, UNIT, TODAY, desk=desk), runs)
        old = median_ms(engine, lambda s: s.exec(old_query(UNIT, programs)).all(), runs)
        new = median_ms(engine, lambda s: s.exec(unit_query(UNIT)).all(), runs)
        print(f"{units:>6} units: {total:>7,} obligations (start {start_s:.1f} s); {UNIT} has {mine}")
        print(f"        the unit's page (every read it makes): {page:8.2f} ms")
        print(
            f"        its obligations, the old query shape:  {old:8.2f} ms   {plan(engine, old_query(UNIT, programs))}"
        )
        print(
            f"        its obligations, today's query:        {new:8.2f} ms   {plan(engine, unit_query(UNIT))}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", default="42,20000", help="comma-separated sizes (default 42,20000)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--db", default=None, help="a PostgreSQL URL: run in a new schema")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the 2027 calendar warning
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    for units in (int(n) for n in args.units.split(",")):
        measure(units, args.runs, args.db)


if __name__ == "__main__":
    main()
