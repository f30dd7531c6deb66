"""Real SMTP servers for tests: aiosmtpd in a thread, with knobs for the faults mail systems have.

Import it from a test module (``from smtp_server import SmtpServer, self_signed_cert``)::

    with SmtpServer(rcpt_reply={"gone@example.org": "550 5.1.1 no such user"}) as server:
        ...  # send to server.host, server.port
        assert server.received[0].message["Subject"] == "..."

Knobs (all may be changed while the server runs):

- ``rcpt_reply``: address -> the reply to its RCPT TO (e.g. ``"550 5.1.1 no such user"``);
  other addresses get ``250``.
- ``data_replies``: a queue of replies to the next DATA commands (``["451 4.3.0 try later"]``);
  a ``2xx`` reply delivers, anything else refuses; once empty every message is delivered.
- ``drop_after``: close a connection after it has delivered that many messages.
- ``drop_on_mail``: the next that many MAIL FROM commands get no reply: the server hangs up.
- ``tls_context`` (STARTTLS) / ``implicit_tls``, ``require_starttls``, ``credentials``
  (login -> password; AUTH is then offered, after TLS unless ``auth_require_tls=False``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HOST = "127.0.0.1"


@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: tuple  # the client's (host, port): one value per connection
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=default)  # type: ignore[return-value]


def free_port() -> int:
    """A TCP port nobody listens on right now, for a program started as a subprocess that binds it
    itself (another could take it meanwhile: unlikely, the OS hands out ports at random). A server
    in this process is handed a socket bound to port 0 instead (``bound_socket``), and a port where
    nothing may listen is held (``refused_port``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def bound_socket() -> socket.socket:
    """A TCP socket bound to a port the OS picked on 127.0.0.1: a server listens on it, and no other
    test (another pytest-xdist worker) can take the port between the pick and the listen."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    return sock


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 where every connection is refused while the block runs: bound here and
    never listened on, so that no other test can start a server there meanwhile."""
    with bound_socket() as sock:
        yield sock.getsockname()[1]


class _BoundController(Controller):
    """aiosmtpd's controller serving a socket bound beforehand (its own ``port=0`` does not work:
    it connects to the port it was given to check the server is up)."""

    def __init__(self, handler, sock: socket.socket, **kwargs) -> None:
        self._sock = sock
        super().__init__(handler, hostname=HOST, port=sock.getsockname()[1], **kwargs)

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate for ``localhost`` and ``127.0.0.1``: ``(cert.pem, key.pem)``."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "2",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@dataclass
class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 and a free port; ``received`` lists what it accepted."""

    tls_context: ssl.SSLContext | None = None
    implicit_tls: bool = False
    require_starttls: bool = False
    credentials: dict[str, str] | None = None
    auth_require_tls: bool = True
    rcpt_reply: dict[str, str] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    drop_after: int | None = None
    drop_on_mail: int = 0
    received: list[Received] = field(default_factory=list)
    auth_attempts: list[tuple[str, str]] = field(default_factory=list)  # (mechanism, login)
    host: str = HOST
    port: int = 0

    def __post_init__(self) -> None:
        self._controller: Controller | None = None
        self._per_connection: dict[tuple, int] = {}
        self._lock = threading.Lock()

    def start(self) -> SmtpServer:
        sock = bound_socket()
        self.port = sock.getsockname()[1]
        smtp_options: dict = {
            "server_hostname": "smtp.test",
            "require_starttls": self.require_starttls,
            "auth_require_tls": self.auth_require_tls,
        }
        if self.tls_context is not None and not self.implicit_tls:
            smtp_options["tls_context"] = self.tls_context
        if self.credentials is not None:
            smtp_options["authenticator"] = self._authenticate
            smtp_options["auth_required"] = True
        self._controller = _BoundController(
            _Handler(self),
            sock,
            ssl_context=self.tls_context if self.implicit_tls else None,
            ready_timeout=60,  # (its 5 s is not enough for a thread to start on a crowded machine)
            **smtp_options,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def connections(self) -> int:
        """How many connections delivered at least one message."""
        return len({r.peer for r in self.received})

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login = auth_data.login.decode()
        self.auth_attempts.append((mechanism, login))
        expected = (self.credentials or {}).get(login)
        if expected is not None and auth_data.password.decode() == expected:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)  # success=False alone hangs the client


class _Handler:
    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_MAIL(self, server, session, envelope, address, mail_options) -> str:
        if self.owner.drop_on_mail > 0:
            self.owner.drop_on_mail -= 1
            server.transport.close()
            return "421 4.4.2 closing"  # never reaches the client: the connection is gone
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        reply = self.owner.rcpt_reply.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        owner = self.owner
        reply = owner.data_replies.pop(0) if owner.data_replies else "250 2.0.0 queued"
        if not reply.startswith("2"):
            return reply
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        owner.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                data=bytes(envelope.original_content),
                peer=tuple(session.peer),
                tls=server.transport.get_extra_info("ssl_object") is not None,
                login=login,
            )
        )
        with owner._lock:
            count = owner._per_connection.get(tuple(session.peer), 0) + 1
            owner._per_connection[tuple(session.peer)] = count
        if owner.drop_after is not None and count >= owner.drop_after:
            # after the reply below has been written: the client sees a clean 250, then EOF
            asyncio.get_running_loop().call_soon(server.transport.close)
        return reply


class SilentServer:
    """Accepts TCP connections and never says a word; ``connections`` counts them."""

    def __init__(self) -> None:
        self.host = HOST
        self._socket = bound_socket()
        self.port = self._socket.getsockname()[1]
        self._accepted: list[socket.socket] = []

    @property
    def connections(self) -> int:
        return len(self._accepted)

    def _accept(self) -> None:
        while True:
            try:
                self._accepted.append(self._socket.accept()[0])  # held open, silent
            except OSError:  # closed by __exit__
                return

    def __enter__(self) -> SilentServer:
        self._socket.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        for connection in self._accepted:
            connection.close()
