"""(a) Province scale: the pilot fanned out to N units (default 5,000, about 150k obligations),
one simulated year through the real engine (start, tick, digest grouping), on a scratch SQLite file.

Prints wall time, peak RSS, obligations/s and items/s.   Usage: python benchmarks/province_year.py [--units N]
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import structlog
from sqlalchemy import func
from sqlmodel import Session, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _province import write_register, write_units

from orchestrator.engine.simulate import simulate
from orchestrator.service.config import Settings
from orchestrator.service.runtime import make_renderer, send_policy
from orchestrator.store.db import make_engine, upgrade
from orchestrator.store.models import NotificationItem, Obligation, Timer
from workflows.catalog import BUILTIN_DEFINITIONS, load_bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=5000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the 2027 calendar warning
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    tmp = Path(tempfile.mkdtemp(prefix="duban-bench-"))
    units = write_units(tmp / "units.toml", args.units)
    registers = {"normative_documents": write_register(tmp / "docs.csv", args.units)}
    bundle = load_bundle(BUILTIN_DEFINITIONS / "rule_of_law_pilot.toml", units, registers)
    engine = make_engine(f"sqlite:///{tmp / 'bench.db'}")
    upgrade(engine)
    settings = Settings()
    started = time.perf_counter()
    emails = facts = 0
    for email in simulate(
        bundle,
        2026,
        policy=send_policy(settings, {bundle.definition.workflow.id: bundle}),
        renderer=make_renderer(settings),
        engine=engine,
    ):  # every email with its items, as `duban simulate --json` reads them
        emails += 1
        facts += len(email.items)
    wall = time.perf_counter() - started
    with Session(engine) as session:
        obligations = session.exec(select(func.count()).select_from(Obligation)).one()
        timers = session.exec(select(func.count()).select_from(Timer)).one()
        items = session.exec(select(func.count()).select_from(NotificationItem)).one()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"province_year units={args.units} obligations={obligations} timers={timers} items={items} "
        f"emails={emails} facts={facts}"
    )
    print(
        f"province_year wall_s={wall:.1f} peak_rss_mib={rss:.0f} obligations_per_s={obligations / wall:.0f} "
        f"items_per_s={items / wall:.0f} target: wall < 120 s, RSS < 1024 MiB"
    )


if __name__ == "__main__":
    main()
