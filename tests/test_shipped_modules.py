"""A shipped module that goes missing (a rename, a bad merge) breaks loudly, never silently.

Each case imports an entry module in a fresh interpreter in which one shipped module cannot be
found (as after a rename): the import must fail with an ``ImportError`` naming it, instead of
a command or the emailed scorecard quietly disappearing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

BLOCKER = """
import importlib.abc, sys

class Renamed(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {missing!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Renamed())
import {entry}
"""


@pytest.mark.parametrize(
    ("entry", "missing"),
    [
        ("orchestrator.cli", "orchestrator.cli.simulate"),  # the simulate command
        ("orchestrator.cli", "orchestrator.cli.outbox"),  # a command group
        ("orchestrator.cli", "orchestrator.cli.indicators"),
        ("orchestrator.cli", "orchestrator.cli.review"),
        ("orchestrator.service.work", "orchestrator.evaluation.scoring"),  # the evaluate phase's scorecard
    ],
)
def test_a_missing_shipped_module_fails_the_import(entry, missing):
    run = subprocess.run(
        [sys.executable, "-c", BLOCKER.format(entry=entry, missing=missing)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 1
    assert last.startswith(("ImportError", "ModuleNotFoundError")) and missing.rsplit(".")[-1] in last


def test_the_daemon_sends_the_scorecard_of_the_scoring_module():
    from orchestrator.evaluation import scoring
    from orchestrator.service import work

    assert work.scorecard_attachment is scoring.scorecard_attachment
