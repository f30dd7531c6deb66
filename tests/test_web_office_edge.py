"""The office's way in, fit for the internet (issue 26): login-link requests a stranger cannot use
to block the office, a login link that a mail scanner's GET does not use up, and sessions known on
the server (logout and ``duban web sessions --revoke`` end them). Real uvicorn, real HTTP; client
addresses come through ``X-Forwarded-For`` from 127.0.0.1, as behind nginx."""

from __future__ import annotations

import email
import hashlib
import json
import time
from datetime import timedelta
from email import policy

import httpx
from itsdangerous import URLSafeTimedSerializer

from orchestrator.engine.clock import ShiftedClock
from tests.web_support import (  # noqa: F401 (fixtures)
    OFFICE_EMAIL,
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

STRANGER = "203.0.113.9"
OFFICE_CLIENT = "198.51.100.7"


def _login_mails(web: WebEnv, *, expect: int) -> int:
    """How many login-link mails the maildir holds once ``expect`` have come (the mail goes after
    the answer) and half a second has passed without another."""
    folder = web.env.maildir / "new"

    def count() -> int:
        paths = list(folder.iterdir()) if folder.exists() else []
        found = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in paths]
        return sum(1 for m in found if "登录链接" in str(m["Subject"]))

    deadline = time.monotonic() + 10
    while count() < expect and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    return count()


class Asker:
    """A browser at ``address`` on the login page: its own pre-session cookie and form token."""

    def __init__(self, web: WebEnv, address: str) -> None:
        self.web = web
        self.client = httpx.Client(timeout=TIMEOUT, headers={"X-Forwarded-For": address})
        self.token = csrf_for(self.client.get(f"{web.url}/office").text, "/office/login")

    def ask(self, mailbox: str) -> httpx.Response:
        return self.client.post(f"{self.web.url}/office/login", data={"csrf": self.token, "email": mailbox})


def test_a_stranger_cannot_spend_the_offices_login_allowance(web: WebEnv):
    """Five requests from a stranger naming the office's address put at most two mails in its
    mailbox and leave the office's own request its mail; every answer is the same."""
    stranger = Asker(web, STRANGER)
    answers = [stranger.ask(OFFICE_EMAIL) for _ in range(5)]
    answers.append(stranger.ask("nobody@example.gov.cn"))  # not listed (and over the limits)
    office = Asker(web, OFFICE_CLIENT)
    answers.append(office.ask(OFFICE_EMAIL))
    for answer in answers:  # the same answer for any address, throttled or not
        assert (answer.status_code, answer.headers["location"], answer.content) == (
            303,
            "/office?sent=1",
            b"",
        )
    assert _login_mails(web, expect=3) == 3  # two from the stranger's requests, one for the office's own


def test_a_flood_from_many_addresses_is_capped_but_the_office_keeps_its_own(web: WebEnv):
    """Twelve strangers at twelve addresses: ten mails an hour reach the mailbox; the office, asking
    from the address it logged in from before, still gets its link."""
    assert (
        log_in(
            httpx.Client(timeout=TIMEOUT, headers={"X-Forwarded-For": OFFICE_CLIENT}), web.login_link()
        ).status_code
        == 303
    )
    for n in range(12):
        assert Asker(web, f"203.0.113.{n + 20}").ask(OFFICE_EMAIL).status_code == 303
    assert _login_mails(web, expect=10) == 10
    assert Asker(web, OFFICE_CLIENT).ask(OFFICE_EMAIL).status_code == 303
    assert _login_mails(web, expect=11) == 11


# -- the link -------------------------------------------------------------------------------------------------


def test_opening_the_login_link_uses_nothing_up(web: WebEnv):
    """Mail scanners and link previews open links: a GET shows a page with one button (no cookie,
    nothing used); its POST logs in, once."""
    link = web.login_link()
    for _ in range(3):
        page = get(link)
        assert page.status_code == 200 and "set-cookie" not in page.headers
        assert f"以 {OFFICE_EMAIL} 登录督办工作台" in page.text and page.text.count("<form") == 1
    assert web.env.rows("SELECT used_at FROM office_login") == [(None,)]
    client = httpx.Client(timeout=TIMEOUT)
    assert client.post(link, data={"csrf": "forged"}).status_code == 404  # the button's own token only
    answer = client.post(link, data={"csrf": csrf_for(page.text, link.rsplit("/", 1)[1])})
    assert answer.status_code == 303 and answer.headers["location"] == "/office"
    assert "待审核" in client.get(f"{web.url}/office").text
    assert get(link).status_code == 404 and log_in(httpx.Client(timeout=TIMEOUT), link).status_code == 404


# -- sessions -------------------------------------------------------------------------------------------------


def _cookie(client: httpx.Client) -> str:
    return client.cookies["duban_office"]


def _copy(cookie: str) -> httpx.Client:
    """Another browser (or a thief) with a copy of the session cookie."""
    return httpx.Client(timeout=TIMEOUT, cookies={"duban_office": cookie})


def _pending_submission(web: WebEnv) -> int:
    link = web.unit_link("town-00")
    oid = web.obligation_id("town-00", "T2")
    token = csrf_for(get(link).text, f"/o/{oid}/complete")
    files = [("files", ("a.pdf", PDF, "application/pdf"))]
    assert post(f"{link}/o/{oid}/complete", data={"csrf": token, "note": "x"}, files=files).status_code == 303
    return web.env.scalar("SELECT id FROM submission")


def test_logout_ends_the_session_on_the_server(web: WebEnv):
    sid = _pending_submission(web)
    office = web.office_client()
    thief = _copy(_cookie(office))
    board = thief.get(f"{web.url}/office").text
    assert "待审核" in board  # a copied cookie works while the session lives …
    answer = office.post(
        f"{web.url}/office/logout",
        data={"csrf": csrf_for(office.get(f"{web.url}/office").text, "/office/logout")},
    )
    assert answer.status_code == 303
    assert "待审核" not in thief.get(f"{web.url}/office").text  # … and not after 退出登录
    approve = thief.post(
        f"{web.url}/office/review/{sid}/approve", data={"csrf": csrf_for(board, f"/{sid}/approve")}
    )
    assert approve.status_code == 404
    assert web.env.scalar("SELECT decision FROM submission") is None
    assert web.env.rows("SELECT kind, actor FROM event WHERE kind = 'office.logout'") == [
        ("office.logout", f"office:{OFFICE_EMAIL}")
    ]


def test_a_session_is_stored_hashed_and_ends_after_eight_hours(web: WebEnv):
    office = web.office_client(**{"User-Agent": "Tester/2.0", "X-Forwarded-For": OFFICE_CLIENT})
    data = URLSafeTimedSerializer(web.key, salt="duban.web.session").loads(_cookie(office))
    stored = web.env.rows("SELECT sid_hash, email, client, user_agent, ended_at FROM office_session")
    assert stored == [
        (hashlib.sha256(data["s"].encode()).hexdigest(), OFFICE_EMAIL, OFFICE_CLIENT, "Tester/2.0", None)
    ]
    everything = str(web.env.rows("SELECT * FROM office_session")) + str(web.env.rows("SELECT * FROM event"))
    assert data["s"] not in everything  # the session id itself is never stored
    web.portal.clock = ShiftedClock(web.now() + timedelta(hours=8, minutes=1))
    assert "待审核" not in office.get(f"{web.url}/office").text


def test_sessions_are_listed_and_revoked_from_the_cli(web: WebEnv):
    first = web.office_client(**{"User-Agent": "Browser/1", "X-Forwarded-For": OFFICE_CLIENT})
    second = web.office_client(**{"User-Agent": "Phone\x1b[31m/2", "X-Forwarded-For": "198.51.100.8"})
    listed = web.env.cli("web", "sessions", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["email"], r["client"], r["user_agent"]) for r in rows] == [
        (OFFICE_EMAIL, OFFICE_CLIENT, "Browser/1"),
        (OFFICE_EMAIL, "198.51.100.8", "Phone[31m/2"),  # (control characters removed)
    ]
    assert set(rows[0]) == {"id", "email", "created_at", "expires_at", "client", "user_agent"}
    table = web.env.cli("web", "sessions")
    assert table.returncode == 0 and "有效会话 2 个" in table.stdout and "\x1b[31m" not in table.stdout
    unused = web.login_link()  # a login link not yet used is voided too
    revoked = web.env.cli("web", "sessions", "--revoke", OFFICE_EMAIL.upper())
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"{OFFICE_EMAIL}：已结束 2 个会话，未使用的登录链接已作废。"
    for client in (first, second):
        assert "待审核" not in client.get(f"{web.url}/office").text
    assert get(unused).status_code == 404
    assert web.env.cli("web", "sessions").stdout.strip() == "没有有效的办公室会话。"
    assert web.env.cli("web", "sessions", "--json").stdout == ""
    (after,) = web.env.rows("SELECT after FROM event WHERE kind = 'office.sessions_revoked'")
    assert json.loads(after[0]) == {"sessions": 2, "login_links": 1}
    bad = web.env.cli("web", "sessions", "--revoke", "not-an-address")
    assert bad.returncode == 2 and bad.stderr.strip() == 'duban: --revoke："not-an-address" 不是邮箱地址'
