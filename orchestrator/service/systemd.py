"""The systemd notify protocol, without a dependency.

``sd_notify(3)``: one UTF-8 datagram of ``KEY=VALUE`` lines to the ``AF_UNIX`` socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). When the variable is unset
— not started by systemd, or ``Type=`` is not ``notify`` — every call does nothing at all.
A failed send is logged once and never raised: the service must not die because systemd is
not listening. (``sdnotify`` encodes latin-1 and drops ``STATUS=运行中``: hence this module.)
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger("duban.systemd")


def notify_address(environ: Mapping[str, str]) -> str | bytes | None:
    """The socket address in ``NOTIFY_SOCKET``: a path, an abstract name (bytes), or None when unset."""
    value = environ.get("NOTIFY_SOCKET", "")
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode("utf-8")
    return value


def watchdog_interval(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``WATCHDOG_USEC``.

    None when there is no watchdog, or when ``WATCHDOG_PID`` names another process.
    """
    try:
        usec = int(environ.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner:
        try:
            if int(owner) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    return usec / 2 / 1_000_000


def monotonic_usec() -> int:
    """``CLOCK_MONOTONIC`` in microseconds (for ``MONOTONIC_USEC=`` beside ``RELOADING=1``)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends notifications to systemd; a no-op when ``NOTIFY_SOCKET`` is unset.

    Each method sends one datagram; ``status`` may accompany any state. Returns True when a
    datagram was sent.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.address = notify_address(environ)
        self.watchdog_interval = watchdog_interval(environ)
        self._socket: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``"READY=1"``, ``"STATUS=…"``) as one datagram."""
        if self.address is None or not fields:
            return False
        payload = "\n".join(fields).encode("utf-8")
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(payload, self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("systemd.notify_failed", socket=_printable(self.address), error=str(exc))
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *_status(status))

    def status(self, status: str) -> bool:
        return self.notify(*_status(status))

    def reloading(self, status: str | None = None) -> bool:
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", *_status(status))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *_status(status))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _status(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    return ("STATUS=" + " ".join(text.split()),)  # one line: a newline would start a new field


def _printable(address: str | bytes) -> str:
    return "@" + address[1:].decode("utf-8", "replace") if isinstance(address, bytes) else address
