"""Run every benchmark in turn (``make bench``); each prints its own figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "idle_tick.py",
    "naive_peer.py",
    "province_year.py",
    "dispatch_bench.py",
    "two_daemons.py",
    "crash_year.py",
    "slow_clients.py",
    "unit_page.py",
    "busy_cli.py",
    "import_files.py",
]

if __name__ == "__main__":
    failed = 0
    for script in SCRIPTS:
        if (HERE / script).exists():
            print(f"== {script}", flush=True)
            failed |= subprocess.run([sys.executable, str(HERE / script)], check=False).returncode
    sys.exit(1 if failed else 0)
