"""The portal's event loop: it accepts connections only while descriptors are left for them.

asyncio's selector loop accepts every waiting connection at once (up to the listen backlog), and
when ``accept()`` fails for want of descriptors (``EMFILE``) it goes on looping, logging the error
and scheduling one more retry for every pass (CPython gh-151615, fixed only after 3.13): a burst
of connections past the descriptor limit turns the server into a busy loop of error lines that
answers nothing. ``EdgeLoop`` keeps a reserve of descriptors for the database, evidence files and
logs, and accepts at most ``max_connections`` connections at once: past that it stops accepting
for a moment and the kernel keeps the next clients waiting in the listen queue, in order, until
a connection ends. While it waits, it asks the protocols to make room (``room_makers``: the edge
cuts the connections stalled longest), so newcomers wait moments, not a whole deadline. An
``EMFILE`` all the same pauses accepting once, for a moment.

uvicorn takes it as ``Config(loop="orchestrator.web.accept:EdgeLoop")`` (a custom loop is named by
its factory: the class).
"""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import socket
from collections.abc import Callable

import structlog

log = structlog.get_logger("duban.web")

RETRY = 0.05  # seconds between looks while accepting is paused
ROOM = 16  # connections the protocols are asked to free at each look while full
_OUT_OF = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def descriptor_budget() -> int:
    """How many connections may be open at once: the descriptor limit less those already open
    and a reserve (an eighth, at least 16) for files, the database and logs."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft > 1 << 20:
        soft = 1 << 20
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 32
    return max(8, soft - in_use - max(16, soft // 8))


class EdgeLoop(asyncio.SelectorEventLoop):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = descriptor_budget()
        self._accepted: list[socket.socket] = []
        self._said_paused = float("-inf")
        self.room_makers: set[Callable[[int, float], int]] = set()  # (count, now) -> how many freed

    def open_connections(self) -> int:
        """Accepted connections whose socket is still open (closed ones forgotten)."""
        self._accepted = [conn for conn in self._accepted if conn.fileno() != -1]
        return len(self._accepted)

    def _accept_connection(self, protocol_factory, sock, sslcontext=None, server=None, backlog=100, *rest):
        room = self.max_connections - len(self._accepted)
        if room <= 0:
            room = self.max_connections - self.open_connections()
        for _ in range(min(backlog, room)):
            try:
                conn, addr = sock.accept()
                conn.setblocking(False)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF:
                    raise
                log.warning("web.accept_failed", error=errno.errorcode.get(exc.errno, str(exc.errno)))
                break
            self._accepted.append(conn)
            accept = self._accept_connection2(
                protocol_factory, conn, {"peername": addr}, sslcontext, server, *rest
            )
            self.create_task(accept)
        else:
            if room >= backlog:
                return
            if self.time() - self._said_paused > 60:  # (one line a minute while it lasts)
                self._said_paused = self.time()
                log.warning("web.accept_paused", open=len(self._accepted), limit=self.max_connections)
        self._pause(
            lambda: self._start_serving(protocol_factory, sock, sslcontext, server, backlog, *rest), sock
        )

    def _pause(self, resume: Callable[[], None], sock: socket.socket) -> None:
        """Stop accepting on ``sock`` for a moment (the kernel queues newcomers) and ask for room,
        then look again."""
        self._remove_reader(sock.fileno())

        def again() -> None:
            if sock.fileno() == -1:  # (the server closed meanwhile)
                return
            if self.max_connections - self.open_connections() > 0:
                resume()
            else:
                self._make_room()
                self.call_later(RETRY, again)

        self._make_room()
        self.call_later(RETRY, again)

    def _make_room(self) -> None:
        for make_room in list(self.room_makers):
            make_room(ROOM, self.time())
