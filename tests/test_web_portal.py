"""The portal over real HTTP (uvicorn on a free port, httpx): pages, forms, the core behind them."""

from __future__ import annotations

import re

import httpx

from tests.web_support import (  # noqa: F401 (fixtures)
    PDF,
    TIMEOUT,
    WebEnv,
    csrf_for,
    get,
    log_in,
    post,
    web_fixture,
    web_template_fixture,
)


def test_unit_page_lists_the_units_obligations(web: WebEnv):
    page = get(web.unit_link("town-00"))
    assert page.status_code == 200, page.text
    assert "第0镇人民政府" in page.text
    assert "报送实施方案" in page.text
    assert "2026年6月10日（周三）" in page.text and "今日到期" in page.text
    assert "县督查办" in page.text  # the lead unit
    assert "第1镇" not in page.text  # only its own obligations


def test_the_calendar_feed_has_the_units_open_obligations(web: WebEnv):
    feed = get(web.unit_link("town-00") + "/calendar.ics")
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("text/calendar")
    # all-day events by default ([mail] calendar): one per open obligation, the to-do kind off
    assert feed.text.startswith("BEGIN:VCALENDAR") and feed.text.count("BEGIN:VEVENT") == 2
    assert "BEGIN:VTODO" not in feed.text
    assert "报送工作总结" in feed.text


def test_feedback_with_a_file_shows_in_the_history(web: WebEnv):
    link = web.unit_link("town-00")
    oid = web.obligation_id("town-00", "T2")
    token = csrf_for(get(link).text, f"/o/{oid}/feedback")
    sent = post(
        f"{link}/o/{oid}/feedback",
        data={"csrf": token, "note": "初稿已完成，正在征求意见"},
        files=[("files", ("初稿.pdf", PDF, "application/pdf"))],
    )
    assert sent.status_code == 303 and sent.headers["location"].endswith(f"?ok=feedback&o={oid}#o{oid}")
    page = get(link + f"?ok=feedback&o={oid}").text
    assert "反馈已提交" in page and "本单位 · 反馈" in page and "初稿.pdf" in page


def test_an_extension_must_be_later_than_the_due_date(web: WebEnv):
    link = web.unit_link("town-00")
    oid = web.obligation_id("town-00", "T2")
    token = csrf_for(get(link).text, f"/o/{oid}/extend")
    for until, message in (
        ("2026-06-11", "新的截止日期须晚于原截止日期"),
        ("不是日期", "请填写新的截止日期"),
    ):
        sent = post(f"{link}/o/{oid}/extend", data={"csrf": token, "until": until, "note": "理由"})
        assert sent.status_code == 400 and message in sent.text
    assert web.count("submission") == 0


def test_the_board_filters_by_unit(web: WebEnv):
    client = web.office_client()
    board = client.get(f"{web.url}/office", params={"unit": "town-01"}).text
    table = board[board.index('<table class="board">') : board.index("</table>")]
    assert "第1镇人民政府" in table and "第0镇人民政府" not in table


def test_login_link_refuses_an_address_not_in_office_emails(web: WebEnv):
    made = web.env.cli("web", "login-link", "someone@example.com")
    assert made.returncode == 2
    assert made.stderr.strip() == (
        'duban: "someone@example.com" 不在 config.toml 的 [web] office_emails 中（只有其中的邮箱能登录督办办公室页面）'
    )
    assert web.count("office_login") == 0


def _mails(web: WebEnv, *, wait_for: int = 0) -> list:
    """The login-link mails in the maildir (waiting up to 10 s for ``wait_for`` of them: the mail
    goes after the answer)."""
    import email
    import time
    from email import policy

    folder = web.env.maildir / "new"
    deadline = time.monotonic() + 10
    while True:
        paths = list(folder.iterdir()) if folder.exists() else []
        found = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in paths]
        mails = [m for m in found if "登录链接" in str(m["Subject"])]
        if len(mails) >= wait_for or time.monotonic() > deadline:
            return mails
        time.sleep(0.05)


def test_the_office_gets_its_login_link_by_email(web: WebEnv):
    client = httpx.Client(timeout=TIMEOUT)
    page = client.get(f"{web.url}/office")
    token = csrf_for(page.text, "/office/login")
    assert "duban_pre" in client.cookies
    for address in ("nobody@example.gov.cn", "OFFICE@example.gov.cn"):
        sent = client.post(f"{web.url}/office/login", data={"csrf": token, "email": address})
        assert sent.status_code == 303 and sent.headers["location"] == "/office?sent=1"
    assert "登录链接已发至该邮箱" in client.get(f"{web.url}/office?sent=1").text
    (message,) = _mails(web, wait_for=1)  # one mail: the listed address only, the same answer for both
    assert message["To"] == "office@example.gov.cn"
    link = re.search(r"http://\S+/office/login/\S+", message.get_content()).group(0)
    assert web.count("office_login") == 1
    stored = str(web.env.rows("SELECT * FROM event")) + str(web.env.rows("SELECT * FROM office_login"))
    assert link.rsplit("/", 1)[1] not in stored  # the link itself is never stored
    assert log_in(client, link).status_code == 303
    assert "待审核" in client.get(f"{web.url}/office").text
    stranger = httpx.Client(timeout=TIMEOUT)  # no pre-session cookie: refused
    assert (
        stranger.post(
            f"{web.url}/office/login", data={"csrf": token, "email": "office@example.gov.cn"}
        ).status_code
        == 403
    )
