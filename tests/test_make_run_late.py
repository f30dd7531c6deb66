"""Issue 13, points 1 and 6, as a newcomer sees them: ``make run`` on the shipped config on
2 December (the daemon as a real subprocess with ``DUBAN_FAKE_NOW``), then the next morning.

The daemon says where emails go, the send window, the next send time and how many notices wait;
``duban status`` says the same and lists only the live daemons and the last stopped one; the next
morning each unit gets at most one digest, about things still ahead of it, and the office one
summary of what fell due before the start.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections import Counter
from email import message_from_bytes
from email.policy import default
from pathlib import Path

from support import DUBAN, REPO, DaemonProcess

EVENING = "2026-12-02T18:00:00+08:00"  # after the send window: everything waits for the morning
MORNING = "2026-12-03T09:00:05+08:00"


def _site(root: Path) -> dict[str, str]:
    root.mkdir()
    shutil.copy(REPO / "config.toml", root / "config.toml")
    shutil.copytree(REPO / "examples", root / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_", "DUBAN_"))}
    upgraded = subprocess.run(
        [DUBAN, "--config", "config.toml", "db", "upgrade"], cwd=root, env=env, capture_output=True, text=True
    )
    assert upgraded.returncode == 0, upgraded.stderr
    return env


def _status(root: Path, env: dict[str, str], now: str) -> dict:
    result = subprocess.run(
        [DUBAN, "--config", "config.toml", "status", "--json"],
        cwd=root,
        env=env | {"DUBAN_FAKE_NOW": now},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_make_run_late_in_the_year_then_the_next_morning(short_tmp):
    root = short_tmp / "late"
    env = _site(root)
    daemon = DaemonProcess([DUBAN, "--config", "config.toml", "run"], env | {"DUBAN_FAKE_NOW": EVENING}, root)
    try:
        outlook = daemon.wait_for_event("mail.outlook", timeout=90)
        assumed = daemon.wait_for_event("calendar.assumed", timeout=30)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(20) == 0, daemon.output()
    finally:
        daemon.kill()
    assert outlook["transport"] == "maildir" and outlook["to"] == str(root / "var" / "mail")
    assert outlook["send_window"] == "09:00-17:30"
    assert outlook["next_send_at"] == "2026-12-03T09:00+08:00"
    assert outlook["notices_waiting"] > 0 and outlook["messages_waiting"] == 0
    assert "2027 年的调休上班日未知" in assumed["detail"]
    assert not (root / "var" / "mail" / "new").exists() or not list((root / "var" / "mail" / "new").iterdir())

    status = _status(root, env, EVENING)
    assert status["waiting"] == {
        "notices": outlook["notices_waiting"],
        "messages": 0,
        "next_send_at": "2026-12-03T09:00:00+08:00",
    }
    assert [d["alive"] for d in status["daemons"]] == [False]
    assert any("2027 年的调休上班日未知" in w for w in status["warnings"])

    once = subprocess.run(
        [DUBAN, "--config", "config.toml", "run", "--once"],
        cwd=root,
        env=env | {"DUBAN_FAKE_NOW": MORNING},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert once.returncode == 0, once.stdout[-3000:] + once.stderr
    mails = [
        message_from_bytes(p.read_bytes(), policy=default)
        for p in (root / "var" / "mail" / "new").glob("*.eml")
    ]
    summaries = [m for m in mails if "启用前已到期" in str(m["Subject"])]
    assert len(summaries) == 1 and "fazhiban@example.gov.cn" in str(summaries[0]["To"])
    digests = Counter(str(m["To"]) for m in mails if m not in summaries)
    assert digests and max(digests.values()) == 1  # each unit at most one digest
    sizes = [len(p.read_bytes()) for p in (root / "var" / "mail" / "new").glob("*.eml")]
    assert max(sizes) < 300_000
    for message in mails:
        if message in summaries:
            continue
        assert "逾期" not in str(message["Subject"]) and "催办" not in str(message["Subject"])

    later = _status(root, env, MORNING)
    assert later["waiting"]["notices"] == 0 and later["waiting"]["messages"] == 0
    assert len(later["daemons"]) == 1  # two runs: only the last stopped one is shown
