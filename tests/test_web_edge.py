"""The portal's edge against slow and greedy clients (issue 26): ``duban web`` as a real subprocess
with a lowered descriptor limit, slow clients on raw sockets from other loopback addresses
(127.0.0.2 and up: the trusted proxy, 127.0.0.1, is exempt from the per-client cap)."""

from __future__ import annotations

import re
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import httpx

from tests.conftest import DUBAN, REPO
from tests.web_support import (  # noqa: F401 (fixtures)
    WebEnv,
    csrf_for,
    free_port,
    web_fixture,
    web_template_fixture,
)


@contextmanager
def duban_web(web: WebEnv, *, nofile: int | None = None, **settings) -> Iterator[tuple[str, list[str]]]:
    """``duban web`` on a free port with ``settings`` added to ``[web]`` (and at most ``nofile``
    descriptors); yields its base URL and, once stopped, its log lines fill the list."""
    port = free_port()
    text = web.env.config_path.read_text(encoding="utf-8")
    text = re.sub(r'listen = "[^"]+"', f'listen = "127.0.0.1:{port}"', text)
    text += "".join(f"{name} = {value}\n" for name, value in settings.items())  # ([web] is last)
    web.env.config_path.write_text(text, encoding="utf-8")

    def lower_limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    output = (web.env.root / f"web-{port}.log").open("w+", encoding="utf-8")  # (a pipe could fill up)
    process = subprocess.Popen(
        [DUBAN, "--config", str(web.env.config_path), "web"], env=web.env.base_env(), cwd=web.env.root,
        stdout=output, stderr=subprocess.STDOUT, preexec_fn=lower_limit,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/static/duban.css", timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("duban web did not start") from None
                time.sleep(0.1)
        yield base, lines
    finally:
        process.terminate()
        process.wait(timeout=20)
        output.seek(0)
        lines.extend(output.read().splitlines())
        output.close()


class SlowClients:
    """``count`` connections from 127.0.0.``first``…, each sending one byte of its request every
    half second (headers never finished, or a body that never ends), from one thread."""

    def __init__(self, port: int, count: int, *, body: bool, first: int = 2, per_address: int = 20) -> None:
        self.sockets: list[socket.socket] = []
        if body:
            head = (
                "POST /office/login HTTP/1.1\r\nHost: x\r\nCookie: duban_pre=made-up\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n"
            )
        else:
            head = "GET /office HTTP/1.1\r\nHost: x\r\n"
        for n in range(count):
            sock = socket.socket()
            sock.bind((f"127.0.0.{first + n // per_address}", 0))
            sock.settimeout(10)
            sock.connect(("127.0.0.1", port))  # (the kernel completes it even while the server cannot accept)
            sock.sendall(head.encode())
            sock.setblocking(False)
            self.sockets.append(sock)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _drip(self) -> None:
        while not self.stop.wait(0.5):
            for sock in self.sockets:
                with suppress(OSError):
                    sock.send(b"x")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def test_slow_clients_do_not_starve_an_honest_request(web: WebEnv):
    """120 connections from six addresses (slow headers, and slow bodies to the anonymous
    /office/login) against a server limited to 96 descriptors, with deadlines of a minute: the
    connections stalled longest are cut to make room, and an honest request is answered within a
    few seconds (on uvicorn's own protocol and loop it waits for ever)."""
    link = web.unit_link("town-00")
    with duban_web(web, nofile=96, header_timeout=60, body_timeout=60) as (base, lines):
        port = int(base.rsplit(":", 1)[1])
        attack = [SlowClients(port, 60, body=False), SlowClients(port, 60, body=True, first=5)]
        try:
            time.sleep(0.3)
            started = time.monotonic()
            answer = httpx.get(link.replace(web.url, base), timeout=10)
            took = time.monotonic() - started
            assert answer.status_code == 200 and "督办事项办理" in answer.text
            assert took < 6, f"the honest request waited {took:.1f} s"
        finally:
            for clients in attack:
                clients.close()
    log = "\n".join(lines)
    assert '"stage": "evicted"' in log and '"event": "web.accept_paused"' in log
    assert '"status": 500' not in log and '"level": "error"' not in log and "Traceback" not in log


def test_a_trickling_body_is_cut_and_its_upload_dropped(web: WebEnv):
    """An upload that never pauses long but sends 8 bytes a quarter-second: once ``body_timeout``
    has passed it is under ``min_upload_rate``: 408, the application sees the client go (499), and
    the half-written file is removed."""
    link = web.unit_link("town-00")
    oid = web.obligation_id("town-00", "T2")
    token = csrf_for(httpx.get(link, timeout=30).text, f"/o/{oid}/complete")
    head = (
        f'--b\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{token}\r\n'
        '--b\r\nContent-Disposition: form-data; name="files"; filename="a.pdf"\r\n\r\n%PDF-1.4\n'
    ).encode()
    with duban_web(web, body_timeout=1) as (base, lines):
        port = int(base.rsplit(":", 1)[1])
        with _connect(port, "127.0.0.2") as sock:
            sock.sendall(
                f"POST {link.removeprefix(web.url)}/o/{oid}/complete HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 200000\r\n\r\n".encode()
                + head
            )
            started = time.monotonic()
            sock.setblocking(False)
            answer = b""
            while time.monotonic() - started < 8 and not answer:
                with suppress(OSError):
                    sock.send(b"01234567")
                with suppress(BlockingIOError):
                    answer = sock.recv(4096)
                time.sleep(0.25)
            took = time.monotonic() - started
        time.sleep(0.3)
    assert answer.startswith(b"HTTP/1.1 408") and took < 5
    log = "\n".join(lines)
    assert '"stage": "body"' in log and '"status": 499' in log and '"level": "error"' not in log
    assert web.evidence_files() == []


def _connect(port: int, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 10 s pass)."""
    data = b""
    with suppress(OSError):
        while chunk := sock.recv(4096):
            data += chunk
    return data


def test_a_client_holds_at_most_its_share_of_connections(web: WebEnv):
    """One address opens twelve connections and says nothing: past five the server answers 503 at
    once; the five it holds get 408 after the header deadline; another address is served."""
    with duban_web(web, header_timeout=1, max_connections_per_client=5) as (base, lines):
        port = int(base.rsplit(":", 1)[1])
        greedy = [_connect(port, "127.0.0.2") for _ in range(12)]
        started = time.monotonic()
        assert httpx.get(f"{base}/office", timeout=10).status_code == 200  # (127.0.0.1)
        with _connect(port, "127.0.0.3") as other:
            other.sendall(b"GET /office HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _read_all(other).startswith(b"HTTP/1.1 200")
        answers = [_read_all(sock) for sock in greedy]
        took = time.monotonic() - started
        for sock in greedy:
            sock.close()
    assert sum(a.startswith(b"HTTP/1.1 503") for a in answers) == 7
    assert sum(a.startswith(b"HTTP/1.1 408") for a in answers) == 5
    assert took < 8
    assert (
        sum('"event": "web.too_many_connections"' in line for line in lines) == 1
    )  # (once, not per connection)


def test_the_next_request_on_a_kept_alive_connection_has_a_header_deadline_too(web: WebEnv):
    """After an answer, a client that starts its next request and never finishes it is cut
    (uvicorn's own keep-alive timer stops at the first byte)."""
    with duban_web(web, header_timeout=1) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        with _connect(port, "127.0.0.2") as sock:
            sock.sendall(b"GET /static/duban.css HTTP/1.1\r\nHost: x\r\n\r\n")
            first = b""
            while not first.endswith(b"break-all}\n"):  # (the whole stylesheet)
                first += sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            sock.sendall(b"GET /office HTTP/1.1\r\nHo")  # … and nothing more
            rest = _read_all(sock)
            assert time.monotonic() - started < 5
    assert b"HTTP/1.1 408" in rest


def test_a_client_gone_mid_upload_is_one_info_line(web: WebEnv):
    """A browser closed in the middle of an upload (multipart to a unit's form, a urlencoded form to
    the office's login): no error, no traceback, no 500 — one access line with 499 — and no
    temporary file left."""
    link = web.unit_link("town-00")
    oid = web.obligation_id("town-00", "T2")
    token = csrf_for(httpx.get(link, timeout=30).text, f"/o/{oid}/complete")
    pre = httpx.Client(timeout=30)
    login_token = csrf_for(pre.get(f"{web.url}/office").text, "/office/login")
    cookie = pre.cookies["duban_pre"]
    with duban_web(web) as (base, lines):
        port = int(base.rsplit(":", 1)[1])
        path = link.removeprefix(web.url)
        boundary = "b"
        multipart = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{token}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.pdf"\r\n\r\n%PDF-1.4\n'
        ).encode() + b"0" * 100_000
        for target, kind, body in (
            (f"{path}/o/{oid}/complete", f"multipart/form-data; boundary={boundary}", multipart),
            ("/office/login", "application/x-www-form-urlencoded", f"csrf={login_token}&email=a".encode()),
        ):
            with _connect(port, "127.0.0.2") as sock:
                sock.sendall(
                    f"POST {target} HTTP/1.1\r\nHost: x\r\nCookie: duban_pre={cookie}\r\n"
                    f"Content-Type: {kind}\r\nContent-Length: 500000\r\n\r\n".encode()
                    + body
                )
                time.sleep(0.5)  # (the server has read what came) … and the browser is closed
        time.sleep(0.5)
    log = "\n".join(lines)
    gone = [line for line in lines if '"status": 499' in line]
    assert len(gone) == 2 and any('"path": "/office/login"' in line for line in gone)
    assert '"level": "error"' not in log and "Traceback" not in log and '"status": 500' not in log
    assert web.evidence_files() == []


def test_the_access_log_cuts_feed_tokens_out(web: WebEnv):
    page = httpx.get(web.unit_link("town-00"), timeout=30).text
    feed = re.search(r'href="(http://[^"]+/calendar/([^"]+)\.ics)"', page)
    assert feed, "the unit page shows its calendar feed URL"
    with duban_web(web) as (base, lines):
        assert httpx.get(feed.group(1).replace(web.url, base), timeout=30).status_code == 200
    log = "\n".join(lines)
    assert '"path": "/calendar/…"' in log and feed.group(2) not in log


def test_the_shipped_configs_bound_slow_clients():
    """The systemd unit raises the descriptor limit (systemd's default is 1,024); the nginx site has
    header and body timeouts and per-client limits, and docs/portal.md's snippet is that file's."""
    unit = (REPO / "deploy" / "duban-web.service").read_text(encoding="utf-8")
    limit = re.search(r"^LimitNOFILE=(\d+)$", unit, re.MULTILINE)
    assert limit and int(limit.group(1)) >= 4096
    site = (REPO / "deploy" / "nginx-duban.conf").read_text(encoding="utf-8")
    for directive in (
        "client_header_timeout",
        "client_body_timeout",
        "limit_conn duban_conn",
        "limit_req zone=",
    ):
        assert re.search(rf"^\s*{directive}", site, re.MULTILINE), directive
    docs = (REPO / "docs" / "portal.md").read_text(encoding="utf-8")
    snippet = docs.split("## In front: nginx", 1)[1].split("```nginx", 1)[1].split("```", 1)[0]
    lines = {line.split("#", 1)[0].strip() for line in site.splitlines()}
    for line in snippet.splitlines():
        wanted = line.split("#", 1)[0].strip()
        assert not wanted or wanted == "}" or wanted in lines, wanted
