"""Crash harness: the real daemon through a whole program year on the test clock, SIGKILLed at random.

Two deployments of the same plan and units, each a temporary folder with its SQLite database and a
maildir, are driven by ``DUBAN_FAKE_NOW=<instant> duban run --once`` at every instant that has a
timer or a send window (the next unfired timer, the next pending item's or message's send slot):

- the reference runs once at each instant;
- the crashed one is started at the same instants, and with probability ``--kill-rate`` is
  SIGKILLed at a random point of a phase chosen at random (so the kills land in start-up,
  in the tick and in sending — each kill is classified by the log lines it printed), then run
  again at the same instant (killed again with the same probability, at most ``--max-kills`` times
  in a row, then run to the end).

At the end the mail sets (maildir, one file per Message-ID) are compared with each other and with
``duban simulate --json`` for the same year: lost = expected and not delivered, extra = delivered
and not expected (a duplicate under a different Message-ID would be one). Prints the counts; exits
1 if anything was lost or extra.

    .venv/bin/python benchmarks/crash_year.py                 # the small plan, about a minute
    .venv/bin/python benchmarks/crash_year.py --plan pilot    # the pilot with the example units
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.engine.window import send_slot  # noqa: E402
from workflows.calendar import make_calendar  # noqa: E402

DUBAN = str(Path(sys.executable).with_name("duban"))
TZ = ZoneInfo("Asia/Shanghai")
WINDOW = (datetime.strptime("09:00", "%H:%M").time(), datetime.strptime("17:30", "%H:%M").time())

SMALL_PLAN = """\
[workflow]
id = "crash-year"
title = "崩溃测试年度方案"
timezone = "Asia/Shanghai"
calendar = "cn-workdays"
reminders = ["-1wd"]

[[duties]]
id = "D1"
title = "报送半年工作情况"
rrule = "FREQ=YEARLY;BYMONTH=6,12;BYMONTHDAY=10"
window = "-10d"
responsible = ["role:town"]

[[duties]]
id = "D2"
title = "报送年度总结"
due = "11-20"
window = "-10d"
responsible = ["role:town"]
"""


def small_units(towns: int) -> str:
    parts = []
    for n in range(towns):
        parts.append(
            f'[[units]]\nid = "town-{n}"\nname = "第{n}镇人民政府"\nemails = ["town{n}@example.gov.cn"]\nroles = ["town"]\n'
        )
    return "\n".join(parts)


@dataclass
class Deployment:
    root: Path
    workflow: str
    year: int
    extra_config: str = ""

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    def env(self, now: datetime) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_", "DUBAN_"))}
        return env | {
            "DUBAN_FAKE_NOW": now.astimezone(TZ).isoformat(),
            "PYTHONUNBUFFERED": "1",
            "LANG": "C.UTF-8",
        }

    def duban(self, *args: str, now: datetime | None = None, **options) -> subprocess.CompletedProcess:
        return subprocess.run(
            [DUBAN, "--config", str(self.config), *args],
            env=self.env(now or datetime(self.year, 1, 1, tzinfo=TZ)),
            cwd=self.root,
            capture_output=True,
            text=True,
            encoding="utf-8",
            **options,
        )

    def mail(self) -> Counter:
        """Message-ID → files (one file per Message-ID: the maildir names files by it)."""
        found: Counter = Counter()
        for path in (self.root / "mail" / "new").glob("*.eml"):
            found[message_from_bytes(path.read_bytes(), policy=default)["Message-ID"]] += 1
        return found

    def query(self, sql: str):
        import sqlite3

        with sqlite3.connect(self.root / "duban.db") as db:
            return db.execute(sql).fetchone()[0]


def make_deployment(root: Path, plan: str, towns: int, year: int) -> Deployment:
    root.mkdir(parents=True)
    (root / "definitions").mkdir()
    registers = ""
    if plan == "pilot":
        workflow = "rule-of-law-pilot"
        units = REPO / "examples/units.example.toml"
        registers = (
            f'[registers]\nnormative_documents = "{REPO / "examples/normative_documents.example.csv"}"\n'
        )
    else:
        workflow = "crash-year"
        (root / "definitions" / "crash_year.toml").write_text(SMALL_PLAN, encoding="utf-8")
        units = root / "units.toml"
        units.write_text(small_units(towns), encoding="utf-8")
    (root / "config.toml").write_text(
        f'[database]\nurl = "sqlite:///{root / "duban.db"}"\n\n'
        f'[definitions]\npaths = ["definitions"]\nunits = "{units}"\n\n{registers}\n'
        '[mail]\ntransport = "maildir"\nmaildir = "mail"\ndomain = "duban.test"\n\n'
        f'[[programs]]\nworkflow = "{workflow}"\nyear = {year}\n',
        encoding="utf-8",
    )
    deployment = Deployment(root, workflow, year)
    result = deployment.duban("db", "upgrade")
    if result.returncode != 0:
        raise SystemExit(f"db upgrade failed: {result.stderr}")
    return deployment


def next_instant(deployment: Deployment, now: datetime, calendar) -> datetime | None:
    """The next instant with work: the next unfired timer, or the next send slot of what waits."""

    def parse(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None

    after = now + timedelta(seconds=1)
    timer = parse(deployment.query("SELECT min(fire_at) FROM timer WHERE fired_at IS NULL"))
    waiting = [
        parse(deployment.query("SELECT min(send_at) FROM notification_item WHERE state = 'pending'")),
        parse(
            deployment.query(
                "SELECT min(next_attempt_at) FROM outbox_message WHERE state IN ('pending', 'sending')"
            )
        ),
    ]
    found = [max(timer, after)] if timer else []
    found += [send_slot(max(w, after), TZ, WINDOW, calendar) for w in waiting if w]
    return min(found) if found else None


def phase_of(output: str) -> str:
    """Where a killed run was: start-up (before the database is open), tick (open, nothing sent yet)
    or sending (a message written or being written)."""
    if '"maildir.written"' in output or '"mail.sent"' in output or '"mail.queued"' in output:
        return "sending"
    if '"daemon.starting"' in output:
        return "tick"
    return "start-up"


@dataclass
class Tally:
    runs: int = 0
    kills: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    longest: float = 0.0


PHASE_MARKS = {"tick": ('"daemon.starting"',), "sending": ('"maildir.written"', '"mail.sent"')}


def run_at(deployment: Deployment, now: datetime, tally: Tally, rng: random.Random | None, rate: float,
           max_kills: int) -> None:  # fmt: skip
    """One instant: ``run --once`` (killed at random when ``rng`` is given), until a run completes.

    A kill aims at a phase chosen at random: start-up (a delay within the first second), the tick
    (up to 0.4 s after the ``daemon.starting`` line: the database is open, the plan is loaded, the
    claims of the dead run handed back, the tick runs) or sending (a few milliseconds after the first
    message was written). Where it really landed is read from the log lines the process printed.
    """
    kills = 0
    while True:
        tally.runs += 1
        started = time.monotonic()
        proc = subprocess.Popen(
            [DUBAN, "--config", str(deployment.config), "run", "--once"],
            env=deployment.env(now),
            cwd=deployment.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
        )
        lines: list[str] = []
        aim = (
            rng.choice(["start-up", "tick", "sending"])
            if rng and kills < max_kills and rng.random() < rate
            else None
        )
        seen = threading.Event()

        def read(aim=aim, lines=lines, seen=seen, proc=proc) -> None:
            for line in proc.stdout:
                lines.append(line)
                if aim in PHASE_MARKS and any(mark in line for mark in PHASE_MARKS[aim]):
                    seen.set()
            seen.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        if aim is not None:
            if aim == "start-up":
                time.sleep(rng.uniform(0.05, 1.0))
            elif aim == "tick":  # the database is open: loading the plan, taking over, ticking
                seen.wait(120)
                time.sleep(rng.uniform(0, 0.4))
            else:
                seen.wait(120)
                time.sleep(rng.uniform(0, 0.03))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                reader.join(10)
                tally.kills[phase_of("".join(lines))] += 1
                kills += 1
                continue
        proc.wait(timeout=300)
        reader.join(10)
        tally.longest = max(tally.longest, time.monotonic() - started)
        if proc.returncode != 0:
            tally.failures.append(f"{now.isoformat()}: exit {proc.returncode}: {''.join(lines)[-500:]}")
        return


def drive(deployment: Deployment, until: datetime, tally: Tally, rng: random.Random | None = None,
          rate: float = 0.0, max_kills: int = 3) -> list[datetime]:  # fmt: skip
    calendar = make_calendar("cn-workdays", None, lambda year, message: None)
    now = datetime(deployment.year, 1, 1, 0, 0, tzinfo=TZ).astimezone(UTC)
    instants = []
    while now is not None and now <= until:
        run_at(deployment, now, tally, rng, rate, max_kills)
        instants.append(now)
        now = next_instant(deployment, now, calendar)
    return instants


def simulated(deployment: Deployment, until: str | None) -> Counter:
    span = ["--until", until] if until else []
    result = deployment.duban(
        "simulate", deployment.workflow, "--year", str(deployment.year), "--json", *span
    )
    if result.returncode != 0:
        raise SystemExit(f"simulate failed: {result.stderr}")
    return Counter(json.loads(line)["message_id"] for line in result.stdout.splitlines() if line.strip())


def compare(expected: Counter, got: Counter) -> tuple[int, int]:
    """(lost, extra): Message-IDs expected and missing, delivered and not expected."""
    return len(set(expected) - set(got)), len(set(got) - set(expected))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", choices=["small", "pilot"], default="small")
    parser.add_argument("--towns", type=int, default=3, help="units of the small plan")
    parser.add_argument("--year", type=int, default=2026)
    parser.add_argument(
        "--until", help="stop after this date (YYYY-MM-DD); default: the end of January after"
    )
    parser.add_argument("--kill-rate", type=float, default=0.5, help="chance that a run is killed")
    parser.add_argument("--max-kills", type=int, default=3, help="kills in a row at one instant, at most")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args(argv)

    until = (
        datetime.fromisoformat(args.until).replace(tzinfo=TZ) + timedelta(days=1)
        if args.until
        else datetime(args.year + 1, 2, 1, tzinfo=TZ)
    )
    base = Path(tempfile.mkdtemp(prefix="duban-crash-"))
    try:
        reference = make_deployment(base / "reference", args.plan, args.towns, args.year)
        crashed = make_deployment(base / "crashed", args.plan, args.towns, args.year)
        started = time.monotonic()
        ref_tally, crash_tally = Tally(), Tally()
        with ThreadPoolExecutor(2) as pool:  # the two deployments side by side
            ref_run = pool.submit(drive, reference, until, ref_tally)
            crash_run = pool.submit(
                drive, crashed, until, crash_tally, random.Random(args.seed), args.kill_rate, args.max_kills
            )
            instants, crash_instants = ref_run.result(), crash_run.result()
        expected, got_ref, got = simulated(reference, args.until), reference.mail(), crashed.mail()
        lost_ref, extra_ref = compare(expected, got_ref)
        lost, extra = compare(got_ref, got)
        lost_sim, extra_sim = compare(expected, got)
        duplicates = sum(n - 1 for n in got.values() if n > 1)
        stuck = crashed.query("SELECT count(*) FROM outbox_message WHERE state != 'sent'")
        report = {
            "plan": args.plan,
            "instants": len(instants),
            "instants_crashed": len(crash_instants),
            "runs": crash_tally.runs,
            "kills": sum(crash_tally.kills.values()),
            "kills_by_phase": dict(crash_tally.kills),
            "simulated": len(expected),
            "delivered_reference": len(got_ref),
            "delivered_crashed": len(got),
            "lost_vs_reference": lost,
            "extra_vs_reference": extra,
            "lost_vs_simulate": lost_sim,
            "extra_vs_simulate": extra_sim,
            "reference_vs_simulate": {"lost": lost_ref, "extra": extra_ref},
            "same_message_id_twice": duplicates,
            "not_sent_at_the_end": stuck,
            "failed_runs": len(crash_tally.failures) + len(ref_tally.failures),
            "seconds": round(time.monotonic() - started, 1),
        }
        print(json.dumps(report, ensure_ascii=False))
        for failure in (ref_tally.failures + crash_tally.failures)[:5]:
            print("failed run:", failure, file=sys.stderr)
        bad = (
            lost or extra or lost_sim or extra_sim or lost_ref or extra_ref or stuck or report["failed_runs"]
        )
        return 1 if bad else 0
    finally:
        if args.keep:
            print(f"kept: {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
