"""A fake WeCom / DingTalk robot platform: a real HTTP server on 127.0.0.1, in a thread.

It checks what the real platforms check — the WeCom key, the DingTalk access token, signature
(HMAC-SHA256 of ``timestamp\\nsecret``, Base64, URL-encoded) and timestamp (within an hour), the
markdown payload and its size — and answers with the bodies the real platforms send (HTTP 200,
``errcode`` in the JSON): a bad key or token, a bad signature, a message too long, and past 20
messages a minute per robot the rate limit (a DingTalk robot then stays throttled ten minutes).

``window_now`` is the clock the per-minute limit is counted on (the test's fake clock), while a
signature's timestamp is checked against real time, as the platform's own clock would.

A scripted answer may also be a ``Stream``: HTTP 200 and a body that never ends, sent as fast as
the client reads it (``ENDLESS``) or a byte now and then (``trickle(seconds)``) — the server that
issue 26 found holding a daemon (each stops when the client goes away or the server stops).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

WECOM_OK = {"errcode": 0, "errmsg": "ok"}
DINGTALK_OK = {"errcode": 0, "errmsg": "ok"}
HINT = "hint: [1755605200056773468916791], from ip: 127.0.0.1"
WECOM_BAD_KEY = {
    "errcode": 93000,
    "errmsg": f"invalid webhook url, {HINT}, more info at https://open.work.weixin.qq.com/devtool/query?e=93000",
}
WECOM_TOO_FAST = {
    "errcode": 45009,
    "errmsg": f"api freq out of limit, {HINT}, more info at https://open.work.weixin.qq.com/devtool/query?e=45009",
}
WECOM_TOO_LONG = {
    "errcode": 40058,
    "errmsg": "markdown.content exceed max length 4096. invalid Request Parameter, "
    f"{HINT}, more info at https://open.work.weixin.qq.com/devtool/query?e=40058",
}
DINGTALK_BAD_TOKEN = {"errcode": 300001, "errmsg": "token is not exist"}
DINGTALK_BAD_SIGN = {
    "errcode": 310000,
    "errmsg": "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
}
DINGTALK_BAD_TIMESTAMP = {
    "errcode": 310000,
    "errmsg": "invalid timestamp, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
}
DINGTALK_TOO_FAST = {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
DINGTALK_TOO_LONG = {"errcode": 460101, "errmsg": "message too long, exceed 20000 bytes"}


@dataclass(frozen=True)
class Stream:
    """A scripted answer: HTTP 200, then ``chunk`` every ``every`` seconds, without end."""

    chunk: bytes
    every: float


ENDLESS = Stream(b"{" + b" " * (64 << 10), 0.02)  # about 3 MB a second: no end, never idle
SLOW = 0.5


def trickle(every: float = SLOW) -> Stream:
    """One byte every ``every`` seconds: each read gets something, the answer never completes."""
    return Stream(b" ", every)


@dataclass
class Received:
    """One accepted message: the robot it went to, the JSON payload, the query string."""

    robot: str
    kind: str
    payload: dict
    query: dict[str, list[str]]
    at: float  # on window_now's clock

    @property
    def text(self) -> str:
        markdown = self.payload["markdown"]
        return markdown.get("content") or markdown.get("text")


@dataclass
class FakeRobots:
    """The platform's state: robots by credentials, what each received, scripted answers."""

    wecom: dict[str, str] = field(default_factory=dict)  # key -> robot name
    dingtalk: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (name, secret)
    window_now: Callable[[], float] = time.time
    received: list[Received] = field(default_factory=list)
    answers: list[tuple[int, dict]] = field(default_factory=list)  # every (status, body) sent
    script: dict[str, list[dict | int | Stream]] = field(default_factory=dict)  # name -> next answers
    problems: list[str] = field(default_factory=list)  # what the server found wrong (a test fails)
    streamed: int = 0  # bytes of endless answers written
    cut_off: int = 0  # endless answers the client stopped reading
    _sends: dict[str, list[float]] = field(default_factory=dict)
    _throttled: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by_robot(self, name: str) -> list[Received]:
        return [r for r in self.received if r.robot == name]

    def handle(self, path: str, query: dict[str, list[str]], headers, body: bytes) -> tuple[int, dict]:
        with self.lock:
            answer = self._handle(path, query, headers, body)
            self.answers.append(answer)
            return answer

    def _handle(self, path, query, headers, body) -> tuple[int, dict]:
        if path.endswith("/cgi-bin/webhook/send"):
            return self._wecom(query, headers, body)
        if path.endswith("/robot/send"):
            return self._dingtalk(query, headers, body)
        return 404, {"error": "not found"}

    def _payload(self, headers, body: bytes) -> dict | None:
        if not (headers.get("Content-Type") or "").startswith("application/json"):
            self.problems.append(f"content type {headers.get('Content-Type')!r}")
        try:
            payload = json.loads(body)
        except ValueError:
            self.problems.append("body is not JSON")
            return None
        if payload.get("msgtype") != "markdown" or not isinstance(payload.get("markdown"), dict):
            self.problems.append(f"not a markdown message: {payload!r:.200}")
            return None
        return payload

    def _scripted(self, name: str) -> tuple[int, dict | Stream] | None:
        queue = self.script.get(name)
        if queue:
            answer = queue[0] if isinstance(queue[0], Stream) and len(queue) == 1 else queue.pop(0)
            return (answer, {}) if isinstance(answer, int) else (200, answer)
        return None  # (a Stream left last in a queue answers every request from then on)

    def _over_limit(self, name: str, now: float) -> bool:
        sends = [t for t in self._sends.get(name, []) if t > now - 60]
        self._sends[name] = sends
        return len(sends) >= 20

    def _wecom(self, query, headers, body) -> tuple[int, dict]:
        name = self.wecom.get((query.get("key") or [""])[0])
        if name is None:
            return 200, WECOM_BAD_KEY
        scripted = self._scripted(name)
        if scripted:
            return scripted
        payload = self._payload(headers, body)
        if payload is None:
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        content = payload["markdown"].get("content")
        if not isinstance(content, str) or not content:
            self.problems.append("wecom markdown without content")
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        if len(content.encode("utf-8")) > 4096:
            return 200, WECOM_TOO_LONG
        now = self.window_now()
        if self._over_limit(name, now):
            return 200, WECOM_TOO_FAST
        self._sends[name].append(now)
        self.received.append(Received(name, "wecom", payload, query, now))
        return 200, WECOM_OK

    def _dingtalk(self, query, headers, body) -> tuple[int, dict]:
        token = (query.get("access_token") or [""])[0]
        if token not in self.dingtalk:
            return 200, DINGTALK_BAD_TOKEN
        name, secret = self.dingtalk[token]
        stamp, sign = (query.get("timestamp") or [""])[0], (query.get("sign") or [""])[0]
        if not stamp.isdigit() or abs(int(stamp) / 1000 - time.time()) > 3600:
            return 200, DINGTALK_BAD_TIMESTAMP
        expected = base64.b64encode(
            hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(sign, expected):
            return 200, DINGTALK_BAD_SIGN
        scripted = self._scripted(name)
        if scripted:
            return scripted
        if len(body) > 20000:
            return 200, DINGTALK_TOO_LONG
        payload = self._payload(headers, body)
        if payload is None:
            return 200, {"errcode": 40035, "errmsg": "缺少参数 json"}
        markdown = payload["markdown"]
        if not markdown.get("title") or not markdown.get("text"):
            self.problems.append("dingtalk markdown without title or text")
            return 200, {"errcode": 40035, "errmsg": "缺少参数 markdown"}
        now = self.window_now()
        if self._throttled.get(name, 0) > now:
            return 200, DINGTALK_TOO_FAST
        if self._over_limit(name, now):
            self._throttled[name] = now + 600
            return 200, DINGTALK_TOO_FAST
        self._sends[name].append(now)
        self.received.append(Received(name, "dingtalk", payload, query, now))
        return 200, DINGTALK_OK


class RobotServer:
    """``FakeRobots`` served over HTTP on 127.0.0.1 (``url``); a context manager."""

    def __init__(self, robots: FakeRobots) -> None:
        self.robots = robots
        platform = robots
        stopping = self.stopping = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, answer = platform.handle(parts.path, parse_qs(parts.query), self.headers, body)
                if isinstance(answer, Stream):
                    self._stream(answer)
                    return
                data = json.dumps(answer, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, answer: Stream) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.end_headers()  # no Content-Length: the body ends when the connection does
                self.close_connection = True
                try:
                    while not stopping.is_set():
                        platform.streamed += len(answer.chunk)  # (counted before the client can read it)
                        self.wfile.write(answer.chunk)
                        self.wfile.flush()
                        stopping.wait(answer.every)
                except OSError:  # the client gave up: what a bounded client does
                    platform.cut_off += 1

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def wecom_url(self) -> str:
        return f"{self.url}/cgi-bin/webhook/send"

    @property
    def dingtalk_url(self) -> str:
        return f"{self.url}/robot/send"

    def __enter__(self) -> RobotServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
