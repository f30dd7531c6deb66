"""Two daemons against one: the outbox shared on PostgreSQL when the mail relay is slow.

A relay (aiosmtpd, in a child process) answers each message after ``--delay`` seconds (50 ms: an
office's slow relay). A fresh PostgreSQL schema gets the dispatch benchmark's plan (400 units x 4
tasks opening on 06-01), started, ticked and queued: 401 due digests. Then ``duban run`` — real
subprocesses, config pointing at the schema and the relay, ``DUBAN_FAKE_NOW`` on 06-01 09:00 —
once with one daemon, once with two (a leader and a standby) on a fresh identical schema.

The relay holds the first message of each connection until every daemon of the run has one on the
wire, then lets them all go: the rate is the messages over the time from there to the last one
(daemon start-up, the same for both runs, is not counted). Every message is checked by Message-ID
at the relay: lost (queued, never received), duplicated (received more than once: the same
Message-ID again), extra (received, never queued: another Message-ID for the same notices).

The kill variant runs two daemons and SIGKILLs one (``--victim``, the standby by default) once a
third of the messages are in; the survivor must deliver the rest (the victim's claims handed back
as soon as its session is gone) with nothing lost and at most the victim's last group again.

    .venv/bin/python benchmarks/two_daemons.py                  # 3 rounds of one vs two, then a kill
    .venv/bin/python benchmarks/two_daemons.py --rounds 1 --victim leader

Target: two daemons >= 1.8 x one daemon's messages per second; lost 0, extra 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import structlog

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from dispatch_bench import OPEN_DAY, START, YEAR, write_plan  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from support import DUBAN, DaemonProcess  # noqa: E402

from notifications.render import Renderer  # noqa: E402
from orchestrator.engine.outbox import enqueue  # noqa: E402
from orchestrator.engine.outbox.claims import CLAIM_SECONDS  # noqa: E402
from orchestrator.engine.programs import start_program  # noqa: E402
from orchestrator.engine.tick import tick  # noqa: E402
from orchestrator.engine.window import SendPolicy  # noqa: E402
from orchestrator.service.config import MailSettings  # noqa: E402
from orchestrator.store.db import make_engine, transaction, upgrade  # noqa: E402
from workflows.catalog import load_bundle  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FAKE_NOW = "2026-06-01T09:00:30+08:00"  # the tasks' opening day, inside the send window

RELAY = """
import asyncio, json, sys, threading, time
from email.parser import BytesHeaderParser
from aiosmtpd.controller import Controller

gate, expected = threading.Event(), [1]
waiting, received, opened = set(), [], [None]

class Handler:
    async def handle_DATA(self, server, session, envelope):
        waiting.add(tuple(session.peer))
        while not gate.is_set():
            await asyncio.sleep(0.005)
        await asyncio.sleep(DELAY)
        headers = BytesHeaderParser().parsebytes(envelope.original_content)
        received.append((headers["Message-ID"], time.monotonic()))
        return "250 2.0.0 queued"

DELAY = float(sys.argv[2])
controller = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
for line in sys.stdin:
    command, _, argument = line.strip().partition(" ")
    if command == "open":  # let go once this many connections have a message on the wire
        while len(waiting) < int(argument):
            time.sleep(0.005)
        opened[0] = time.monotonic()
        gate.set()
        print("open", flush=True)
    elif command == "count":
        print(len({message_id for message_id, _ in received}), flush=True)
    elif command == "dump":
        print(json.dumps({"opened": opened[0], "received": received}), flush=True)
    elif command == "reset":
        gate.clear(); waiting.clear(); received.clear(); opened[0] = None
        print("reset", flush=True)
controller.stop()
"""


class Relay:
    """The slow relay in a child process, driven by one-line commands on its stdin."""

    def __init__(self, delay: float) -> None:
        from smtp_server import free_port

        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RELAY, str(self.port), str(delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.ask("") == "ready"

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def count(self) -> int:
        """How many distinct Message-IDs the relay has taken."""
        return int(self.ask("count"))

    def dump(self) -> tuple[float, list[tuple[str, float]]]:
        state = json.loads(self.ask("dump"))
        return state["opened"], [tuple(r) for r in state["received"]]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@dataclass
class Outcome:
    daemons: int
    messages: int  # digests queued
    seconds: float  # from the relay's "open" to the last message
    lost: int
    duplicated: int
    extra: int
    shares: list[int]  # messages each daemon handed to the relay (its smtp.sent lines)
    cpu: float  # the daemons' CPU seconds from the relay's "open" to the end (the survivors')

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


class Deployment:
    """A fresh PostgreSQL schema with the plan started, ticked and queued, and a config for it."""

    def __init__(self, folder: Path, relay: Relay, units: int, tasks: int) -> None:
        self.folder, self.schema = folder, f"duban_two_{uuid.uuid4().hex[:10]}"
        self.url = f"{PG}?options=-csearch_path%3D{self.schema}"
        with create_engine(PG).begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {self.schema}"))
        (folder / "definitions").mkdir(parents=True)
        definition, units_file = write_plan(folder, units, tasks)
        definition.rename(folder / "definitions" / "bench.toml")
        self.digests = self._queue(load_bundle(folder / "definitions" / "bench.toml", units_file))
        self._write_config(relay.port)
        self.reader = create_engine(self.url)  # the benchmark's own reads, one pooled connection

    def _queue(self, bundle) -> int:
        engine = make_engine(self.url)
        try:
            upgrade(engine)
            with transaction(engine) as session:
                start_program(session, bundle, YEAR, START)
            policy = SendPolicy(MailSettings().window, {"bench": bundle.calendar}, bundle.calendar)
            tick(engine, OPEN_DAY, policy)
            renderer = Renderer(
                sender="督办系统 <duban@example.gov.cn>", domain="duban.test", timezone="Asia/Shanghai"
            )
            return enqueue(engine, OPEN_DAY, {"bench": bundle}, renderer)
        finally:
            engine.dispose()

    def _write_config(self, port: int) -> None:
        (self.folder / "config.toml").write_text(
            f'[database]\nurl = "{self.url}"\n\n'
            '[definitions]\npaths = ["definitions"]\nunits = "units.toml"\n\n'
            "[daemon]\ntick_interval = 60\ndispatch_interval = 1\nstandby_poll = 1\n\n"
            '[mail]\nsender = "督办系统 <duban@example.gov.cn>"\ndomain = "duban.test"\n'
            'transport = "smtp"\n\n'
            f'[mail.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 30\n\n'
            f'[[programs]]\nworkflow = "bench"\nyear = {YEAR}\n',
            encoding="utf-8",
        )

    def start(self) -> DaemonProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_", "DUBAN_"))}
        env |= {"DUBAN_FAKE_NOW": FAKE_NOW, "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"}
        return DaemonProcess([DUBAN, "--config", "config.toml", "run"], env, self.folder)

    def scalar(self, sql: str):
        with self.reader.connect() as connection:
            return connection.execute(text(sql)).scalar()

    def message_ids(self) -> set[str]:
        with self.reader.connect() as connection:
            return set(connection.execute(text("SELECT message_id FROM outbox_message")).scalars())

    def drop(self) -> None:
        self.reader.dispose()
        admin = create_engine(PG)
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {self.schema} CASCADE"))
        admin.dispose()


def wait_until(condition, timeout: float, what: str, *, lost_ok: bool = False) -> None:
    """Poll ``condition``; past ``timeout`` stop the benchmark (or, with ``lost_ok``, go on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            if lost_ok:
                print(f"  (still waiting for {what} after {timeout:.0f} s)", flush=True)
                return
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """A live process's user + system CPU time (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sent_lines(daemon: DaemonProcess) -> int:
    return sum(e.get("event") == "smtp.sent" for e in daemon.events())


def leading(daemon: DaemonProcess) -> bool:
    return any(e.get("event") == "daemon.leader" for e in daemon.events())


def run(deploy: Deployment, relay: Relay, daemons: int, victim: str | None = None) -> Outcome:
    """``daemons`` daemons on ``deploy`` until every queued message is sent (``victim`` killed on the way)."""
    relay.ask("reset")
    processes = [deploy.start() for _ in range(daemons)]
    try:
        assert relay.ask(f"open {daemons}") == "open"
        cpu_before = {p.pid: cpu_seconds(p.pid) for p in processes}
        if victim is not None:
            wait_until(lambda: relay.count() >= deploy.digests // 3, 120, "a third delivered")
            killed = next(p for p in processes if leading(p) == (victim == "leader"))
            killed.kill()
        wait_until(lambda: relay.count() >= deploy.digests, 120, "every message at the relay", lost_ok=True)
        owed = "SELECT count(*) = 0 FROM outbox_message WHERE state IN ('pending', 'sending')"
        wait_until(lambda: deploy.scalar(owed), 2 * CLAIM_SECONDS, "nothing owed")
        opened, received = relay.dump()
        cpu = sum(cpu_seconds(p.pid) - cpu_before[p.pid] for p in processes if p.proc.poll() is None)
    finally:
        for process in processes:
            if process.proc.poll() is None:
                process.stop(30)
    counts = Counter(message_id for message_id, _ in received)
    queued = deploy.message_ids()
    return Outcome(
        daemons=daemons,
        messages=deploy.digests,
        seconds=max(t for _, t in received) - opened,
        lost=len(queued - set(counts)),
        duplicated=sum(n - 1 for n in counts.values()),
        extra=len(set(counts) - queued),
        shares=[sent_lines(p) for p in processes],
        cpu=cpu,
    )


def fresh_run(tmp: Path, relay: Relay, args, daemons: int, victim: str | None = None) -> Outcome:
    deploy = Deployment(tmp / uuid.uuid4().hex[:8], relay, args.units, args.tasks)
    try:
        return run(deploy, relay, daemons, victim)
    finally:
        deploy.drop()


def show(outcome: Outcome) -> str:
    return (
        f"{outcome.rate:6.1f} msgs/s ({outcome.messages} in {outcome.seconds:.1f} s; "
        f"per daemon {'/'.join(map(str, outcome.shares))}; lost {outcome.lost}, "
        f"duplicated {outcome.duplicated}, extra {outcome.extra}; "
        f"{outcome.cpu / outcome.messages * 1000:.1f} ms daemon CPU a message)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=400, help="units (one digest each; default 400)")
    parser.add_argument("--tasks", type=int, default=4, help="tasks opening on the day (default 4)")
    parser.add_argument("--delay", type=float, default=0.05, help="the relay's answer time, s (0.05)")
    parser.add_argument("--rounds", type=int, default=3, help="one daemon then two, this many times")
    parser.add_argument("--victim", choices=["standby", "leader", "none"], default="standby")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.basicConfig(level=logging.WARNING)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)", flush=True)
    relay = Relay(args.delay)
    rounds: list[tuple[Outcome, Outcome]] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            for number in range(args.rounds):
                one = fresh_run(tmp, relay, args, 1)
                two = fresh_run(tmp, relay, args, 2)
                rounds.append((one, two))
                print(f"round {number + 1}  one daemon  {show(one)}", flush=True)
                print(f"         two daemons {show(two)}", flush=True)
            killed = fresh_run(tmp, relay, args, 2, args.victim) if args.victim != "none" else None
    finally:
        relay.close()
    ratios = [two.rate / one.rate for one, two in rounds]
    if rounds:
        one = statistics.median(r[0].rate for r in rounds)
        two = statistics.median(r[1].rate for r in rounds)
        print(f"relay answers each message after {args.delay * 1000:.0f} ms")
        print(f"one daemon      {one:6.1f} msgs/s (median)")
        print(f"two daemons     {two:6.1f} msgs/s (median)")
        print(
            f"ratio           {statistics.median(ratios):6.2f} x one daemon  (rounds: "
            f"{', '.join(f'{x:.2f}' for x in ratios)}; target >= 1.80)"
        )
    if killed is not None:
        print(
            f"{args.victim} killed  {killed.rate:6.1f} msgs/s over the run; lost {killed.lost} (target 0), "
            f"extra {killed.extra} (target 0), duplicated {killed.duplicated} (its last group at most, same Message-IDs), "
            f"per daemon {'/'.join(map(str, killed.shares))}"
        )
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    bad = any(o.lost or o.extra for r in rounds for o in r) or (killed and (killed.lost or killed.extra))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
