"""Issue 13: a county starts duban in the middle of its plan year (the pilot, 2 December 2026).

On the real engine (``start_program`` → ``tick`` → ``enqueue`` → ``deliver``) with the test clock, on
a real SQLite file (and PostgreSQL where the store changed: ``program.notify_from``), into a maildir
read back from the ``.eml`` files: each unit gets at most one digest a day, about things still ahead
of it; the office gets one summary of what fell due before the start, with the list attached; that
list, filled in, goes back through ``duban import-status``.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
from collections import Counter
from datetime import date
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import Session, select

from notifications.transport import MaildirTransport
from orchestrator.engine.clock import FakeClock
from orchestrator.engine.outbox import deliver, enqueue
from orchestrator.engine.programs import start_program
from orchestrator.engine.tick import tick
from orchestrator.service.config import load_settings
from orchestrator.service.runtime import load_bundle_for, make_renderer, send_policy
from orchestrator.store.db import make_engine, transaction, upgrade
from orchestrator.store.models import Event, NotificationItem, Obligation, Program
from tests.engine_support import local, postgres_engine

REPO = Path(__file__).resolve().parent.parent
DUBAN = str(Path(sys.executable).with_name("duban"))
WORKFLOW = "rule-of-law-pilot"
START = local(2026, 12, 2, 15, 0)  # a Wednesday afternoon
MORNING = local(2026, 12, 3, 9, 0)
OFFICE = "county-legal-office"  # the pilot's contact (role:leading_group_office)


def _bundle():
    settings = load_settings(REPO / "config.toml", required=True)
    return settings, load_bundle_for(settings, WORKFLOW, on_assumed=lambda *_: None)


def run_late_start(engine, maildir: Path, *, notify_from: date | None = None):
    settings, bundle = _bundle()
    bundles = {WORKFLOW: bundle}
    with transaction(engine) as session:
        start_program(session, bundle, 2026, START, notify_from=notify_from)
    policy = send_policy(settings, bundles)
    renderer = make_renderer(settings)
    for at in (START, MORNING):  # make run, then the next morning's send window
        tick(engine, at, policy)
        enqueue(engine, at, bundles, renderer)
        asyncio.run(
            deliver(engine, FakeClock(at), MaildirTransport(maildir), renderer, bundles, settings.mail)
        )
    return bundle


def inbox(maildir: Path):
    mails = []
    for path in sorted((maildir / "new").glob("*.eml")):
        mails.append((path, message_from_bytes(path.read_bytes(), policy=default)))
    return mails


@pytest.fixture(scope="module")
def late(tmp_path_factory):
    folder = tmp_path_factory.mktemp("late")
    engine = make_engine(f"sqlite:///{folder / 'duban.db'}")
    upgrade(engine)
    bundle = run_late_start(engine, folder / "mail")
    yield engine, bundle, folder
    engine.dispose()


def summary_of(mails):
    found = [(p, m) for p, m in mails if "启用前已到期" in str(m["Subject"])]
    assert len(found) == 1
    return found[0]


def test_units_hear_only_of_what_is_still_ahead_of_them(late) -> None:
    engine, bundle, folder = late
    mails = inbox(folder / "mail")
    per_unit_day = Counter()
    unit_of = {frozenset(u.emails): u.id for u in bundle.units.directory.by_id.values()}
    for _path, message in mails:
        unit = unit_of[frozenset(a.addr_spec for a in message["To"].addresses)]
        if "启用前已到期" not in str(message["Subject"]):
            per_unit_day[(unit, message["Date"].datetime.date())] += 1
    assert per_unit_day and max(per_unit_day.values()) == 1  # at most one digest a unit a day
    with Session(engine) as session:
        sent = session.exec(select(NotificationItem).where(NotificationItem.kind != "before_start")).all()
        assert sent
        # nothing about a date before the start: no overdue, no escalation, no due date in the past
        assert {i.kind for i in sent} <= {"task_opened", "reminder", "due_today", "phase_ending"}
        assert all(i.due is None or i.due >= date(2026, 12, 2) for i in sent)
    sizes = [path.stat().st_size for path, _ in mails]
    assert max(sizes) < 300_000


def test_every_obligation_is_in_its_true_state_and_the_skipped_notices_say_why(late) -> None:
    engine, _bundle, _folder = late
    with Session(engine) as session:
        past = session.exec(select(Obligation).where(Obligation.due < date(2026, 12, 2))).all()
        assert len(past) > 1000
        assert {o.state for o in past} == {"overdue"}
        skipped = session.exec(select(Event).where(Event.kind == "notice.skipped")).all()
        reasons = [e.detail for e in skipped if "早于通知起始日 2026-12-02" in e.detail]
        assert len(reasons) > 100
        program = session.exec(select(Program)).one()
        assert program.notify_from == START


def test_the_office_gets_one_summary_with_the_list_attached(late, tmp_path: Path) -> None:
    engine, _bundle, folder = late
    path, message = summary_of(inbox(folder / "mail"))
    with Session(engine) as session:
        owed = session.exec(
            select(Obligation).where(Obligation.due < date(2026, 12, 2), Obligation.state == "overdue")
        ).all()
    n = len(owed)
    assert str(message["Subject"]) == f"【督办通知】法治政府建设指标体系试点：启用前已到期{n}项"
    assert [a.addr_spec for a in message["To"].addresses] == [
        "fazhiban@example.gov.cn",
        "yifaxingzheng@example.gov.cn",
    ]
    text = message.get_body(("plain",)).get_content()
    assert f"在此之前已到截止日期、尚未记录办结的事项共{n}项" in text
    assert f"其余{n - 30}项见附件" in text and "duban import-status" in text
    html = message.get_body(("html",)).get_content()
    assert html.count('<tr><td valign="top" style="padding:3px 8px;">') == 30  # 30 in full
    attachments = [p for p in message.iter_attachments() if p.get_filename() == "启用前已到期事项.xlsx"]
    assert len(attachments) == 1 and not any(
        p.get_content_type() == "text/calendar" for p in message.iter_attachments()
    )
    sheet = load_workbook(io.BytesIO(attachments[0].get_content())).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:2] == ("事项编号", "任务编号") and "状态" in rows[0]
    assert {int(r[0]) for r in rows[1:]} == {o.id for o in owed}
    assert path.stat().st_size < 300_000


def test_notify_from_an_earlier_day_tells_units_of_what_fell_due_since(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'duban.db'}")
    upgrade(engine)
    run_late_start(engine, tmp_path / "mail", notify_from=date(2026, 11, 25))
    with Session(engine) as session:
        kinds = Counter(i.kind for i in session.exec(select(NotificationItem)))
        summary = session.exec(select(NotificationItem).where(NotificationItem.kind == "before_start")).one()
        listed = {oid for oid, _unit in summary.late}
        late_ids = {o.id for o in session.exec(select(Obligation).where(Obligation.due < date(2026, 11, 25)))}
    assert kinds["overdue"] > 0  # the 11-30 deadlines (after 11-25) are overdue and the units told
    assert listed == late_ids
    engine.dispose()


@pytest.mark.postgres
def test_a_late_start_on_postgresql(tmp_path: Path) -> None:
    with postgres_engine() as engine:
        run_late_start(engine, tmp_path / "mail")
        with Session(engine) as session:
            program = session.exec(select(Program)).one()
            assert program.notify_from == START
            summary = session.exec(
                select(NotificationItem).where(NotificationItem.kind == "before_start")
            ).one()
            assert len(summary.late) > 1000 and summary.recipient == OFFICE
            assert not session.exec(
                select(NotificationItem).where(
                    NotificationItem.kind.in_(("overdue", "escalation")),
                )
            ).all()


# -- the CLI: tasks --before-start, import-status ------------------------------------------------------


def _config(folder: Path) -> Path:
    config = folder / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{folder / "duban.db"}"\n\n'
        f'[definitions]\nunits = "{REPO / "examples/units.example.toml"}"\n\n'
        f'[registers]\nnormative_documents = "{REPO / "examples/normative_documents.example.csv"}"\n\n'
        f'[mail]\ntransport = "maildir"\nmaildir = "{folder / "mail"}"\n\n'
        f'[[programs]]\nworkflow = "{WORKFLOW}"\nyear = 2026\n',
        encoding="utf-8",
    )
    return config


def duban(config: Path, *args: str, now: str = "2026-12-04T10:00:00+08:00") -> subprocess.CompletedProcess:
    env = {"DUBAN_FAKE_NOW": now, "COLUMNS": "200", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(
        [DUBAN, "--config", str(config), *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def started(tmp_path: Path):
    config = _config(tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'duban.db'}", create_dir=True)
    upgrade(engine)
    run_late_start(engine, tmp_path / "mail")
    yield config, engine, tmp_path
    engine.dispose()


def test_tasks_before_start_lists_them(started) -> None:
    config, engine, _folder = started
    result = duban(config, "tasks", "--before-start", "--json")
    assert result.returncode == 0, result.stderr
    with Session(engine) as session:
        past = {o.id for o in session.exec(select(Obligation).where(Obligation.due < date(2026, 12, 2)))}
    import json

    assert {json.loads(line)["id"] for line in result.stdout.splitlines()} == past


def test_the_attached_list_filled_in_goes_back_with_import_status(started) -> None:
    config, engine, folder = started
    _path, message = summary_of(inbox(folder / "mail"))
    attachment = next(p for p in message.iter_attachments() if p.get_filename().endswith(".xlsx"))
    book = load_workbook(io.BytesIO(attachment.get_content()))
    sheet = book.active
    header = [c.value for c in sheet[1]]
    col = {name: header.index(name) + 1 for name in ("事项编号", "状态", "完成日期", "佐证材料", "理由")}
    first, second = int(sheet.cell(2, 1).value), int(sheet.cell(3, 1).value)
    sheet.cell(2, col["状态"]).value = "已完成"
    sheet.cell(2, col["完成日期"]).value = date(2026, 6, 5)
    sheet.cell(2, col["佐证材料"]).value = "县司法局〔2026〕3号"
    sheet.cell(3, col["状态"]).value = "已免除"
    sheet.cell(3, col["理由"]).value = "本单位无此项职能"
    filled = folder / "filled.xlsx"
    book.save(filled)
    result = duban(config, "import-status", str(filled))
    assert result.returncode == 0, result.stderr
    assert "记为已办结 1 项、已免除 1 项" in result.stdout
    with Session(engine) as session:
        done, waived = session.get(Obligation, first), session.get(Obligation, second)
        assert (done.state, done.evidence) == ("done", "县司法局〔2026〕3号")
        assert done.done_at == local(2026, 6, 5) and done.done_late == (date(2026, 6, 5) > done.due)
        assert (waived.state, waived.reason) == ("waived", "本单位无此项职能")
        kinds = [e.kind for e in session.exec(select(Event).order_by(Event.id))][-3:]
        assert kinds == ["obligation.done", "obligation.waived", "import.status"]


def test_a_bad_import_names_every_bad_row_and_changes_nothing(started) -> None:
    config, engine, folder = started
    with Session(engine) as session:
        ids = [o.id for o in session.exec(select(Obligation).where(Obligation.state == "overdue").limit(3))]
    bad = folder / "bad.csv"
    bad.write_text(
        "事项编号,状态,完成日期,佐证材料,理由\n"
        f"{ids[0]},已完成,2026-06-05,文号,\n"  # fine on its own
        f"{ids[1]},已完成,2026-13-01,,\n"  # bad date
        f"{ids[2]},已免除,,,\n"  # no reason
        "999999,done,2026-06-01,,\n"  # unknown
        f"{ids[0]},maybe,,,\n",  # bad state
        encoding="utf-8",
    )
    result = duban(config, "import-status", str(bad))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{bad}:3: 列「完成日期」：「2026-13-01」不是有效日期：没有13月",
        f"{bad}:4: 列「理由」：免除须填写理由（如“本单位无此项职能”）",
        f"{bad}:5: 列「事项编号」：没有编号为 #999999 的事项",
        f"{bad}:6: 列「状态」：「maybe」不是可选的状态：请填写「已办结」或「已免除」（情况不明的留空）",
    ]
    with Session(engine) as session:
        assert {session.get(Obligation, i).state for i in ids} == {"overdue"}
        assert not session.exec(select(Event).where(Event.kind == "import.status")).all()


# -- point 3: no unreadable digest ------------------------------------------------------------------


def test_after_a_long_outage_no_digest_is_unreadable(tmp_path: Path) -> None:
    """Started on 2 January, down until 2 December: the catch-up gives each recipient one digest that
    lists at most 30 items in full (most urgent first), counts the rest and attaches them all; no
    email is over 300 KB; an escalation's calendar holds only the recipient's own to-dos."""
    engine = make_engine(f"sqlite:///{tmp_path / 'duban.db'}")
    upgrade(engine)
    settings, bundle = _bundle()
    bundles = {WORKFLOW: bundle}
    with transaction(engine) as session:
        start_program(session, bundle, 2026, local(2026, 1, 2, 9, 0))
    policy, renderer = send_policy(settings, bundles), make_renderer(settings)
    tick(engine, START, policy)
    enqueue(engine, START, bundles, renderer)
    asyncio.run(
        deliver(
            engine, FakeClock(START), MaildirTransport(tmp_path / "mail"), renderer, bundles, settings.mail
        )
    )
    mails = inbox(tmp_path / "mail")
    assert mails
    assert max(path.stat().st_size for path, _ in mails) < 300_000
    office = [
        m for _p, m in mails if "fazhiban@example.gov.cn" in str(m["To"]) and "催办" in str(m["Subject"])
    ]
    assert len(office) == 1
    message = office[0]
    text = message.get_body(("plain",)).get_content()
    assert "【另有" in text and "项未逐条列出】" in text and "督办事项清单.xlsx" in text
    listed = text.split("【另有")[0]
    assert listed.count("   - ") <= 30  # late units listed in full
    sheet = next(p for p in message.iter_attachments() if p.get_filename() == "督办事项清单.xlsx")
    rows = list(load_workbook(io.BytesIO(sheet.get_content())).active.iter_rows(values_only=True))
    rest = int(text.split("【另有")[1].split("项")[0])
    assert len(rows) - 1 == rest + min(30, len(rows) - 1)  # the whole list, header aside
    calendars = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    for part in calendars:
        body = part.get_content()
        assert body.count("BEGIN:VTODO") <= 30
        assert "县政府法制办" in body or "BEGIN:VTODO" not in body
    engine.dispose()


# -- issue 27, point 12: simulate a late start as it runs ------------------------------------------


def test_simulate_takes_the_configured_year_and_the_late_start(started) -> None:
    """Without --year, the year of the program config declares; without --from, its notify-from day
    (2 December, as the database records the first start): no email of June in the summary, and the
    office's before-start summary in it. --from 2026-01-01 still simulates the whole plan year."""
    config, _engine, _folder = started
    late = duban(config, "simulate", WORKFLOW, "--summary")
    assert late.returncode == 0, late.stderr
    assert "模拟2026年度（配置文件 [[programs]] 中的方案），自2026年12月2日起（该方案的启用日" in late.stderr
    months = set(re.findall(r"\b(20\d\d-\d\d)\b", late.stdout))
    assert months and min(months) == "2026-12", months
    emails = [json.loads(line) for line in duban(config, "simulate", WORKFLOW, "--json").stdout.splitlines()]
    assert min(e["send_at"] for e in emails) >= "2026-12-02"
    assert any(i["kind"] == "before_start" for e in emails for i in e["items"])
    whole = duban(config, "simulate", WORKFLOW, "--year", "2026", "--from", "2026-01-01", "--summary")
    assert whole.returncode == 0, whole.stderr
    assert "2026-06" in whole.stdout and "启用日" not in whole.stderr
