"""The crash harness (benchmarks/crash_year.py) as a test CI runs: a short span of the year, every
instant killed once in start-up, the tick or sending, then rerun; nothing lost, nothing doubled.

The whole year: ``.venv/bin/python benchmarks/crash_year.py`` (the counts are in benchmarks/README.md).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parent.parent / "benchmarks" / "crash_year.py"


@pytest.mark.crash
def test_sigkill_at_every_instant_loses_nothing_and_sends_nothing_twice(capsys):
    spec = importlib.util.spec_from_file_location("crash_year", HARNESS)
    harness = importlib.util.module_from_spec(spec)
    sys.modules["crash_year"] = harness  # (its dataclasses look their module up)
    spec.loader.exec_module(harness)
    code = harness.main(["--until", "2026-06-12", "--towns", "2", "--kill-rate", "1", "--max-kills", "1"])
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    with capsys.disabled():
        print(f"\ncrash harness: {out.strip()}")
    assert report["kills"] >= 3
    assert (report["lost_vs_reference"], report["extra_vs_reference"]) == (0, 0)
    assert (report["lost_vs_simulate"], report["extra_vs_simulate"]) == (0, 0)
    assert report["delivered_crashed"] == report["simulated"] > 0
    assert code == 0, report
