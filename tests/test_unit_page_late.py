"""Issue 27, point 11: a unit's page explains what it was never told.

The pilot started late (2 December 2026, ``test_late_start``'s day) on a real SQLite file, with a
register in which the county's human resources bureau has two normative documents to review: one
due 2026-06-30 (before the start), one 2026-12-31. ``duban web``'s app is served by a real uvicorn
(and looked at by a real chromium in ``test_web_browser``'s way, 390×844):

- what fell due before duban notified anyone reads 「启用前已到期，待办公室核实」 in grey — not a red
  「已逾期190天」 card each — until the office records it; the office's board is grey there too;
- a register-anchored item names its document (涉及文件) and a dated occurrence its period (期次),
  on the page and in the calendar feed, as the emails do: the two reviews are told apart.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import date
from pathlib import Path

import pytest
from icalendar import Calendar
from sqlmodel import Session, select

from orchestrator.admin import links, operations
from orchestrator.admin.portal_views import Colour, colour_of
from orchestrator.engine.clock import ShiftedClock
from orchestrator.engine.programs import start_program
from orchestrator.engine.tick import tick
from orchestrator.service.config import load_settings
from orchestrator.service.runtime import load_bundle_for, send_policy
from orchestrator.store.db import make_engine, transaction, upgrade
from orchestrator.store.models import Obligation
from orchestrator.web.server import make_portal
from tests.engine_support import local
from tests.smtp_server import bound_socket
from tests.web_support import OFFICE_EMAIL, PortalServer, get

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = "rule-of-law-pilot"
START = local(2026, 12, 2, 15, 0)
NOW = local(2026, 12, 4, 10, 0)
UNIT = "county-human-resources-bureau"
EARLY_DOC = "县人社发〔2023〕2号 县就业创业补贴资金管理办法"
LATE_DOC = "县人社发〔2024〕8号 县技能人才评价管理办法"
REGISTER = (
    "id,title,unit,expires_on\n"
    f"rs-2023-02,{EARLY_DOC},{UNIT},2026-06-30\n"
    f"rs-2024-08,{LATE_DOC},{UNIT},2026-12-31\n"
)


def write_config(folder: Path, port: int) -> Path:
    (folder / "docs.csv").write_text(REGISTER, encoding="utf-8")
    (folder / "web-secret").write_text("k" * 48 + "\n", encoding="utf-8")
    config = folder / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{folder / "duban.db"}"\n\n'
        f'[definitions]\nunits = "{REPO / "examples/units.example.toml"}"\n\n'
        f'[registers]\nnormative_documents = "{folder / "docs.csv"}"\n\n'
        f'[mail]\ntransport = "maildir"\nmaildir = "{folder / "mail"}"\n\n'
        f'[web]\nlisten = "127.0.0.1:{port}"\nbase_url = "http://127.0.0.1:{port}"\n'
        f'secret_file = "{folder / "web-secret"}"\nevidence_dir = "{folder / "evidence"}"\n'
        f'office_emails = ["{OFFICE_EMAIL}"]\n\n'
        f'[[programs]]\nworkflow = "{WORKFLOW}"\nyear = 2026\n',
        encoding="utf-8",
    )
    return config


@pytest.fixture(scope="module")
def started(tmp_path_factory) -> Path:
    """The program started late and its first tick run: the database, made once."""
    folder = tmp_path_factory.mktemp("late-page")
    settings = load_settings(write_config(folder, 1), required=True)
    bundle = load_bundle_for(settings, WORKFLOW, on_assumed=lambda *_: None)
    engine = make_engine(settings.database.url, create_dir=True)
    upgrade(engine)
    with transaction(engine) as session:
        start_program(session, bundle, 2026, START)
    tick(engine, START, send_policy(settings, {WORKFLOW: bundle}))
    engine.dispose()
    return folder / "duban.db"


class Site:
    def __init__(self, folder: Path, server: PortalServer) -> None:
        self.folder, self.server = folder, server
        self.portal = server.portal

    def link(self, unit: str = UNIT) -> str:
        with Session(self.portal.engine) as session:
            return links.link_for_unit("k" * 48, self.server.url, session, unit, now=NOW)

    def obligations(self) -> list[Obligation]:
        with Session(self.portal.engine) as session:
            return list(session.exec(select(Obligation).where(Obligation.unit == UNIT)))


@pytest.fixture
def site(started, tmp_path: Path):
    shutil.copy(started, tmp_path / "duban.db")
    sock = bound_socket()  # (bound here and handed to the server: no other worker can take the port)
    settings = load_settings(write_config(tmp_path, sock.getsockname()[1]), required=True)
    server = PortalServer(make_portal(settings, clock=ShiftedClock(NOW)), sock).start()
    yield Site(tmp_path, server)
    server.stop()
    server.portal.engine.dispose()


def cards(html: str) -> dict[int, str]:
    """Each obligation's card on the unit's page: id → its HTML."""
    return {
        int(m.group(1)): m.group(0)
        for m in re.finditer(r'<section class="item \w+" id="o(\d+)">.*?</section>', html, re.S)
    }


# -- the one rule --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "due", "notify_from", "expected"),
    [
        ("overdue", date(2026, 6, 30), date(2026, 12, 2), True),
        ("open", date(2026, 12, 1), date(2026, 12, 2), True),
        ("overdue", date(2026, 12, 2), date(2026, 12, 2), False),  # due on the day: units were told
        ("done", date(2026, 6, 30), date(2026, 12, 2), False),  # recorded by the office
        ("waived", date(2026, 6, 30), date(2026, 12, 2), False),
        ("submitted", date(2026, 6, 30), date(2026, 12, 2), False),  # the unit answered: in review
        ("overdue", date(2026, 6, 30), None, False),  # no notify-from: started on time
    ],
)
def test_before_start_is_one_rule_and_the_colour_function_asks_it(state, due, notify_from, expected):
    from orchestrator.admin.portal_views import before_start

    assert before_start(state, due, notify_from) is expected
    colour = colour_of(
        state, due, date(2026, 12, 4), returned=False, workdays_left=0, notify_from=notify_from
    )
    if expected:
        assert colour == Colour.GREY
    else:
        assert colour == colour_of(state, due, date(2026, 12, 4), returned=False, workdays_left=0)


# -- the unit's page and the office's board --------------------------------------------------------


def test_what_fell_due_before_the_start_is_grey_and_says_so_until_the_office_records_it(site) -> None:
    obligations = site.obligations()
    early = [o for o in obligations if o.due < date(2026, 12, 2) and o.state == "overdue"]
    assert len(early) > 5
    answer = get(site.link())
    assert answer.status_code == 200
    page = cards(answer.text)
    for o in early:
        card = page[o.id]
        assert card.startswith('<section class="item grey"'), card[:200]
        assert '<span class="badge grey">灰</span><span class="state">启用前已到期，待办公室核实' in card
        assert "已逾期" not in card  # not 「已逾期157天」
        assert "督办系统自2026年12月2日（周三）起发送通知" in card
    assert "已逾期" not in answer.text
    assert f"其中启用前已到期、待督办办公室核实的 {len(early)} 项列在最后（灰色）" in answer.text
    later = [o for o in obligations if o.due >= date(2026, 12, 2) and o.state in ("open", "pending")]
    assert later and all('class="item grey"' not in page[o.id][:40] for o in later)
    # the grey cards come after the ones the unit is being told about
    order = [int(i) for i in re.findall(r'<section class="item \w+" id="o(\d+)">', answer.text)]
    assert order.index(early[0].id) > max(order.index(o.id) for o in later)

    # the office records one (an import of what really happened): it is done, green, no longer grey
    with transaction(site.portal.engine) as session:
        operations.mark_done(
            session,
            early[0].id,
            evidence="县人社发〔2026〕1号",
            now=NOW,
            actor="clerk",
            done_on=date(2026, 6, 5),
        )
    card = cards(get(site.link()).text)[early[0].id]
    assert card.startswith('<section class="item green"') and "已办结" in card and "启用前" not in card


def test_the_office_board_is_grey_where_the_unit_page_is(site) -> None:
    client = site.server.portal  # (the board's view itself: the HTTP login is tested elsewhere)
    from orchestrator.admin.office_views import board

    with Session(client.engine) as session:
        grid = board(session, date(2026, 12, 4), desk=client.desk, unit=UNIT)
    colours = {task: cell.colour for (unit, task), cell in grid.cells.items() if unit == UNIT}
    by_task: dict[str, list[Obligation]] = {}
    for o in site.obligations():
        by_task.setdefault(o.task, []).append(o)
    for task, found in by_task.items():
        if all(o.due < date(2026, 12, 2) and o.state == "overdue" for o in found):
            assert colours[task] == Colour.GREY, task
    assert Colour.RED not in colours.values()


def test_each_register_item_names_its_document_and_a_dated_one_its_period(site) -> None:
    page = cards(get(site.link()).text)
    obligations = {(o.task, o.occurrence): o for o in site.obligations()}
    early, late = obligations[("D04", "rs-2023-02")], obligations[("D04", "rs-2024-08")]
    assert f"<dt>涉及文件</dt><dd>{EARLY_DOC}</dd>" in page[early.id]
    assert f"<dt>涉及文件</dt><dd>{LATE_DOC}</dd>" in page[late.id]
    assert "启用前已到期" in page[early.id] and "启用前已到期" not in page[late.id]
    dated = next(o for (task, occurrence), o in obligations.items() if task == "D05")
    year, month = dated.occurrence.split("-")[:2]
    assert f"<dt>期次</dt><dd>{int(year)}年{int(month)}月</dd>" in page[dated.id]


def test_the_calendar_feed_tells_the_two_reviews_apart(site) -> None:
    feed = get(site.link() + "/calendar.ics")
    assert feed.status_code == 200
    calendar = Calendar.from_ical(feed.content)
    entries = [c for c in calendar.walk() if c.name in ("VEVENT", "VTODO")]
    reviews = [e for e in entries if "规范性文件有效期届满前评估" in str(e["SUMMARY"])]
    summaries = sorted(str(e["SUMMARY"]) for e in reviews)
    assert summaries == sorted(
        f"【截止】规范性文件有效期届满前评估：{doc}（县人力资源和社会保障局）"
        for doc in (EARLY_DOC, LATE_DOC)
    )
    for entry in reviews:
        doc = EARLY_DOC if EARLY_DOC in str(entry["SUMMARY"]) else LATE_DOC
        assert f"涉及文件：{doc}" in str(entry["DESCRIPTION"])
    dated = next(e for e in entries if "期次：" in str(e["DESCRIPTION"]))
    assert re.search(r"：\d{4}年\d{1,2}月（", str(dated["SUMMARY"]))


# -- in a browser, on a phone -----------------------------------------------------------------------


@pytest.mark.browser
def test_the_page_on_a_phone(site) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(site.link())
        grey = page.locator("section.item.grey").first
        assert "启用前已到期，待办公室核实" in grey.locator(".state").inner_text()
        badge = grey.locator(".badge")
        colours = badge.evaluate("e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]")
        assert colours[0] != colours[1]  # a visible badge: its word on its own background
        review = page.locator("section.item", has_text=LATE_DOC)
        assert review.is_visible() and "涉及文件" in review.inner_text()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing wider than the phone
        folder = os.environ.get("DUBAN_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / "unit-before-start.png"), full_page=True)
            page.screenshot(path=str(Path(folder) / "unit-before-start-top.png"))
            grey.screenshot(path=str(Path(folder) / "unit-before-start-card.png"))
            review.screenshot(path=str(Path(folder) / "unit-register-card.png"))
        browser.close()


# -- point 12: the portal's front page --------------------------------------------------------------


def test_the_front_page_says_where_to_go(site) -> None:
    """``/`` was the 404 of an unknown path: an administrator who opens the portal's address sees
    where units and the office go, with the same security headers as every page."""
    answer = get(site.server.url + "/")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    text = answer.text
    assert "<h1>督办系统</h1>" in text
    assert "通知邮件中本单位的专用链接" in text and '<a href="/office">督办办公室登录</a>' in text
    unknown = get(site.server.url + "/nothing-here")
    assert unknown.status_code == 404
    for name in (
        "content-security-policy",
        "x-frame-options",
        "x-content-type-options",
        "referrer-policy",
        "cache-control",
    ):
        assert answer.headers[name] == unknown.headers[name], name
    assert get(site.server.url + "/office").status_code == 200  # where the link goes: the login page
