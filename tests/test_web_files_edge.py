"""Files and feeds at the edge (issue 26): no byte of a file before the form's CSRF token is
verified, forms without files refuse file parts, downloads named by their detected type, and a
calendar feed token that can only read. Real uvicorn, real HTTP."""

from __future__ import annotations

import re
import time
from urllib.parse import unquote

import httpx
from sqlmodel import Session

from orchestrator.admin import links
from tests.web_support import (  # noqa: F401 (fixtures)
    PDF,
    TIMEOUT,
    WebEnv,
    csrf_for,
    get,
    post,
    web_fixture,
    web_template_fixture,
)

BOUNDARY = "edge-test-boundary"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def _field(name: str, value: str) -> bytes:
    return f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()


def _file_head(name: str = "files", filename: str = "a.pdf") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()


def _end() -> bytes:
    return f"\r\n--{BOUNDARY}--\r\n".encode()


def _spooled(web: WebEnv) -> int:
    """Bytes under ``evidence_dir/tmp`` right now (files being uploaded)."""
    tmp = web.env.root / "evidence" / "tmp"
    return sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file()) if tmp.exists() else 0


def _send(url: str, body, **kwargs) -> int | None:
    """POST a streamed body; the status, or None when the server closed the connection first."""
    try:
        return httpx.post(url, content=body, timeout=TIMEOUT, **kwargs).status_code
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        return None


def test_no_file_byte_before_the_csrf_token_is_verified(web: WebEnv):
    """The anonymous ``POST /office/login`` with a made-up pre-session cookie and a file part: the
    forged token stops reading at once; not a byte lands under ``evidence_dir/tmp``, even while the
    client is still sending."""
    seen = []

    def body():
        yield _field("csrf", "made-up") + _field("email", "x@example.gov.cn") + _file_head()
        yield b"%PDF-1.4\n"
        for _ in range(9):  # 900 KB (max_file_mb = 1), a piece at a time
            time.sleep(0.1)
            seen.append(_spooled(web))
            yield b"0" * 100_000
        yield _end()

    status = _send(f"{web.url}/office/login", body(), headers={**MULTIPART, "Cookie": "duban_pre=made-up"})
    assert status in (403, None)
    assert max(seen, default=0) == 0 and _spooled(web) == 0


def test_forms_refuse_file_parts_they_do_not_take_or_that_come_before_the_token(web: WebEnv):
    link = web.unit_link("town-00")
    oid = web.obligation_id("town-00", "T2")
    page = get(link).text
    ack = csrf_for(page, f"/o/{oid}/acknowledge")
    complete = csrf_for(page, f"/o/{oid}/complete")
    pdf = _file_head() + PDF + _end()
    # 签收 takes no files: a file part is refused even with a good token
    assert _send(f"{link}/o/{oid}/acknowledge", _field("csrf", ack) + pdf, headers=MULTIPART) == 400
    # 办结申请 takes files, but only after its verified token
    late_token = (
        _field("note", "x")
        + _file_head()
        + PDF
        + b"\r\n"
        + _field("csrf", complete)
        + f"--{BOUNDARY}--\r\n".encode()
    )
    assert _send(f"{link}/o/{oid}/complete", late_token, headers=MULTIPART) == 403
    # the office's logout takes no files either
    office = web.office_client()
    logout = csrf_for(office.get(f"{web.url}/office").text, "/office/logout")
    assert (
        office.post(
            f"{web.url}/office/logout", content=_field("csrf", logout) + pdf, headers=MULTIPART
        ).status_code
        == 400
    )
    assert "待审核" in office.get(f"{web.url}/office").text  # (still logged in: nothing done)
    assert web.count("submission") == 0 and web.evidence_files() == []
    good = _field("csrf", complete) + _field("note", "文号 1") + pdf  # the token first: accepted
    assert _send(f"{link}/o/{oid}/complete", good, headers=MULTIPART) == 303
    assert web.count("evidence") == 1


def test_a_download_is_named_by_its_detected_type(web: WebEnv):
    link = web.unit_link("town-00")
    oid = web.obligation_id("town-00", "T2")
    token = csrf_for(get(link).text, f"/o/{oid}/complete")
    names = ["x.html", "报告", "scan.PDF"]
    files = [("files", (name, PDF + name.encode(), "application/pdf")) for name in names]
    assert post(f"{link}/o/{oid}/complete", data={"csrf": token, "note": "x"}, files=files).status_code == 303
    office = web.office_client()
    got = {}
    for (file_id,) in web.env.rows("SELECT id FROM evidence ORDER BY id"):
        answer = office.get(f"{web.url}/office/evidence/{file_id}")
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/pdf"
        disposition = answer.headers["content-disposition"]
        got[re.search(r'filename="([^"]*)"', disposition).group(1)] = unquote(disposition.split("''", 1)[1])
    assert sorted(got.values()) == sorted(["x.pdf", "报告.pdf", "scan.PDF"])
    assert "x.pdf" in got and all(not name.endswith(".html") for name in got)


def test_the_calendar_feed_has_a_read_only_token(web: WebEnv):
    link = web.unit_link("town-00")
    unit_token = link.rsplit("/", 1)[1]
    page = get(link).text
    found = re.search(r'<a href="(http://[^"]+/calendar/([^"/]+)\.ics)">', page)
    assert found, "the unit page shows its calendar feed URL"
    feed, feed_token = found.group(1), found.group(2)
    assert unit_token not in feed
    answer = get(feed)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/calendar")
    assert answer.text.count("BEGIN:VEVENT") == 2
    oid = web.obligation_id("town-00", "T2")
    unknown = get(f"{web.url}/no/such/page").text
    for refused in (  # the feed token opens nothing else; a unit link is no feed token
        get(f"{web.url}/u/{feed_token}"),
        post(f"{web.url}/u/{feed_token}/o/{oid}/acknowledge", data={"csrf": "x"}),
        get(f"{web.url}/calendar/{unit_token}.ics"),
        get(f"{web.url}/calendar/{feed_token[:-2]}xx.ics"),
    ):
        assert refused.status_code == 404 and refused.text == unknown
    with Session(web.portal.engine) as session:
        links.revoke(session, "town-00", web.now(), "test")
        session.commit()
    assert get(feed).status_code == 404  # revoked with the unit's links
    assert web.count("submission") == 0
