"""(b) A tick with nothing due, over 1k and over 1M pending timers: both figures and their ratio.

The tick asks for ``fire_at <= now AND fired_at IS NULL`` through the (fired_at, fire_at) index, so
its cost should not grow with the number of pending timers.   Usage: python benchmarks/idle_tick.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from orchestrator.engine.tick import next_fire_at, tick
from orchestrator.service.config import Settings
from orchestrator.service.runtime import send_policy
from orchestrator.store.db import make_engine, transaction, upgrade
from orchestrator.store.models import Program, Timer

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def build(path: Path, pending: int):
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with transaction(engine) as session:
        program = Program(
            workflow="bench",
            year=2026,
            title="bench",
            timezone="Asia/Shanghai",
            definition_path="-",
            definition_digest="-",
            units_digest="-",
            started_at=NOW,
            reconciled_at=NOW,
            materialized_until=date(2026, 12, 31),
        )
        session.add(program)
        session.flush()
        program_id = program.id
    table = Timer.__table__
    batch = 50_000
    for start in range(0, pending, batch):
        rows = [
            {
                "key": f"bench/{i}",
                "kind": "reminder",
                "program_id": program_id,
                "fire_at": NOW + timedelta(days=1, seconds=i),
                "on": date(2026, 6, 2),
                "step": 0,
                "recipients": [],
                "phase": None,
                "obligation_id": None,
                "fired_at": None,
                "outcome": None,
            }
            for i in range(start, min(start + batch, pending))
        ]
        with transaction(engine) as session:
            session.connection().execute(table.insert(), rows)
    return engine


def measure(engine, runs: int = 200) -> float:
    policy = send_policy(Settings(), {})
    tick(engine, NOW, policy)  # warm the connection pool and caches
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        report = tick(engine, NOW, policy)
        next_fire_at(engine)
        samples.append(time.perf_counter() - started)
        assert report.fired == 0
    return statistics.median(samples)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="duban-idle-"))
    small = measure(build(folder / "small.db", 1_000))
    large = measure(build(folder / "large.db", 1_000_000))
    print(f"idle_tick pending=1000 median_ms={small * 1000:.3f}")
    print(f"idle_tick pending=1000000 median_ms={large * 1000:.3f}")
    print(f"idle_tick ratio={large / small:.2f} target: < 2")


if __name__ == "__main__":
    main()
