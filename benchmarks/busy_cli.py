"""(issue 26, point 14) A command beside the daemon's tick at province scale, on SQLite: how long the
tick holds the write lock at a stretch, against the 5 s the daemon and the portal wait and the
60 s a command waits (``cli.failures.CLI_BUSY_SECONDS``).

The pilot is started for N units (default 20,000: about 670,000 obligations); the tick of 06-01
(the implementation phase opens: most obligations change state, each with its notice and audit
event) runs in a thread; a second writer — what ``duban done`` does — asks for the write lock one
second into it, first waiting 5 s, then 60 s. Prints when each got the lock, or failed.

Usage: python benchmarks/busy_cli.py [--units 20000]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _province import write_register, write_units

from orchestrator.cli.failures import CLI_BUSY_SECONDS
from orchestrator.engine.programs import start_program
from orchestrator.engine.tick import tick
from orchestrator.service.config import Settings
from orchestrator.service.runtime import send_policy
from orchestrator.store.db import make_engine, transaction, upgrade
from workflows.catalog import BUILTIN_DEFINITIONS, load_bundle

STARTED = datetime(2026, 5, 6, 1, 0, tzinfo=UTC)
TICK_AT = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai: the phase opens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=20_000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the 2027 calendar warning
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="duban-bench-") as folder:
        run(Path(folder), args.units)


def run(tmp: Path, units: int) -> None:
    bundle = load_bundle(
        BUILTIN_DEFINITIONS / "rule_of_law_pilot.toml",
        write_units(tmp / "units.toml", units),
        {"normative_documents": write_register(tmp / "docs.csv", units)},
    )
    url = f"sqlite:///{tmp / 'bench.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with transaction(engine) as session:
        start_program(session, bundle, 2026, STARTED)
    policy = send_policy(Settings(), {bundle.definition.workflow.id: bundle})

    def run_tick() -> None:
        started = time.perf_counter()
        report = tick(engine, TICK_AT, policy)
        print(
            f"the tick: {time.perf_counter() - started:.1f} s, {report.fired} timers, {report.items:,} notices"
        )

    ticking = threading.Thread(target=run_tick)
    ticking.start()
    time.sleep(1.0)
    for wait in (5, CLI_BUSY_SECONDS):
        other = make_engine(url, busy_seconds=wait)
        started = time.perf_counter()
        try:
            with transaction(other) as session:
                session.connection().exec_driver_sql("UPDATE program SET title = title")
            print(
                f"a writer waiting up to {wait} s: got the lock after {time.perf_counter() - started:.1f} s"
            )
        except Exception as exc:
            print(f"a writer waiting up to {wait} s: failed after {time.perf_counter() - started:.1f} s "
                  f"({str(exc).splitlines()[0]})")  # fmt: skip
        other.dispose()
    ticking.join()
    engine.dispose()


if __name__ == "__main__":
    main()
