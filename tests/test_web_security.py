"""The portal's defences, each against a real uvicorn over real HTTP (httpx)."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from datetime import timedelta

import httpx
from sqlmodel import Session

from orchestrator.admin import links
from tests.conftest import DUBAN
from tests.web_support import (  # noqa: F401 (fixtures)
    OFFICE_EMAIL,
    PDF,
    TIMEOUT,
    WebEnv,
    csrf_for,
    free_port,
    get,
    log_in,
    post,
    start_web_env,
    web_fixture,
    web_template_fixture,
)


def _own(web: WebEnv, unit: str = "town-00", task: str = "T2"):
    link = web.unit_link(unit)
    oid = web.obligation_id(unit, task)
    page = get(link)
    assert page.status_code == 200
    return link, oid, page.text


def _ack(link: str, oid: int, token: str, **kwargs) -> httpx.Response:
    return post(f"{link}/o/{oid}/acknowledge", data={"csrf": token}, **kwargs)


# -- links --------------------------------------------------------------------------------------------


def test_tampered_expired_revoked_and_unknown_links_get_the_same_404(web: WebEnv):
    good = web.unit_link("town-00")
    token = good.rsplit("/", 1)[1]
    with Session(web.portal.engine) as session:
        old = links.make_unit_token(
            web.key, "town-00", 1, now=web.now() - timedelta(seconds=web.portal.link_max_age + 60)
        )
        forged = links.make_unit_token("x" * 48, "town-00", 1, now=web.now())
    unknown = get(f"{web.url}/no/such/page")
    assert unknown.status_code == 404
    answers = {
        "tampered": get(f"{web.url}/u/{token[:-3]}abc"),
        "expired": get(f"{web.url}/u/{old}"),
        "other key": get(f"{web.url}/u/{forged}"),
        "garbage": get(f"{web.url}/u/%00%2e%2e"),
        "calendar": get(f"{web.url}/u/{old}/calendar.ics"),
        "wrong method": get(f"{web.url}/u/{old}/o/1/acknowledge"),
    }
    assert get(good).status_code == 200
    with Session(web.portal.engine) as session:
        links.revoke(session, "town-00", web.now(), "test")
        session.commit()
    answers["revoked"] = get(good)
    answers["revoked post"] = post(f"{good}/o/{web.obligation_id('town-00', 'T2')}/acknowledge")
    for what, answer in answers.items():
        assert answer.status_code == 404, what
        assert answer.text == unknown.text, what
        assert "第0镇" not in answer.text and "报送" not in answer.text, what
    assert web.count("submission") == 0
    assert get(web.unit_link("town-00")).status_code == 200  # the new link works


# -- CSRF, idempotency, ownership, actor ---------------------------------------------------------------------


def test_every_post_needs_the_csrf_token_of_its_own_link(web: WebEnv):
    link, oid, page = _own(web)
    _, other_oid, other_page = _own(web, "town-01")
    assert _ack(link, oid, "").status_code == 403
    assert post(f"{link}/o/{oid}/acknowledge").status_code == 403
    assert _ack(link, oid, csrf_for(other_page, f"/o/{other_oid}/acknowledge")).status_code == 403
    assert _ack(link, oid, "forged.token.value").status_code == 403
    files = [("files", ("a.pdf", PDF, "application/pdf"))]
    refused = post(f"{link}/o/{oid}/complete", data={"csrf": "bad", "note": "x"}, files=files)
    assert refused.status_code == 403
    assert web.count("submission") == 0 and web.count("evidence") == 0 and web.evidence_files() == []
    ok = _ack(link, oid, csrf_for(page, f"/o/{oid}/acknowledge"))
    assert ok.status_code == 303
    assert web.count("submission") == 1


def test_a_double_submit_stores_one_row(web: WebEnv):
    link, oid, page = _own(web)
    token = csrf_for(page, f"/o/{oid}/feedback")
    for _ in range(2):
        sent = post(f"{link}/o/{oid}/feedback", data={"csrf": token, "note": "已完成初稿"})
        assert sent.status_code == 303
    token = csrf_for(page, f"/o/{oid}/complete")
    files = [("files", ("报告.pdf", PDF, "application/pdf"))]
    for _ in range(2):
        sent = post(f"{link}/o/{oid}/complete", data={"csrf": token, "note": "文号 X"}, files=files)
        assert sent.status_code == 303
    kinds = web.env.rows("SELECT kind FROM submission ORDER BY id")
    assert kinds == [("feedback",), ("completion",)]
    assert web.count("evidence") == 1


def test_a_unit_acts_only_on_its_own_obligations(web: WebEnv):
    link, oid, page = _own(web)
    theirs = web.obligation_id("town-01", "T2")
    token = csrf_for(page, f"/o/{oid}/complete")
    files = [("files", ("a.pdf", PDF, "application/pdf"))]
    for action in ("acknowledge", "feedback", "complete", "extend"):
        sent = post(
            f"{link}/o/{theirs}/{action}",
            data={"csrf": token, "note": "x", "until": "2026-07-30"},
            files=files if action in ("feedback", "complete") else None,
        )
        assert sent.status_code == 404, action
    assert post(f"{link}/o/999999/acknowledge", data={"csrf": token}).status_code == 404
    assert web.count("submission") == 0 and web.count("evidence") == 0 and web.evidence_files() == []
    assert web.env.scalar("SELECT state FROM obligation WHERE id = :i", i=theirs) == "open"


def test_the_audit_log_names_the_unit_its_address_and_user_agent(web: WebEnv):
    link, oid, page = _own(web)
    sent = _ack(
        link, oid, csrf_for(page, f"/o/{oid}/acknowledge"), headers={"User-Agent": "Tester/1.0\x1b[31m"}
    )
    assert sent.status_code == 303
    actor, detail = web.env.rows("SELECT actor, detail FROM event WHERE kind = 'unit.acknowledged'")[0]
    assert actor == "unit:town-00"
    assert "client=127.0.0.1" in detail and "Tester/1.0[31m" in detail and "\x1b" not in detail
    client, agent = web.env.rows("SELECT client, user_agent FROM submission")[0]
    assert client == "127.0.0.1" and agent == "Tester/1.0[31m"


# -- uploads -------------------------------------------------------------------------------------------------


def test_an_upload_is_cut_off_while_it_streams(web: WebEnv):
    """A 2 GB body (a generator: chunked, no Content-Length) is refused after about the limit; the
    client never gets to send more than the limit and a few socket buffers; nothing is kept."""
    link, oid, page = _own(web)
    token = csrf_for(page, f"/o/{oid}/complete")
    boundary = "duban-test-boundary"
    sent = {"bytes": 0}
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{token}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nbig\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n%PDF-1.4\n"
    ).encode()

    def body():
        sent["bytes"] += len(head)
        yield head
        chunk = b"0" * (1024 * 1024)
        for _ in range(2048):  # 2 GB
            sent["bytes"] += len(chunk)
            yield chunk

    started = time.monotonic()
    try:
        answer = post(
            f"{link}/o/{oid}/complete",
            content=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            timeout=30,
        )
        assert answer.status_code == 413
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pass  # the server closed the connection while the client was still sending: also a refusal
    assert time.monotonic() - started < 20
    assert sent["bytes"] < 32 * 1024 * 1024  # limit 1 MB (max_file_mb = 1), plus what sockets buffer
    assert web.count("submission") == 0 and web.count("evidence") == 0
    assert web.evidence_files() == []  # no file kept, no temporary file left


def test_too_many_files_and_a_declared_length_over_the_limit_are_refused(web: WebEnv):
    link, oid, page = _own(web)
    token = csrf_for(page, f"/o/{oid}/complete")
    files = [("files", (f"{n}.pdf", PDF, "application/pdf")) for n in range(4)]  # max_files = 3
    answer = post(f"{link}/o/{oid}/complete", data={"csrf": token, "note": "x"}, files=files)
    assert answer.status_code == 413
    path = link.removeprefix(web.url)
    with socket.create_connection(("127.0.0.1", web.server.port), timeout=10) as sock:
        sock.sendall(
            f"POST {path}/o/{oid}/complete HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 10000000000\r\n\r\n".encode()
        )
        answer = sock.recv(65536).decode("utf-8", "replace")
    assert answer.startswith("HTTP/1.1 413")
    assert web.count("submission") == 0 and web.evidence_files() == []


def test_a_file_is_typed_by_its_content(web: WebEnv):
    link, oid, page = _own(web)
    token = csrf_for(page, f"/o/{oid}/complete")
    files = [("files", ("report.pdf", b"MZ\x90\x00 an executable", "application/pdf"))]
    answer = post(f"{link}/o/{oid}/complete", data={"csrf": token, "note": "x"}, files=files)
    assert answer.status_code == 400
    assert "文件类型不在允许范围内" in answer.text
    assert web.count("submission") == 0 and web.evidence_files() == []


HOSTILE = [
    "../../../etc/passwd.pdf",
    "..\\..\\windows\\system32\\a.pdf",
    "a\x00b.pdf",
    "invoice\u202efdp.exe",
    "<img src=x onerror=alert(1)>.pdf",
    "长" * 400 + ".pdf",
]


def test_hostile_file_names_are_harmless(web: WebEnv):
    link, oid, page = _own(web)
    token = csrf_for(page, f"/o/{oid}/complete")
    files = [
        ("files", (name, PDF + name.encode("utf-8", "replace"), "application/pdf")) for name in HOSTILE[:3]
    ]
    assert post(f"{link}/o/{oid}/complete", data={"csrf": token, "note": "x"}, files=files).status_code == 303
    fid = web.obligation_id("town-01", "T2")
    link1, _, page1 = _own(web, "town-01")
    token = csrf_for(page1, f"/o/{fid}/complete")
    files = [("files", (name, PDF + name.encode(), "application/pdf")) for name in HOSTILE[3:]]
    assert (
        post(f"{link1}/o/{fid}/complete", data={"csrf": token, "note": "x"}, files=files).status_code == 303
    )
    root = web.env.root / "evidence"
    stored = web.evidence_files()
    assert len(stored) == 6
    for path in stored:  # every file under evidence/ab/<sha256>.bin, nothing elsewhere
        assert path.parent.parent == root and re.fullmatch(r"[0-9a-f]{64}\.bin", path.name), path
    assert not (web.env.root.parent / "etc").exists()
    names = [n for (n,) in web.env.rows("SELECT original_name FROM evidence ORDER BY id")]
    for name in names:
        assert "/" not in name and "\\" not in name and "\x00" not in name and "\u202e" not in name
        assert len(name) <= 120
    office = _office_client(web)
    board = office.get(f"{web.url}/office")
    assert "<img src=x" not in board.text and "&lt;img src=x onerror=alert(1)&gt;.pdf" in board.text
    for file_id in (i for (i,) in web.env.rows("SELECT id FROM evidence ORDER BY id")):
        got = office.get(f"{web.url}/office/evidence/{file_id}")
        assert got.status_code == 200 and got.content.startswith(b"%PDF-")
        disposition = got.headers["content-disposition"]
        assert disposition.startswith('attachment; filename="')
        assert all(c not in disposition for c in ("/", "\\", "\x00", "\u202e", "\n", "<"))
        assert got.headers["x-content-type-options"] == "nosniff"


# -- escaping, headers ---------------------------------------------------------------------------------------


def test_every_page_escapes_what_users_typed(web: WebEnv):
    link, oid, page = _own(web)
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    token = csrf_for(page, f"/o/{oid}/complete")
    files = [("files", ("a.pdf", PDF, "application/pdf"))]
    post(f"{link}/o/{oid}/complete", data={"csrf": token, "note": hostile}, files=files)
    office = _office_client(web)
    board = office.get(f"{web.url}/office")
    assert hostile not in board.text and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in board.text
    sid = web.env.scalar("SELECT id FROM submission")
    token = csrf_for(board.text, f"/office/review/{sid}/return")
    office.post(f"{web.url}/office/review/{sid}/return", data={"csrf": token, "reason": hostile})
    unit_page = get(link).text
    assert hostile not in unit_page and "&lt;img src=x onerror=alert(1)&gt;" in unit_page
    assert "<script" not in unit_page and "<script" not in office.get(f"{web.url}/office").text


def test_security_headers_on_every_answer(web: WebEnv):
    link, oid, _ = _own(web)
    for answer in (
        get(link),
        get(f"{web.url}/nothing"),
        get(f"{web.url}/static/duban.css"),
        get(f"{link}/calendar.ics"),
        post(f"{link}/o/{oid}/acknowledge"),
    ):
        csp = answer.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
        assert "unsafe-inline" not in csp and "script-src" not in csp
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-content-type-options"] == "nosniff"
    page = get(link).text
    assert "<script" not in page and "style=" not in page and "<style" not in page
    assert 'name="viewport"' in page


def test_posts_are_rate_limited_per_link(web: WebEnv):
    link, oid, page = _own(web)
    token = csrf_for(page, f"/o/{oid}/feedback")
    codes = [
        post(f"{link}/o/{oid}/feedback", data={"csrf": token, "note": f"第{n}次"}).status_code
        for n in range(web.portal.posts_per_minute + 2)
    ]
    assert codes[: web.portal.posts_per_minute] == [303] * web.portal.posts_per_minute
    assert codes[-1] == 429
    other, other_oid, other_page = _own(web, "town-01")  # another link is not held back
    assert _ack(other, other_oid, csrf_for(other_page, f"/o/{other_oid}/acknowledge")).status_code == 303


# -- the office ----------------------------------------------------------------------------------------------


def _office_client(web: WebEnv) -> httpx.Client:
    return web.office_client()


def test_office_login_is_one_time_and_sets_a_strict_cookie(web: WebEnv):
    assert get(f"{web.url}/office").status_code == 200  # the login hint, no data
    assert "待审核" not in get(f"{web.url}/office").text
    link = web.login_link()
    first = log_in(httpx.Client(timeout=TIMEOUT), link)
    assert first.status_code == 303
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Secure" not in cookie  # plain http here; behind the HTTPS proxy it is Secure:
    proxied = httpx.Client(timeout=TIMEOUT, headers={"X-Forwarded-Proto": "https"})
    behind_proxy = log_in(proxied, web.login_link())
    assert behind_proxy.status_code == 303 and "Secure" in behind_proxy.headers["set-cookie"]
    assert get(link).status_code == 404  # once only
    assert log_in(httpx.Client(timeout=TIMEOUT), link).status_code == 404
    with Session(web.portal.engine) as session:
        token = links.make_office_login(web.key, OFFICE_EMAIL, session, web.now() - timedelta(minutes=16))
        session.commit()
    assert get(f"{web.url}/office/login/{token}").status_code == 404  # 15 minutes
    client = httpx.Client(timeout=TIMEOUT, cookies={"duban_office": "forged"})
    assert "待审核" not in client.get(f"{web.url}/office").text
    assert client.get(f"{web.url}/office/evidence/1").status_code == 404
    assert client.post(f"{web.url}/office/review/1/approve").status_code == 404


def test_office_posts_need_csrf(web: WebEnv):
    link, oid, page = _own(web)
    token = csrf_for(page, f"/o/{oid}/complete")
    files = [("files", ("a.pdf", PDF, "application/pdf"))]
    post(f"{link}/o/{oid}/complete", data={"csrf": token, "note": "x"}, files=files)
    sid = web.env.scalar("SELECT id FROM submission")
    office = _office_client(web)
    assert office.post(f"{web.url}/office/review/{sid}/approve", data={"csrf": "x"}).status_code == 403
    assert office.post(f"{web.url}/office/review/{sid}/approve", data={"csrf": token}).status_code == 403
    assert web.env.scalar("SELECT decision FROM submission") is None
    board = office.get(f"{web.url}/office").text
    answer = office.post(
        f"{web.url}/office/review/{sid}/return", data={"csrf": csrf_for(board, f"/{sid}/return")}
    )
    assert answer.status_code == 400 and "退回须填写理由" in answer.text
    assert web.env.scalar("SELECT decision FROM submission") is None


# -- the key -------------------------------------------------------------------------------------------------


def test_the_signing_key_is_never_in_a_page_an_error_or_a_log(web: WebEnv):
    """``duban web`` as a real subprocess: its log after good and bad requests has neither the key
    nor a link's token; no page has the key."""
    port = free_port()
    text = web.env.config_path.read_text(encoding="utf-8")
    web.env.config_path.write_text(re.sub(r'listen = "[^"]+"', f'listen = "127.0.0.1:{port}"', text))
    process = subprocess.Popen(
        [DUBAN, "--config", str(web.env.config_path), "web"], env=web.env.base_env(), cwd=web.env.root,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8",
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                get(f"{base}/static/duban.css")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        link = web.unit_link("town-00").replace(web.url, base)
        token = link.rsplit("/", 1)[1]
        pages = [
            get(link),
            get(link + "x"),
            post(f"{link}/o/1/acknowledge", data={"csrf": "bad"}),
            post(f"{link}/o/1/complete", content=b"garbage", headers={"Content-Type": "multipart/form-data"}),
            get(f"{base}/office/login/{token}"),
        ]
        for page in pages:
            assert web.key not in page.text and web.key not in str(page.headers)
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0]
    assert "web.request" in output
    assert web.key not in output and token not in output
