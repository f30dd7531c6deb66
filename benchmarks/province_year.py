"""(a) Province scale: the pilot fanned out to N units (default 5,000, about 150k obligations),
one simulated year through the real engine (start, tick, digest grouping), on a scratch SQLite file
(or, with ``--db``, a new schema of a PostgreSQL database), and beside it on SQLite the floor of
writing the same rows (``_floor.py``) — duban's time as a ratio to it.

Prints wall time, CPU time, peak RSS, obligations/s, items/s, the floor and the ratios with their
targets.   Usage: python benchmarks/province_year.py [--units N] [--no-floor] [--db URL]
[--baseline UNITS:SECONDS]   (``--baseline``: the wall time of a smaller run on the same store, to
print the growth against its target — 1.1x the growth of the units: 11x the time for 10x the units)
"""

from __future__ import annotations

import argparse
import logging
import os
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
from _floor import measure
from _province import write_register, write_units
from dispatch_bench import store

from orchestrator.engine.simulate import simulate
from orchestrator.service.config import Settings
from orchestrator.service.runtime import make_renderer, send_policy
from orchestrator.store.db import upgrade
from orchestrator.store.models import Event, NotificationItem, Obligation, OutboxMessage, Timer
from workflows.catalog import BUILTIN_DEFINITIONS, load_bundle

TARGET_RATIO, TARGET_RSS, TARGET_GROWTH = 3.0, 400, 1.1


def _baseline(text: str) -> tuple[float, float]:
    """``UNITS:SECONDS`` (checked before the run: a typo must not cost a 30-minute run its ratio)."""
    units, _, seconds = text.partition(":")
    try:
        pair = float(units), float(seconds)
    except ValueError:
        pair = (0.0, 0.0)
    if min(pair) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected UNITS:SECONDS, e.g. 5000:161.0")
    return pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=5000)
    parser.add_argument("--no-floor", action="store_true", help="skip the floor run")
    parser.add_argument("--db", default=None, help="a PostgreSQL URL: run in a new schema (no floor)")
    parser.add_argument(
        "--baseline", type=_baseline, default=None, help="UNITS:SECONDS of a smaller run, same store"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the 2027 calendar warning
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    tmp = Path(tempfile.mkdtemp(prefix="duban-bench-"))
    units = write_units(tmp / "units.toml", args.units)
    registers = {"normative_documents": write_register(tmp / "docs.csv", args.units)}
    bundle = load_bundle(BUILTIN_DEFINITIONS / "rule_of_law_pilot.toml", units, registers)
    with store(args.db, tmp) as engine:
        upgrade(engine)
        settings = Settings()
        load = os.getloadavg()[0]
        started, cpu = time.perf_counter(), time.process_time()
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
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        counts = {}
        with Session(engine) as session:
            for model in (Obligation, Timer, NotificationItem, Event, OutboxMessage):
                counts[model.__tablename__] = session.exec(select(func.count()).select_from(model)).one()
        print(
            f"province_year units={args.units} load_avg={load:.1f} "
            + " ".join(f"{name}={n}" for name, n in counts.items())
            + f" emails={emails} facts={facts}"
        )
        print(
            f"province_year wall_s={wall:.1f} cpu_s={cpu:.1f} peak_rss_mib={rss:.0f} "
            f"obligations_per_s={counts['obligation'] / wall:.0f} items_per_s={counts['notification_item'] / wall:.0f} "
            f"(target: peak RSS <= {TARGET_RSS} MiB at 5,000 units, <= 1024 MiB at 50,000)"
        )
    if args.baseline:
        units_before, seconds = args.baseline
        more = args.units / units_before
        print(
            f"province_year growth units=x{more:g} time=x{wall / seconds:.2f} "
            f"(target: <= x{TARGET_GROWTH * more:g}, {TARGET_GROWTH:g}x the units' growth)"
        )
    if args.db or args.no_floor:
        return
    floor = measure(tmp / "bench.db", tmp / "floor.db")
    print(
        f"province_year floor wall_s={floor.wall:.1f} cpu_s={floor.cpu:.1f} rows={floor.written} "
        + " ".join(f"{name.replace(' ', '_')}={n}" for name, n in floor.rows.items())
    )
    print(
        f"province_year ratio wall={wall / floor.wall:.2f}x cpu={cpu / floor.cpu:.2f}x "
        f"(target: <= {TARGET_RATIO:g}x the floor)"
    )


if __name__ == "__main__":
    main()
