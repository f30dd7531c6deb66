"""The scorecard report: one self-contained HTML file, checked in headless Chromium (DOM, A4 PDF,
screenshot), and the evaluate phase's email that carries it (a real aiosmtpd server).

Uses the small plan of ``test_scoring`` lived through 2026, whose scores are counted by hand there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import pytest
from smtp_server import SmtpServer
from sqlmodel import Session, select
from test_scoring import EVALUATION_DAY, cli, deploy, live_the_year, local, year  # noqa: F401

from notifications.render import Renderer
from notifications.report import render_scorecard_html, render_summary, timeline
from notifications.transport import SmtpTransport
from orchestrator.engine.clock import FakeClock
from orchestrator.engine.outbox import deliver, enqueue
from orchestrator.evaluation.scoring import scorecard_attachment
from orchestrator.service.config import MailSettings
from orchestrator.store.models import Obligation, OutboxMessage
from workflows.catalog import BUILTIN_DEFINITIONS, load_bundle
from workflows.plan import plan

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parent.parent
HAND_COUNTED = {"town-a": "100.00", "town-c": "69.00", "town-b": "33.34"}
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (apt-get install chromium): /usr/bin/chromium renders the report",
)


@pytest.fixture(scope="module")
def report(year, tmp_path_factory) -> Path:  # noqa: F811
    """``duban scorecard --format html --out FILE`` for 21 December."""
    out = tmp_path_factory.mktemp("report") / "考评.html"
    code, stdout, err = cli(
        year.config, "scorecard", "--as-of", "2026-12-21", "--format", "html", "--out", str(out)
    )
    assert code == 0, err
    assert "3 个单位" in stdout
    return out


# -- the file itself -------------------------------------------------------------------------


def test_the_report_is_one_self_contained_file(report):
    html = report.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and '<html lang="zh-CN">' in html
    for outside in ("<script", "<link", "<img", "<iframe", "src=", "url(", "@import", "http://", "https://"):
        assert outside not in html, outside
    assert "@page { size: A4" in html and "@media print" in html
    assert "break-inside: avoid" in html  # table rows are not split across pages
    assert html.count("<svg") >= 1 + 3 + 2  # the timeline, a bar per unit, a bar per indicator
    for text in ("考评测试方案", "2026年度综合考评评分表", "2026年12月21日（周一）", "甲镇", "乙镇", "丙镇"):
        assert text in html, text


def test_data_is_escaped(year):  # noqa: F811
    data = year.scorecard().as_json()
    data["units"][0]["name"] = '<script>alert("x")</script>&'
    data["units"][0]["late"] = [
        {"kind": "late", "ref": "#1", "task": "A1", "indicator": None, "title": "<b>标题</b>", "section": "甲",
         "occurrence": None, "due": "2026-06-10", "done_on": "2026-06-12", "late_days": 2, "reason": None}
    ]  # fmt: skip
    html = render_scorecard_html(data)
    assert "<script>" not in html and "<b>标题</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;" in html
    assert "&lt;b&gt;标题&lt;/b&gt;" in html


def test_the_timeline_marks_the_phases_and_the_evaluation_day(year):  # noqa: F811
    line = timeline(year.scorecard().as_json())
    assert [lane.name for lane in line.lanes] == ["实施阶段", "考评阶段"]
    assert [label for _, label in line.months] == ["6月", "7月", "8月", "9月", "10月", "11月", "12月"]
    work, evaluate = line.lanes
    assert work.x < evaluate.x < line.today_x < evaluate.x + evaluate.width  # 12-21 is inside 12-01…12-30
    assert line.today_label == "考评日 12月21日"
    assert [dot.late for dot in line.dots] == [False, False, False, True]  # 丙镇's D1 (12-10) is not done


def test_the_summary_for_the_email_body(year):  # noqa: F811
    text = render_summary(year.scorecard().as_json())
    assert text.splitlines()[0] == (
        "截至2026年12月21日（周一），考评测试方案2026年度综合考评共评3个单位："
        "优秀1个，良好0个，合格1个，不合格1个；平均得分67.45分。"
    )
    for line in ("1. 甲镇 100.00分（优秀）", "2. 丙镇 69.00分（合格）", "3. 乙镇 33.34分（不合格）"):
        assert line in text.splitlines()
    assert "应完成事项11项，按期完成7项（63.64%），逾期完成3项，尚未完成1项，免除1项" in text


# -- in a browser ------------------------------------------------------------------------------


def chromium(tmp: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing may come from the network
        f"--user-data-dir={tmp / 'profile'}", *args, url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, timeout=180)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-2000:]
    return done


def has_cjk_font() -> bool:
    if not shutil.which("fc-list"):
        return False
    return bool(subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout.strip())


def page_sizes(pdf: Path) -> list[tuple[float, float]]:
    """Each page's size in points: from ``pdfinfo`` (poppler-utils) when installed, else the file."""
    if shutil.which("pdfinfo"):
        out = subprocess.run(
            ["pdfinfo", "-f", "1", "-l", "999", str(pdf)], capture_output=True, text=True, check=True
        ).stdout
        return [
            (float(w), float(h)) for w, h in re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts", out)
        ]
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.read_bytes())
    return [(float(w), float(h)) for w, h in boxes]


@needs_chromium
@pytest.mark.browser
def test_chromium_shows_every_unit_with_its_hand_counted_score(report, tmp_path):
    dom = chromium(tmp_path, report.as_uri(), "--dump-dom").stdout.decode("utf-8")
    scores = dict(re.findall(r'<td class="score" data-unit="([^"]+)">([\d.]+)</td>', dom))
    assert scores == HAND_COUNTED
    ranking = re.findall(r'<td class="name">([^<]+)</td>', dom)[:3]
    assert ranking == ["甲镇", "丙镇", "乙镇"]
    for text in ("考评日 12月21日", "优秀", "合格", "不合格", "本年度无专项检查任务", "投诉按时办结率"):
        assert text in dom, text


@needs_chromium
@pytest.mark.browser
def test_chromium_prints_it_on_a4_pages(report, tmp_path):
    pdf = tmp_path / "report.pdf"
    chromium(tmp_path, report.as_uri(), "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    assert pdf.read_bytes().startswith(b"%PDF")
    sizes = page_sizes(pdf)
    assert sizes, "no page found in the PDF"
    for width, height in sizes:  # A4 is 210 × 297 mm = 595.28 × 841.89 pt
        assert abs(width - 595.3) < 1.5 and abs(height - 841.9) < 1.5, (width, height)
    if shutil.which("pdftotext") and has_cjk_font():  # without a CJK font the PDF has no Chinese glyphs
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        for name in ("甲镇", "乙镇", "丙镇", "33.34"):
            assert name in text, name


@needs_chromium
@pytest.mark.browser
def test_chromium_takes_a_screenshot(report, tmp_path):
    shot = tmp_path / "report.png"
    chromium(
        tmp_path, report.as_uri(), "--hide-scrollbars", "--window-size=1100,1500", f"--screenshot={shot}"
    )
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1100, 1500)
    assert len(data) > 20_000  # a rendered page, not a blank one


# -- the evaluate phase sends it ---------------------------------------------------------------


def parts(message: EmailMessage) -> dict[str, EmailMessage]:
    found = {}
    for part in message.walk():
        if part.get_filename():
            found[part.get_filename()] = part
        elif part.get_content_type() in ("text/plain", "text/html") and part.get_content_type() not in found:
            found[part.get_content_type()] = part
    return found


async def test_the_evaluate_phase_emails_the_scorecard_to_the_office(tmp_path):
    site = deploy(tmp_path / "site")
    live_the_year(site)  # ticks on 21 December too: the scorecard timer ([evaluation] send_on) fires
    now = local(EVALUATION_DAY, 10)
    bundles = {"mini-eval": site.bundle}
    renderer = Renderer(
        sender="督办系统 <duban@example.gov.cn>", domain="duban.test", timezone="Asia/Shanghai"
    )
    assert enqueue(site.engine, now, bundles, renderer) > 0
    with SmtpServer() as server:
        transport = SmtpTransport(
            host=server.host, port=server.port, security="none", local_hostname="duban.test"
        )
        sent = await deliver(
            site.engine,
            FakeClock(now),
            transport,
            renderer,
            bundles,
            MailSettings(),
            scorecard=scorecard_attachment,
        )
        again = await deliver(
            site.engine,
            FakeClock(now),
            transport,
            renderer,
            bundles,
            MailSettings(),
            scorecard=scorecard_attachment,
        )
    assert sent.sent > 0 and sent.failed == 0 and again.sent == 0
    to_office = [r.message for r in server.received if r.rcpt_tos == ["office@example.gov.cn"]]
    scorecards = [m for m in to_office if "综合考评" in m["Subject"]]
    assert len(scorecards) == 1
    message = scorecards[0]
    assert message["Subject"] == "【督办通知】考评测试方案：综合考评结果"
    found = parts(message)
    body = found["text/plain"].get_content()
    for line in ("1. 甲镇 100.00分（优秀）", "2. 丙镇 69.00分（合格）", "3. 乙镇 33.34分（不合格）"):
        assert line in body
    assert "平均得分67.45分" in found["text/html"].get_content()
    attachment = found["scorecard-mini-eval-2026-20261221.html"]
    assert attachment.get_content_type() == "text/html"
    html = attachment.get_content()
    assert dict(re.findall(r'<td class="score" data-unit="([^"]+)">([\d.]+)</td>', html)) == HAND_COUNTED
    with Session(site.engine) as session:
        row = session.exec(select(OutboxMessage).where(OutboxMessage.subject == message["Subject"])).one()
        assert (row.state, row.recipient, row.send_date) == ("sent", "office", EVALUATION_DAY)
        # the office's own duty (D1, the year's report) is tracked like any other obligation
        office_duty = session.exec(select(Obligation).where(Obligation.unit == "office")).one()
        assert (office_duty.task, office_duty.state, office_duty.done_late) == ("D1", "done", False)


def test_the_pilots_report_to_the_province_is_a_tracked_duty():
    bundle = load_bundle(
        BUILTIN_DEFINITIONS / "rule_of_law_pilot.toml",
        REPO / "examples" / "units.example.toml",
        {"normative_documents": REPO / "examples" / "normative_documents.example.csv"},
        on_assumed=lambda _year, _message: None,
    )
    d15 = [
        o for o in plan(bundle.definition, bundle.units.directory, 2026, bundle.calendar) if o.task == "D15"
    ]
    assert {(o.unit, o.due) for o in d15} == {
        ("county-legal-office", date(2026, 12, 30)),
        ("county-government-office", date(2026, 12, 30)),
    }
    evaluation = bundle.definition.evaluation
    assert (str(evaluation.send_on), evaluation.recipients) == ("12-21", ["role:leading_group_office"])


def test_an_empty_scorecard_still_renders():
    data = {
        "workflow": "w", "title": "空方案", "year": 2026, "as_of": "2026-03-01",
        "weights": {"on_time": 50, "timeliness": 20, "indicators": 30},
        "bands": [{"name": "合格", "min": 60}, {"name": "不合格", "min": 0}], "late_days_full_penalty": 20,
        "phases": [], "deadlines": [], "units": [], "sections": [], "indicators": [],
        "overall": {"score": None, "band": None, "tally": {k: 0 for k in (
            "counted", "on_time", "done_late", "not_done", "overdue", "waived", "late_days",
            "indicators", "met", "not_met", "missing")}},
    }  # fmt: skip
    html = render_scorecard_html(data)
    assert "空方案" in html and "本方案未设定量化指标" in html and "考评日 3月1日" in html
    assert "共评0个单位" in render_summary(data)
