"""(c) The naive peer: every deadline as its own APScheduler DateTrigger job in a MemoryJobStore,
beside duban's start-up on the same deadlines (durable timer table; one DateTrigger at the next one).

Both run in fresh subprocesses so their peak RSS is their own. duban is also measured on a
small program, to show its start-up RSS does not grow with the number of deadlines.
Usage: python benchmarks/naive_peer.py [--units N]   (default 5000, ~150k obligations)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOW = "2026-05-01T00:00:00+00:00"  # before the pilot's first deadline: nothing due at start-up


def materialize(folder: Path, units: int) -> tuple[str, int]:
    """A SQLite database with the pilot started for ``units`` units; returns (url, timers)."""
    sys.path.insert(0, str(HERE))
    from _province import write_register, write_units
    from sqlalchemy import func
    from sqlmodel import Session, select

    from orchestrator.engine.programs import start_program
    from orchestrator.store.db import make_engine, transaction, upgrade
    from orchestrator.store.models import Timer
    from workflows.catalog import BUILTIN_DEFINITIONS, load_bundle

    warnings.simplefilter("ignore")
    folder.mkdir(parents=True, exist_ok=True)
    bundle = load_bundle(
        BUILTIN_DEFINITIONS / "rule_of_law_pilot.toml",
        write_units(folder / "units.toml", units),
        {"normative_documents": write_register(folder / "docs.csv", units)},
    )
    url = f"sqlite:///{folder / 'duban.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with transaction(engine) as session:
        start_program(session, bundle, 2026, datetime.fromisoformat(NOW), horizon_days=800)
    with Session(engine) as session:
        count = session.exec(select(func.count()).select_from(Timer)).one()
    (folder / "deadlines.json").write_text(json.dumps(deadlines(bundle)))
    return url, count


def deadlines(bundle) -> list[float]:
    """Every notice of every obligation and phase as its own moment: what a naive design schedules
    (one job per unit per reminder, due date, overdue notice and escalation step)."""
    from zoneinfo import ZoneInfo

    from orchestrator.engine.window import local_midnight
    from workflows.plan import phase_dates, plan
    from workflows.schedule import obligation_notices, phase_notices

    definition, units, calendar = bundle.definition, bundle.units.directory, bundle.calendar
    tz = ZoneInfo(definition.workflow.timezone)
    days = [
        notice.on
        for occ in plan(definition, units, 2026, calendar, bundle.registers)
        for notice in obligation_notices(occ, definition.task(occ.task), definition.workflow, units, calendar)
    ]
    for phase in definition.phases:
        days += [n.on for n in phase_notices(phase_dates(phase, 2026), definition.workflow, calendar)]
    return sorted(local_midnight(day, tz).timestamp() for day in days)  # the peer's best case: appends


# ru_maxrss survives fork+exec on Linux (a child reports its parent's peak): read VmHWM instead
PEAK = """
def peak_rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

NAIVE = (
    PEAK
    + """
import json, sys, time
from datetime import datetime, timezone
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
deadlines = json.load(open(sys.argv[1]))
def job(): pass
started = time.perf_counter()
scheduler = BackgroundScheduler(timezone="Asia/Shanghai", job_defaults={"misfire_grace_time": None})
scheduler.start(paused=True)
for i, ts in enumerate(deadlines):
    scheduler.add_job(job, DateTrigger(run_date=datetime.fromtimestamp(ts, timezone.utc)), id=str(i))
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "rss_mib": peak_rss_mib(), "jobs": len(scheduler.get_jobs())}))
scheduler.shutdown(wait=False)
"""
)

DUBAN = (
    PEAK
    + """
import asyncio, json, sys, time
from datetime import datetime
started = time.perf_counter()
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from orchestrator.service.config import Settings
from orchestrator.store.db import open_database
from orchestrator.service.runtime import send_policy
from orchestrator.engine.tick import next_fire_at, tick
async def main():
    engine = open_database(sys.argv[1])
    now = datetime.fromisoformat(sys.argv[2])
    report = tick(engine, now, send_policy(Settings(), {}))
    scheduler = AsyncIOScheduler(timezone="Asia/Shanghai")
    scheduler.add_job(lambda: None, DateTrigger(run_date=next_fire_at(engine)), id="next-timer")
    scheduler.start(paused=True)
    scheduler.shutdown(wait=False)
    return report
asyncio.run(main())
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "rss_mib": peak_rss_mib()}))
"""
)


def run(code: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=5000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="duban-peer-"))
    begun = time.perf_counter()
    url, timers = materialize(root / "large", args.units)
    print(f"naive_peer materialized units={args.units} timers={timers} in {time.perf_counter() - begun:.1f}s")
    small_url, small_timers = materialize(root / "small", 20)
    naive = run(NAIVE, str(root / "large" / "deadlines.json"))
    duban = run(DUBAN, url, NOW)
    duban_small = run(DUBAN, small_url, NOW)
    print(
        f"naive_peer apscheduler_jobs={naive['jobs']} load_s={naive['seconds']:.2f} rss_mib={naive['rss_mib']:.0f}"
    )
    print(f"naive_peer duban_startup timers={timers} s={duban['seconds']:.2f} rss_mib={duban['rss_mib']:.0f}")
    print(
        f"naive_peer duban_startup timers={small_timers} s={duban_small['seconds']:.2f} "
        f"rss_mib={duban_small['rss_mib']:.0f}"
    )
    large, small = (len(json.loads((root / n / "deadlines.json").read_text())) for n in ("large", "small"))
    print(
        f"naive_peer speedup={naive['seconds'] / duban['seconds']:.1f}x (target >= 5x) "
        f"rss_growth={duban['rss_mib'] / duban_small['rss_mib']:.2f}x for {large // max(small, 1)}x deadlines "
        f"({small:,} → {large:,}; timers {small_timers:,} → {timers:,}) (target: flat)"
    )


if __name__ == "__main__":
    main()
