"""Dispatch benchmark: duban's outbox dispatcher against a raw aiosmtplib loop, in one run.

Both send to the same local aiosmtpd server, which runs in a child process (as a real mail
server would: it does not compete with the client for the GIL).

- duban: a generated plan of U units x K tasks is started and ticked to the day the tasks open,
  which writes N = U x (K + 1) + 1 notification items. Timed: ``enqueue`` (the items grouped into
  one digest per unit, with Message-IDs, subjects and audit events) and ``deliver`` (the messages
  claimed, each digest rendered — text, HTML, ``.ics`` — and sent over one SMTP connection, its
  outcome and audit event committed), on a new SQLite file (or a new PostgreSQL schema: ``--db``).
  The digests are rendered in the daemon's render process (notifications/render_pool.py), started
  beforehand as a daemon has it after its first big day; ``--no-render-process``: in this process.
- raw: the very same messages as ``EmailMessage`` objects rendered in this process (checked to be
  byte for byte what duban sent), ``await smtp.send_message(message)`` in a loop over one reused
  aiosmtplib connection: no database, no rendering.

Each round prepares a fresh database, runs duban, then the raw loop — and from the second round on
the raw loop once more right before duban, on the previous round's (identical) messages, so that a
machine whose speed drifts does not tilt the ratio. The medians of the rounds are printed (this
machine may be shared: one round is noisy), with the CPU time this process spent a message (the
server's and the render process's are not counted).

    .venv/bin/python benchmarks/dispatch_bench.py            # 2001 items → 401 digests, 5 rounds
    .venv/bin/python benchmarks/dispatch_bench.py --db postgresql+psycopg://postgres@127.0.0.1:5432/test

Target: duban >= 0.8 x raw. The outcomes are committed by group (``GROUP_SIZE`` messages or
``GROUP_SECONDS``, orchestrator/engine/outbox/deliver.py): a crash re-sends at most one group.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiosmtplib import SMTP  # noqa: E402
from sqlalchemy import create_engine, event, func, select, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from notifications.render import Renderer  # noqa: E402
from notifications.render_pool import AHEAD, RenderPool  # noqa: E402
from notifications.transport import SendResult, SmtpTransport  # noqa: E402
from notifications.wire import to_wire  # noqa: E402
from orchestrator.engine.clock import FakeClock  # noqa: E402
from orchestrator.engine.outbox import deliver, enqueue  # noqa: E402
from orchestrator.engine.outbox.deliver import GROUP_SECONDS, GROUP_SIZE  # noqa: E402
from orchestrator.engine.outbox.letters import load_letters  # noqa: E402
from orchestrator.engine.programs import start_program  # noqa: E402
from orchestrator.engine.tick import tick  # noqa: E402
from orchestrator.engine.window import SendPolicy  # noqa: E402
from orchestrator.service.config import MailSettings  # noqa: E402
from orchestrator.store.db import make_engine, transaction, upgrade  # noqa: E402
from orchestrator.store.models import NotificationItem, OutboxMessage  # noqa: E402
from workflows.catalog import load_bundle  # noqa: E402

HOST = "127.0.0.1"
YEAR = 2026
START = datetime(2026, 5, 20, 0, 0, tzinfo=UTC)
OPEN_DAY = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai, the tasks open that day

SERVER = """
import asyncio, sys
from aiosmtpd.controller import Controller

class Handler:
    received = 0
    async def handle_DATA(self, server, session, envelope):
        Handler.received += 1
        return "250 2.0.0 queued"

controller = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"""


@dataclass
class Figures:
    messages: int
    seconds: float
    cpu: float  # this process's CPU seconds (the server runs in another process)

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.messages * 1000

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def write_plan(folder: Path, units: int, tasks: int) -> tuple[Path, Path]:
    """A plan whose ``tasks`` tasks all open on 06-01 for each of ``units`` units."""
    lines = [
        "[workflow]",
        'id = "bench"',
        'title = "法治政府建设指标体系试点（基准测试）"',
        'reminders = ["-7d", "-1wd"]',
        'contact = "office"',
        "",
        "[[phases]]",
        'id = "implement"',
        'name = "建章立制、组织实施阶段"',
        'start = "06-01"',
        'end = "11-30"',
    ]
    detail = (
        "根据《县人民政府重大行政决策程序规定》精神,制定重大行政决策公示、听证、专家咨询论证、"
        "合法性审查、风险评估、档案管理和档案评查等一系列与之相配套的行政决策制度,"
        "促使行政决策机制进一步健全,并得到有效实施。"
    )
    for number in range(1, tasks + 1):
        lines += [
            "",
            "[[tasks]]",
            f'id = "T{number:02d}"',
            'section = "(一)行政决策法治化"',
            f'title = "建立健全行政决策机制（第{number}项）"',
            f'detail = "{detail}"',
            'phase = "implement"',
            'lead = ["office"]',
            'responsible = ["role:agency"]',
            'deliverable = "本单位实施方案及配套制度"',
        ]
    definition = folder / "bench.toml"
    definition.write_text("\n".join(lines) + "\n", encoding="utf-8")
    units_lines = [
        "[[units]]",
        'id = "office"',
        'name = "县政府法制办"',
        'emails = ["fazhiban@example.gov.cn"]',
        'roles = ["legal_affairs_office"]',
    ]
    for number in range(1, units + 1):
        units_lines += [
            "",
            "[[units]]",
            f'id = "agency-{number:04d}"',
            f'name = "县第{number}行政执法局"',
            f'emails = ["agency{number}@example.gov.cn", "agency{number}.office@example.gov.cn"]',
            'roles = ["agency"]',
        ]
    units_file = folder / "units.toml"
    units_file.write_text("\n".join(units_lines) + "\n", encoding="utf-8")
    return definition, units_file


@dataclass(frozen=True)
class Sent:
    message: EmailMessage
    recipients: tuple[str, ...]


class Recording:
    """The real SMTP transport, keeping each message it was given (for the raw loop)."""

    def __init__(self, inner: SmtpTransport) -> None:
        self.inner = inner
        self.messages: list[Sent] = []

    async def open(self) -> None:
        await self.inner.open()

    async def send(self, message: EmailMessage, recipients) -> SendResult:
        result = await self.inner.send(message, recipients)
        self.messages.append(Sent(message, tuple(recipients)))
        return result

    async def close(self) -> None:
        await self.inner.close()


def prepare(engine: Engine, folder: Path, units: int, tasks: int):
    """Start the plan and tick to 06-01: the items are written, nothing is queued yet."""
    definition, units_file = write_plan(folder, units, tasks)
    bundle = load_bundle(definition, units_file)
    upgrade(engine)
    with transaction(engine) as session:
        start_program(session, bundle, YEAR, START)
    mail = MailSettings(retry_base=60, rate_limit=0)
    policy = SendPolicy(mail.window, {"bench": bundle.calendar}, bundle.calendar)
    tick(engine, OPEN_DAY, policy)
    with engine.connect() as connection:
        items = connection.execute(select(func.count()).select_from(NotificationItem)).scalar_one()
    return {"bench": bundle}, mail, items


def make_renderer() -> Renderer:
    return Renderer(
        sender="督办系统 <duban@example.gov.cn>", domain="duban.example.gov.cn", timezone="Asia/Shanghai"
    )


async def run_duban(engine, bundles, mail, port: int, pool: RenderPool | None) -> tuple[Figures, list, int]:
    renderer = make_renderer()
    transport = Recording(SmtpTransport(host=HOST, port=port, security="none", local_hostname="bench"))
    clock = FakeClock(OPEN_DAY)
    started, cpu = time.perf_counter(), time.process_time()
    queued = enqueue(engine, clock.now(), bundles, renderer)
    report = await deliver(engine, clock, transport, renderer, bundles, mail, limit=100_000, pool=pool)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert report.sent == queued == len(transport.messages), (report, queued)
    return Figures(report.sent, seconds, cpu), transport.messages, queued


def rendered_here(engine, bundles, sent: list) -> list[tuple[EmailMessage, list[str]]]:
    """The raw loop's messages: each digest duban sent, rendered in this process (the very objects
    duban would send without a render process); checked to be byte for byte what duban sent."""
    renderer = make_renderer()
    with engine.connect() as connection:
        ids = dict(connection.execute(select(OutboxMessage.message_id, OutboxMessage.id)).all())
    letters = {x.message_id: x for x in load_letters(engine, list(ids.values()), bundles, None)}
    messages = []
    for message in sent:
        letter = letters[message.message["Message-ID"]]
        assert letter.digest is not None
        made = renderer.render(letter.digest, now=OPEN_DAY, message_id=letter.message_id)
        assert to_wire(made) == to_wire(message.message), f"{letter.message_id}: not the same bytes"
        messages.append((made, list(message.recipients)))
    return messages


async def run_raw(messages, port: int) -> Figures:
    started, cpu = time.perf_counter(), time.process_time()
    async with SMTP(hostname=HOST, port=port, start_tls=False, local_hostname="bench") as smtp:
        for message, recipients in messages:
            await smtp.send_message(message, recipients=recipients)
    return Figures(len(messages), time.perf_counter() - started, time.process_time() - cpu)


def started_pool() -> RenderPool:
    """The daemon's render process, as the daemon has it when mail is due: started and answering."""
    pool = RenderPool()
    pool.start()
    deadline = time.monotonic() + 30
    while not pool.usable:
        assert time.monotonic() < deadline, "the render process did not start"
        time.sleep(0.05)
    return pool


def start_server() -> tuple[subprocess.Popen, int]:
    sys.path.insert(0, str(ROOT / "tests"))
    from smtp_server import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    return server, port


@contextlib.contextmanager
def store(url: str | None, folder: Path) -> Iterator[Engine]:
    """A new SQLite file in ``folder``, or a new schema in the PostgreSQL database ``url`` (dropped after)."""
    if url is None:
        engine = make_engine(f"sqlite:///{folder / 'bench.db'}")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    schema = f"duban_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(url)
    event.listen(engine, "connect", lambda dbapi, _: _search_path(dbapi, schema))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _search_path(dbapi_connection, schema: str) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute(f"SET search_path TO {schema}")
    dbapi_connection.commit()


def one_round(
    url: str | None, folder: Path, args, port: int, pool: RenderPool | None, previous: list | None
) -> tuple[Figures, Figures, int, int, float, list]:
    """Prepare a fresh database, run duban's dispatch on it, then the raw loop on the same messages.

    The raw loop also runs right before duban, on the previous round's messages (every round makes
    the same ones): duban is compared with the raw loops on either side of it, so that a machine
    whose speed drifts (a shared one does) does not tilt the ratio."""
    before = asyncio.run(run_raw(previous, port)) if previous else None
    with store(url, folder) as engine:
        bundles, mail, items = prepare(engine, folder, args.units, args.tasks)
        duban, sent, digests = asyncio.run(run_duban(engine, bundles, mail, port, pool))
        messages = rendered_here(engine, bundles, sent)
    raw = asyncio.run(run_raw(messages, port))
    if before is not None:
        raw = Figures(raw.messages + before.messages, raw.seconds + before.seconds, raw.cpu + before.cpu)
    size = statistics.mean(len(m.as_bytes()) for m, _ in messages[:50])
    return duban, raw, items, digests, size, messages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=400, help="units (one digest each; default 400)")
    parser.add_argument("--tasks", type=int, default=4, help="tasks opening on the day (default 4)")
    parser.add_argument(
        "--db", default=None, help="a PostgreSQL URL: each round in a new schema (default: a new SQLite file)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="duban then raw, this many times (medians)")
    parser.add_argument(
        "--no-render-process",
        action="store_true",
        help="render in the sending process ([mail] render_process = false), not beside it",
    )
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.basicConfig(level=logging.WARNING)
    before = os.getloadavg()[0]  # the machine may be shared: its load, before and after the run
    server, port = start_server()
    pool = None if args.no_render_process else started_pool()
    rounds = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            previous = None
            for number in range(args.rounds):
                folder = Path(tmp) / f"round{number}"
                folder.mkdir()
                rounds.append(one_round(args.db, folder, args, port, pool, previous))
                previous = rounds[-1][-1]
    finally:
        if pool is not None:
            pool.close()
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=10)
    duban = statistics.median(r[0].rate for r in rounds)
    raw = statistics.median(r[1].rate for r in rounds)
    ratios = [r[0].rate / r[1].rate for r in rounds]
    _, _, items, digests, size, _ = rounds[0]
    name = "sqlite" if args.db is None else args.db.split(":", 1)[0]
    load = f"load average {before:.2f} before, {os.getloadavg()[0]:.2f} after"
    print(f"database        {name}  ({os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {load})")
    print(f"groups          outcomes committed every {GROUP_SIZE} messages or {GROUP_SECONDS:g} s")
    where = "in the sending process" if pool is None else f"in a render process, {AHEAD} messages ahead"
    print(f"rendering       {where}")
    print(
        f"items           {items} → {digests} digests (average {size / 1024:.1f} KiB each), {args.rounds} rounds"
    )
    cpu = [statistics.median(r[i].cpu_ms for r in rounds) for i in (0, 1)]
    for label, rate, i in (("duban dispatch", duban, 0), ("raw aiosmtplib", raw, 1)):
        each = ", ".join(f"{r[i].rate:.0f}" for r in rounds)
        print(f"{label}  {rate:8.1f} msgs/s  (median; rounds: {each}; {cpu[i]:.2f} ms CPU a message)")
    print(
        f"ratio           {statistics.median(ratios):8.2f} x raw  (median of the rounds' ratios: "
        f"{', '.join(f'{x:.2f}' for x in ratios)}; target >= 0.80)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
