"""Group robots: WeCom (企业微信) and DingTalk (钉钉) webhooks over ``httpx.AsyncClient``.

Both platforms answer HTTP 200 with ``{"errcode": N, "errmsg": …}``: only ``errcode == 0`` is a
delivered message. ``classify_reply`` is the one place that says what the other answers mean:

- rate limited (DingTalk 130101 — the robot is then throttled for 10 minutes —, WeCom 45009)
  → ``RateLimited`` (temporary, retried after ``retry_after``);
- system busy (-1), HTTP 429 or 5xx, a timeout, a lost connection → ``TemporaryFailure``;
- anything else — a bad key or token (WeCom 93000, DingTalk 300001), a bad signature, timestamp or
  keyword (DingTalk 310000), a message too long (WeCom 40058, DingTalk 460101) — → ``PermanentFailure``.

Secrets (the WeCom key, the DingTalk access token and secret, the signature) are in the request
URL only; no error text, ``repr`` or log line carries them.

Every request is bounded: the answer is read as a stream, at most ``MAX_ANSWER_BYTES`` of it (the
platforms' answers are a few dozen bytes; a server that answers without end is cut off), and the
whole request — connect, send, answer — has one deadline (``timeout``, the ``[im] timeout``). httpx's
own timeouts apply to each read, so a server trickling a byte now and then would never hit them.
Past either bound the message is retried (``TemporaryFailure``), like a timeout.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote_plus

import httpx
import structlog

from notifications.errors import PermanentFailure, RateLimited, TemporaryFailure, TransportError
from notifications.transport import SendResult

log = structlog.get_logger("duban.notifications.im")

Kind = Literal["wecom", "dingtalk"]
WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
DINGTALK_URL = "https://oapi.dingtalk.com/robot/send"
WECOM_MARKDOWN_BYTES = 4096  # markdown.content, in UTF-8 bytes (errcode 40058 past it)
DINGTALK_BODY_BYTES = 20000  # the whole request body (errcode 460101 past it)
PER_MINUTE = 20  # both platforms: messages a minute per robot
DINGTALK_THROTTLE = 600.0  # seconds a DingTalk robot is throttled once past its limit
MAX_ANSWER_BYTES = 64 << 10  # of a platform's answer (decoded): its real answers are a few dozen

RATE_LIMITED = {"dingtalk": {130101: DINGTALK_THROTTLE}, "wecom": {45009: 60.0}}
BUSY = {-1}
MEANING = {  # for the admin's report: what to check
    ("wecom", 93000): "机器人地址（key）无效，请核对机器人文件中的key",
    ("wecom", 40058): "消息超过长度限制",
    ("dingtalk", 300001): "access_token不存在，请核对机器人文件中的access_token",
    ("dingtalk", 300005): "access_token不存在，请核对机器人文件中的access_token",
    ("dingtalk", 310000): "签名、时间戳或关键词校验未通过，请核对secret及机器人安全设置",
    ("dingtalk", 460101): "消息超过长度限制",
    ("dingtalk", 400102): "机器人已停用",
}


@dataclass(frozen=True)
class Robot:
    """One group robot of the robots file: its name, platform and credentials."""

    name: str
    kind: Kind
    key: str | None = field(default=None, repr=False)  # WeCom
    access_token: str | None = field(default=None, repr=False)  # DingTalk
    secret: str | None = field(default=None, repr=False)  # DingTalk 加签

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.key, self.access_token, self.secret) if s)

    def payload(self, title: str, text: str) -> dict:
        if self.kind == "wecom":
            return {"msgtype": "markdown", "markdown": {"content": text}}
        return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}

    def body(self, title: str, text: str) -> bytes:
        return json.dumps(self.payload(title, text), ensure_ascii=False).encode("utf-8")

    def fits(self, title: str, text: str) -> bool:
        """Whether the platform takes this message (WeCom: 4,096 bytes of markdown; DingTalk:
        a body of 20,000 bytes)."""
        if self.kind == "wecom":
            return len(text.encode("utf-8")) <= WECOM_MARKDOWN_BYTES
        return len(self.body(title, text)) <= DINGTALK_BODY_BYTES


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature: Base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")), not yet
    URL-encoded."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class RobotMessage:
    """One message for one robot (``robot`` is its name); ``message_id`` is the outbox row's key."""

    robot: str
    title: str
    text: str
    message_id: str


def classify_reply(robot: Robot, status: int, content: bytes) -> TransportError | None:
    """None for a delivered message, else the error its answer means (see the module docstring)."""
    where = f"{robot.kind} robot {robot.name}"
    if status == 429 or status >= 500:
        return TemporaryFailure(f"{where}: HTTP {status}")
    if status != 200:
        return PermanentFailure(f"{where}: HTTP {status}")
    try:
        answer = json.loads(content)
        code = int(answer["errcode"])
    except (ValueError, KeyError, TypeError):
        return TemporaryFailure(f"{where}: HTTP 200 without an errcode: {_short(content)}")
    if code == 0:
        return None
    message = " ".join(str(answer.get("errmsg", "")).split())[:300]
    text = f"{where}: errcode {code} {message}".strip()
    meaning = MEANING.get((robot.kind, code))
    if meaning:
        text += f"（{meaning}）"
    wait = RATE_LIMITED[robot.kind].get(code)
    if wait is not None:
        return RateLimited(text, retry_after=wait)
    if code in BUSY:
        return TemporaryFailure(text)
    return PermanentFailure(text)


def _short(content: bytes) -> str:
    return " ".join(content[:120].decode("utf-8", "replace").split()) or "(empty)"


class RobotTransport:
    """Posts ``RobotMessage``s to their robots over one ``httpx.AsyncClient`` (``open`` … ``close``).

    The same shape as the mail ``Transport``: ``send`` returns a ``SendResult`` (the robot's name
    accepted) or raises a ``TransportError``. ``now`` gives the DingTalk signature's time (the
    platform's real clock, whatever clock the engine runs on).
    """

    def __init__(
        self,
        robots: Mapping[str, Robot],
        *,
        wecom_url: str = WECOM_URL,
        dingtalk_url: str = DINGTALK_URL,
        timeout: float = 10.0,
        now: Callable[[], float] = time.time,
        verify: bool | str = True,
    ) -> None:
        self.robots = dict(robots)
        self.wecom_url, self.dingtalk_url = wecom_url, dingtalk_url
        self.timeout, self.now, self.verify = timeout, now, verify
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"RobotTransport(robots={sorted(self.robots)!r}, wecom_url={self.wecom_url!r}, dingtalk_url={self.dingtalk_url!r})"

    @property
    def secrets(self) -> list[str]:
        return [s for robot in self.robots.values() for s in robot.secrets]

    async def open(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, verify=self.verify, follow_redirects=False)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def url(self, robot: Robot) -> str:
        """The request URL, secrets included (never logged)."""
        if robot.kind == "wecom":
            return f"{self.wecom_url}?key={quote_plus(robot.key or '')}"
        stamp = int(self.now() * 1000)
        sign = quote_plus(dingtalk_sign(robot.secret or "", stamp))
        return f"{self.dingtalk_url}?access_token={quote_plus(robot.access_token or '')}&timestamp={stamp}&sign={sign}"

    async def send(self, message: RobotMessage, recipients: Sequence[str] = ()) -> SendResult:
        robot = self.robots.get(message.robot)
        if robot is None:
            raise PermanentFailure(f"robot {message.robot}: not in the robots file")
        if not robot.fits(message.title, message.text):
            raise PermanentFailure(f"{robot.kind} robot {robot.name}: message over the platform's limit")
        where = f"{robot.kind} robot {robot.name}"
        try:
            async with asyncio.timeout(self.timeout):
                status, content = await self._post(robot, message)
        except TimeoutError:
            raise TemporaryFailure(f"{where}: no complete answer within {self.timeout:g} s") from None
        except _TooLong:
            raise TemporaryFailure(
                f"{where}: an answer of more than {MAX_ANSWER_BYTES >> 10} KB: not the platform's, cut off"
            ) from None
        except httpx.TimeoutException as exc:
            raise TemporaryFailure(self._clean(f"{where}: timed out: {exc}")) from None
        except httpx.HTTPError as exc:
            raise TemporaryFailure(self._clean(f"{where}: {type(exc).__name__}: {exc}")) from None
        error = classify_reply(robot, status, content)
        if error is not None:
            raise type(error)(self._clean(str(error)), **_extra(error))
        log.info("robot.posted", robot=robot.name, kind=robot.kind, message_id=message.message_id)
        return SendResult(accepted=(robot.name,), refused={})

    async def _post(self, robot: Robot, message: RobotMessage) -> tuple[int, bytes]:
        """POST ``message``; the answer's status and body, read up to ``MAX_ANSWER_BYTES`` (``_TooLong``
        past it: the rest is never read)."""
        await self.open()
        assert self._client is not None
        request = self._client.stream(
            "POST",
            self.url(robot),
            content=robot.body(message.title, message.text),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        async with request as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():  # decoded: a compressed bomb counts as expanded
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise _TooLong
            return response.status_code, bytes(body)

    def _clean(self, text: str) -> str:
        text = " ".join(text.split())
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***").replace(quote_plus(secret), "***")
        return text


class _TooLong(Exception):
    """An answer longer than ``MAX_ANSWER_BYTES``."""


def _extra(error: TransportError) -> dict:
    return {"retry_after": error.retry_after} if isinstance(error, RateLimited) else {}


def robot_secrets(robots: Iterable[Robot]) -> list[str]:
    return [s for robot in robots for s in robot.secrets]
