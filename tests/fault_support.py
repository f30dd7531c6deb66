"""Faults of the machine in tests: a file or folder that cannot be written.

As an ordinary user its mode does it; root ignores modes, so as root the immutable flag
(``chattr +i``) does it, and where that is not allowed either (a container without
CAP_LINUX_IMMUTABLE) the test is skipped, saying why.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """``path`` (a file, or a folder: made if missing) cannot be written inside the block."""
    if not path.exists():
        path.mkdir(parents=True)
    if os.geteuid() != 0:
        mode = path.stat().st_mode & 0o777
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make {path} unwritable as root here ({made.stderr.strip()})")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
