"""Issue 27, point 10: units are listed for people in the order the county wrote them (its units
file), not in code-point order of their names (东溪乡, 北山乡, 南塘镇) or ids.

On the real engine (``start_program`` → ``tick`` → ``enqueue`` → ``deliver``) into a maildir read back
from the ``.eml`` files: the office's before-start summary and its attached spreadsheet, an
escalation's list of late units, and the office's board.
"""

from __future__ import annotations

import asyncio
import io
from datetime import date
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from engine_support import local
from openpyxl import load_workbook
from sqlmodel import Session
from support import plan_toml, sqlite_engine, task, unit, units_toml, workflow, write_bundle

from notifications.transport import MaildirTransport
from orchestrator.admin.acting import Desk
from orchestrator.admin.office_views import board, unacknowledged
from orchestrator.engine.clock import FakeClock
from orchestrator.engine.outbox import deliver, enqueue
from orchestrator.engine.programs import start_program
from orchestrator.engine.tick import tick
from orchestrator.service.config import Settings
from orchestrator.service.runtime import make_renderer, send_policy
from orchestrator.store.db import transaction

# The county's order; by name it would be 东溪乡, 北山乡, 南塘镇; by id 北山乡 (town-a), 南塘镇, 东溪乡.
FILE_ORDER = ["南塘镇", "东溪乡", "北山乡"]
UNITS = units_toml(
    unit("office", "县政府办公室", "office"),
    unit("town-b", "南塘镇", "town"),
    unit("town-c", "东溪乡", "town"),
    unit("town-a", "北山乡", "town"),
)
PLAN = plan_toml(
    workflow(
        "order", "排序测试方案", contact="role:office", escalation=[{"after": "1wd", "to": "role:office"}]
    ),
    tasks=[task("T1", "报送实施方案", due="06-10", lead=["role:office"], responsible=["role:town"])],
)


def run(folder: Path, start, *at) -> tuple:
    """Start the plan at ``start``; then tick, queue and send at each of ``at``; the engine and bundle."""
    bundle = write_bundle(folder / "files", PLAN, UNITS)
    bundles = {"order": bundle}
    engine = sqlite_engine(folder)
    settings = Settings()
    with transaction(engine) as session:
        start_program(session, bundle, 2026, start)
    policy, renderer = send_policy(settings, bundles), make_renderer(settings)
    for now in at:
        tick(engine, now, policy)
        enqueue(engine, now, bundles, renderer)
        transport = MaildirTransport(folder / "mail")
        asyncio.run(deliver(engine, FakeClock(now), transport, renderer, bundles, settings.mail))
    return engine, bundle


def office_mail(folder: Path, subject: str):
    mails = [
        message_from_bytes(p.read_bytes(), policy=default) for p in (folder / "mail" / "new").glob("*.eml")
    ]
    found = [m for m in mails if subject in str(m["Subject"]) and "office@" in str(m["To"])]
    assert len(found) == 1, [str(m["Subject"]) for m in mails]
    return found[0]


def order_in(text: str) -> list[str]:
    """The towns in the order ``text`` first names them."""
    return sorted(FILE_ORDER, key=text.index)


def test_the_before_start_summary_and_its_spreadsheet_list_units_in_the_files_order(tmp_path: Path) -> None:
    engine, _ = run(tmp_path, local(2026, 6, 17, 15, 0), local(2026, 6, 17, 15, 0))  # a Wednesday
    summary = office_mail(tmp_path, "启用前已到期")
    body = summary.get_body(("plain",)).get_content()
    assert order_in(body) == FILE_ORDER, body
    html = summary.get_body(("html",)).get_content()
    assert order_in(html) == FILE_ORDER
    (sheet,) = [part for part in summary.iter_attachments() if part.get_filename().endswith(".xlsx")]
    rows = list(load_workbook(io.BytesIO(sheet.get_content())).active.iter_rows(values_only=True))
    column = rows[0].index("责任单位")
    assert [row[column] for row in rows[1:]] == FILE_ORDER
    engine.dispose()


def test_an_escalations_late_units_are_listed_in_the_files_order(tmp_path: Path) -> None:
    engine, _ = run(tmp_path, local(2026, 6, 1, 9, 0), local(2026, 6, 1, 9, 0), local(2026, 6, 12, 9, 0))
    escalation = office_mail(tmp_path, "催办")
    body = escalation.get_body(("plain",)).get_content()
    late = body[body.index("3个单位逾期") :]
    assert order_in(late) == FILE_ORDER, body
    html = escalation.get_body(("html",)).get_content()
    assert order_in(html[html.index("3个单位逾期") :]) == FILE_ORDER
    engine.dispose()


@pytest.mark.parametrize("view", ["board", "unacknowledged"])
def test_the_office_lists_units_in_the_files_order(tmp_path: Path, view: str) -> None:
    engine, bundle = run(tmp_path, local(2026, 6, 1, 9, 0), local(2026, 6, 12, 9, 0))
    desk = Desk({"order": bundle})
    with Session(engine) as session:
        if view == "board":
            names = [name for _, name in board(session, date(2026, 6, 12), desk=desk).units]
        else:
            names = [row.unit_name for row in unacknowledged(session, desk=desk)]
    assert names == FILE_ORDER
    engine.dispose()
