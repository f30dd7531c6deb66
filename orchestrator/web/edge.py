"""The portal's edge against slow and greedy clients: uvicorn's HTTP/1.1 protocol with deadlines.

uvicorn has no read timeout of its own: a connection that sends nothing, a request line that
never ends or a body that trickles in at 8 bytes a second holds a file descriptor for as long as
the client likes — a thousand such clients and every honest request times out. ``EdgeProtocol``
(``edge_protocol(limits)`` makes the class uvicorn's ``Config(http=...)`` takes) adds:

- a header deadline: the request line and headers within ``header_timeout`` seconds of the
  connection, or of the first byte of the next request on a kept-alive connection (uvicorn's
  keep-alive timer stops at that byte);
- a body deadline: no ``body_timeout`` seconds without a byte, and once ``body_timeout`` seconds
  have passed, at least ``min_body_rate`` bytes a second on average (time spent waiting for the
  application to read, with reading paused, is not counted against the client);
- at most ``per_client`` connections at once from one address (the trusted proxy, nginx on
  127.0.0.1, is exempt: nginx's ``limit_conn`` counts its clients).

Past a deadline the client gets ``408`` and the connection is closed; the application sees the
client as gone (``http.disconnect``), so a half-read upload is dropped like any other. A
connection over the cap gets ``503`` at once. Each is one info line in the log.

When the server has no room for another connection (``web.accept.EdgeLoop``), the connections
stalled longest — waiting for their headers, or reading a body below the rate — are cut first
(``make_room``): an honest request, whose headers come at once, is then answered within moments
however many slow clients hold connections, and however many addresses they come from.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import h11
import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

log = structlog.get_logger("duban.web")

_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\nretry-after: 10\r\n\r\n"
)


@dataclass(frozen=True)
class EdgeLimits:
    header_timeout: float = 15.0
    body_timeout: float = 30.0
    min_body_rate: int = 1024
    per_client: int = 50
    trusted: frozenset[str] = frozenset({"127.0.0.1"})

    @property
    def tick(self) -> float:
        """How often a body's progress is looked at."""
        return max(0.05, min(1.0, self.body_timeout / 4))


STALLED_FOR = 1.0  # seconds a connection must have stalled before it may be cut to make room


@dataclass
class _Body:
    """A request body being read: bytes so far, and seconds the client was given (reading not paused)."""

    at: float
    active: float = 0.0
    idle: float = 0.0
    received: int = 0


def edge_protocol(limits: EdgeLimits) -> type[H11Protocol]:
    """A protocol class for one server: ``limits`` and the count of connections per address."""
    shared = {"limits": limits, "open_per_client": Counter(), "stalled": {}}
    return type("EdgeProtocol", (EdgeProtocol,), shared)


class EdgeProtocol(H11Protocol):
    limits: ClassVar[EdgeLimits] = EdgeLimits()
    # (one of each per server: see edge_protocol)
    open_per_client: ClassVar[Counter[str]] = Counter()
    stalled: ClassVar[dict[EdgeProtocol, float]] = {}  # since when, oldest first

    @classmethod
    def make_room(cls, count: int, now: float) -> int:
        """Cut up to ``count`` connections stalled for ``STALLED_FOR`` seconds or more, the longest
        stalled first; returns how many."""
        cut = 0
        for connection, since in list(cls.stalled.items()):
            if cut >= count or now - since < STALLED_FOR:
                break
            connection._cut("evicted")
            cut += 1
        return cut

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        makers = getattr(self.loop, "room_makers", None)
        if makers is not None:
            makers.add(type(self).make_room)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for_headers = False
        self._body: _Body | None = None
        host = self.client[0] if self.client else None
        self._counted = host if host is not None and host not in self.limits.trusted else None
        if self._counted is not None:
            self.open_per_client[self._counted] += 1
            if self.open_per_client[self._counted] > self.limits.per_client:
                if self.open_per_client[self._counted] == self.limits.per_client + 1:
                    log.info("web.too_many_connections", client=host, limit=self.limits.per_client)
                transport.write(_BUSY)
                transport.close()
                return
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._unstall()
        self._body = None
        if self._counted is not None:
            self.open_per_client[self._counted] -= 1
            if self.open_per_client[self._counted] <= 0:
                del self.open_per_client[self._counted]
            self._counted = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self._body is None and self.conn.their_state is h11.IDLE:
            self._await_headers()  # the next request on a kept-alive connection begins
        reading_body = self._body is not None
        super().data_received(data)
        if reading_body and self._body is not None:
            self._body.received += len(data)
            self._body.idle = 0.0
        self._follow()

    def on_response_complete(self) -> None:
        self._body = None
        super().on_response_complete()
        idle = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if idle and self.conn.trailing_data[0]:
            self._await_headers()  # the next request began while this one was being answered
        self._follow()

    # -- the deadlines ------------------------------------------------------------------------------

    def _follow(self) -> None:
        """After h11 has taken what arrived: the headers are in (stop their deadline), a body is
        expected (start watching it) or done (stop)."""
        state = self.conn.their_state
        if state is h11.IDLE or self.transport.is_closing():
            return
        if self._waiting_for_headers:
            self._disarm()
            self._unstall()
        if state is h11.SEND_BODY and self._body is None:
            self._body = _Body(at=self.loop.time())
            self._arm(self.limits.tick, self._body_check)
        elif state is not h11.SEND_BODY and self._body is not None:
            self._body = None
            self._disarm()
            self._unstall()

    def _await_headers(self) -> None:
        self._arm(self.limits.header_timeout, self._headers_late)
        self._waiting_for_headers = True
        self._stall()

    def _stall(self) -> None:
        if self not in self.stalled:
            self.stalled[self] = self.loop.time()

    def _unstall(self) -> None:
        self.stalled.pop(self, None)

    def _arm(self, seconds: float, callback) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        self._waiting_for_headers = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline, self._waiting_for_headers = None, False
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._cut("headers")

    def _body_check(self) -> None:
        self._deadline = None
        body = self._body
        if body is None or self.transport.is_closing():
            return
        now = self.loop.time()
        elapsed, body.at = now - body.at, now
        waiting = self.flow.read_paused or (self.cycle is not None and self.cycle.waiting_for_100_continue)
        if waiting:  # the application is not reading (or has not said "continue"): not the client's fault
            body.idle = 0.0
        else:
            body.active += elapsed
            body.idle += elapsed
        limits = self.limits
        below_rate = body.received < limits.min_body_rate * body.active
        if body.idle > limits.body_timeout or (below_rate and body.active > limits.body_timeout):
            self._cut("body")
            return
        if below_rate and not waiting:
            self._stall()
        else:
            self._unstall()
        self._arm(limits.tick, self._body_check)

    def _cut(self, stage: str) -> None:
        """Answer 408 (unless an answer to this request has begun), close, and tell the application
        the client is gone."""
        log.info("web.client_too_slow", client=self.client[0] if self.client else None, stage=stage)
        self._unstall()
        self._body = None
        cycle = self.cycle if stage == "body" else None
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        if cycle is None or not cycle.response_started:
            self.transport.write(_TIMEOUT)
        self.transport.close()
