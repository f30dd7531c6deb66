"""The portal in a real browser: Debian's chromium driven by Playwright, against ``duban web`` run
as a real subprocess (uvicorn) on the test clock, with the daemon's own emails and the real CLI.

1. ``duban run --once`` writes the digests; a unit's link is read from its ``.eml``; the unit opens
   it, sends 办结申请 with a PDF; ``duban review`` lists it, ``duban review approve`` approves it;
   the page says 已办结 and ``duban show`` has the submission time and the file.
2. The office logs in with ``duban web login-link`` (the link's page, then its button), approves an
   extension (the due date moves on the unit's page and the reminders are re-armed) and returns a
   completion with a reason (shown on the unit's page).

Screenshots (390×844, a phone) go to ``$DUBAN_SCREENSHOTS`` when it is set.
"""

from __future__ import annotations

import email
import json
import os
import re
import subprocess
import time
from email import policy
from pathlib import Path

import httpx
import pytest

from tests.conftest import DUBAN
from tests.web_support import OFFICE_EMAIL, PDF, add_web_section, free_port, get

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        found = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield found
        found.close()


@pytest.fixture
def portal(duban_env):
    """The deployment after ``duban run --once``, and ``duban web`` serving it."""
    port = free_port()
    add_web_section(duban_env, port)
    done = duban_env.cli("run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    process = subprocess.Popen(
        [DUBAN, "--config", str(duban_env.config_path), "web"],
        env=duban_env.base_env(),
        cwd=duban_env.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            get(f"{base}/static/duban.css", timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"duban web did not start: {process.communicate()[0]}") from None
            time.sleep(0.1)
    duban_env.web_url = base
    yield duban_env
    process.terminate()
    process.communicate(timeout=10)


def link_in_mail(env, address: str) -> str:
    """The personal link in the newest digest to ``address`` that the daemon wrote."""
    for path in sorted((env.maildir / "new").iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if address not in str(message["To"]):
            continue
        text = message.get_body(preferencelist=("plain",)).get_content()
        found = re.search(r"https?://\S+/u/[A-Za-z0-9._-]+", text)
        if found:
            return found.group(0)
    raise AssertionError(f"no digest with a link to {address} in {env.maildir / 'new'}")


def shoot(page, name: str) -> None:
    folder = os.environ.get("DUBAN_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def review_rows(env) -> list[dict]:
    listed = env.cli("review", "--json")
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]


def test_a_unit_completes_from_its_email_link_and_the_cli_approves(portal, browser, tmp_path):
    env = portal
    link = link_in_mail(env, "town00@example.gov.cn")
    assert link.startswith(env.web_url + "/u/")
    page = browser.new_page(viewport=PHONE)
    page.goto(link)
    assert page.locator("h1").inner_text() == "第0镇人民政府"
    shoot(page, "unit-page")
    card = page.locator("section.item", has_text="报送工作总结")
    card.locator("summary", has_text="办结申请").click()
    card.locator("textarea[name=note]").first.fill("已报送，文号：X政办〔2026〕12号")
    pdf = tmp_path / "工作总结.pdf"
    pdf.write_bytes(PDF)
    card.locator("form[action$='/complete'] input[type=file]").set_input_files(str(pdf))
    card.locator("button", has_text="提交办结申请").click()
    page.wait_for_url(re.compile(r"\?ok=complete"))
    assert "办结申请已提交" in page.locator(".notice.ok").inner_text()
    assert "待审核" in page.locator("section.item", has_text="报送工作总结").inner_text()
    shoot(page, "unit-submitted")

    (row,) = review_rows(env)
    assert row["kind"] == "completion" and row["unit"] == "town-00"
    assert row["files"][0]["size"] == len(PDF)
    approved = env.cli("review", "approve", str(row["id"]))
    assert approved.returncode == 0, approved.stderr

    page.reload()
    card = page.locator("section.item", has_text="报送工作总结")
    assert "已办结" in card.inner_text()
    assert "green" in card.get_attribute("class")
    shoot(page, "unit-done")
    shown = env.cli("show", row["obligation"].lstrip("#"), "--json")
    assert shown.returncode == 0, shown.stderr
    story = json.loads(shown.stdout)
    assert story["obligation"]["state"] == "done"
    assert story["obligation"]["done_at"].startswith("2026-06-10T09:3")  # the submission time
    assert "工作总结.pdf" in shown.stdout
    page.close()


def test_the_office_logs_in_approves_an_extension_and_returns_a_completion(portal, browser, tmp_path):
    env = portal
    # two units ask, through their pages
    unit1 = browser.new_page(viewport=PHONE)
    unit1.goto(link_in_mail(env, "town01@example.gov.cn"))
    card = unit1.locator("section.item", has_text="报送工作总结")
    card.locator("summary", has_text="延期申请").click()
    card.locator("input[name=until]").fill("2026-07-15")
    card.locator("form[action$='/extend'] textarea").fill("需等待上级批复")
    card.locator("button", has_text="提交延期申请").click()
    unit1.wait_for_url(re.compile(r"\?ok=extend"))
    unit2 = browser.new_page(viewport=PHONE)
    unit2.goto(link_in_mail(env, "town02@example.gov.cn"))
    card = unit2.locator("section.item", has_text="报送工作总结")
    card.locator("summary", has_text="办结申请").click()
    card.locator("form[action$='/complete'] textarea").fill("已完成")
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(PDF)
    card.locator("form[action$='/complete'] input[type=file]").set_input_files(str(pdf))
    card.locator("button", has_text="提交办结申请").click()
    unit2.wait_for_url(re.compile(r"\?ok=complete"))

    # the office
    made = env.cli("web", "login-link", OFFICE_EMAIL)
    assert made.returncode == 0, made.stderr
    login = made.stdout.strip()
    assert login.startswith(env.web_url + "/office/login/")
    office = browser.new_page(viewport=PHONE)
    office.goto(login)  # a page with one button (opening the link uses nothing up)
    assert "以 " + OFFICE_EMAIL + " 登录" in office.content()
    shoot(office, "office-login")
    office.locator("button", has_text="登录").click()
    office.wait_for_url(env.web_url + "/office")
    assert "待审核（2 项）" in office.content()
    shoot(office, "office-board")
    extension = office.locator("section.item", has_text="延期申请")
    extension.locator("input[name=until]").fill("2026-07-20")  # the office grants another date
    extension.locator("button", has_text="通过").click()
    office.wait_for_url(re.compile(r"\?ok=approved"))
    completion = office.locator("section.item", has_text="办结申请")
    with office.expect_download() as download:
        completion.locator("a[href*='/office/evidence/']").click()
    assert download.value.suggested_filename == "a.pdf"
    completion.locator("button", has_text="退回").click()  # no reason: the browser refuses (required)
    assert "?ok=returned" not in office.url
    completion.locator("textarea[name=reason]").fill("佐证材料缺少盖章页，请补充后重新提交。")
    completion.locator("button", has_text="退回").click()
    office.wait_for_url(re.compile(r"\?ok=returned"))
    assert "没有待审核的申请" in office.content()
    shoot(office, "office-after")

    unit1.reload()
    card = unit1.locator("section.item", has_text="报送工作总结")
    assert "2026年7月20日（周一）" in card.inner_text() and "已延期" in card.inner_text()
    oid = env.scalar("SELECT id FROM obligation WHERE unit = 'town-01' AND task = 'T2'")
    assert env.scalar("SELECT due FROM obligation WHERE id = :i", i=oid) == "2026-07-20"
    reminders = env.rows(
        "SELECT \"on\" FROM timer WHERE obligation_id = :i AND kind = 'reminder' AND fired_at IS NULL", i=oid
    )
    assert ("2026-07-17",) in reminders  # -1wd before Monday 07-20 is Friday 07-17
    unit2.reload()
    card = unit2.locator("section.item", has_text="报送工作总结")
    assert "佐证材料缺少盖章页" in card.locator(".word").inner_text()
    assert "yellow" in card.get_attribute("class") or "red" in card.get_attribute("class")
    shoot(unit2, "unit-returned")
