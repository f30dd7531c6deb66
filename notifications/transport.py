"""How rendered messages leave duban: one ``Transport`` protocol, three implementations.

``classify`` is the one place that decides whether a failure is temporary (retry later) or
permanent (mark failed, tell the admin). Every error raised here is a ``TransportError`` whose
message is one line naming the server and, where there is one, the SMTP reply code; it never
contains the password.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import structlog
from aiosmtplib import (
    SMTP,
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)

from notifications.errors import PermanentFailure, TemporaryFailure, TransportError
from notifications.wire import WireMessage, to_wire, whole

log = structlog.get_logger("duban.notifications.transport")

Security = Literal["starttls", "tls", "none"]

# What a network conversation can raise; anything else is a bug and propagates as is.
NETWORK_ERRORS = (SMTPException, ssl.SSLError, OSError, asyncio.TimeoutError)


@dataclass(frozen=True)
class SendResult:
    """What the mail system took.

    ``refused`` maps an address refused for good (5xx) to its reply, e.g. ``550 5.1.1 …``;
    ``deferred`` an address refused for now (4xx at RCPT, e.g. ``452 4.2.2 mailbox full``): the
    message is owed to it and tried again later, with the same Message-ID.
    """

    accepted: tuple[str, ...]
    refused: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Transport(Protocol):
    """Hands messages to a mail system. ``open`` once, ``send`` a batch, ``close``.

    ``send`` returns which recipients were accepted, which were refused one by one for good (5xx)
    and which for now (4xx: ``deferred``, to be tried again); it raises ``TemporaryFailure`` when the whole message
    should be tried again later and ``PermanentFailure`` when it never will go through.
    """

    async def open(self) -> None: ...

    async def send(self, message: EmailMessage, recipients: Sequence[str]) -> SendResult: ...

    async def close(self) -> None: ...


# -- classification ---------------------------------------------------------------------------


def classify(exc: BaseException, *, server: str = "smtp", secrets: Iterable[str] = ()) -> TransportError:
    """The one place that says which failure is temporary and which is permanent.

    SMTP 4xx, timeouts, dropped or refused connections: temporary. SMTP 5xx (including all
    recipients refused with 5xx and 535 bad credentials), a rejected TLS certificate, a failed
    TLS handshake, a server lacking a required extension, an unusable address: permanent.
    ``server`` names where (``host:port``); every string in ``secrets`` is blanked out.
    """
    error_type, text = _classify(exc)
    text = " ".join(f"{server}: {text}".split())  # one line, whatever the server sent
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return error_type(text)


def _classify(exc: BaseException) -> tuple[type[TransportError], str]:
    cert_error = _find_cause(exc, ssl.SSLCertVerificationError)
    if cert_error is not None:
        reason = getattr(cert_error, "verify_message", None) or str(cert_error)
        return PermanentFailure, f"TLS certificate rejected: {reason}"
    if isinstance(exc, SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        replies = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        kind = PermanentFailure if codes and all(_is_permanent(c) for c in codes) else TemporaryFailure
        return kind, f"all recipients refused: {replies}"
    if isinstance(exc, SMTPResponseException) and not isinstance(exc, SMTPConnectResponseError):
        what = _RESPONSE_WHAT.get(type(exc), "server replied")
        kind = PermanentFailure if _is_permanent(exc.code) else TemporaryFailure
        return kind, f"{what}: {exc.code} {exc.message}"
    if isinstance(exc, SMTPConnectResponseError):
        kind = PermanentFailure if _is_permanent(exc.code) else TemporaryFailure
        return kind, f"greeting refused: {exc.code} {exc.message}"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):  # SMTPTimeoutError is one too
        return TemporaryFailure, f"timed out: {_text(exc) or 'no reply'}"
    if isinstance(exc, SMTPServerDisconnected):
        return TemporaryFailure, f"connection lost: {_text(exc)}"
    if isinstance(exc, SMTPConnectError):
        return TemporaryFailure, f"cannot connect: {_text(exc)}"
    if isinstance(exc, ssl.SSLError):
        if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError):
            return TemporaryFailure, f"TLS connection lost: {_text(exc)}"
        return PermanentFailure, f"TLS handshake failed: {_text(exc)}"
    if isinstance(exc, SMTPNotSupported):
        return PermanentFailure, f"not supported by the server: {_text(exc)}"
    if isinstance(exc, SMTPException):
        return PermanentFailure, f"SMTP error: {_text(exc)}"
    if isinstance(exc, OSError):
        return TemporaryFailure, f"network error: {_text(exc)}"
    if isinstance(exc, ValueError):
        return PermanentFailure, f"message not sendable: {_text(exc)}"
    return TemporaryFailure, f"{type(exc).__name__}: {_text(exc)}"


_RESPONSE_WHAT: dict[type, str] = {
    SMTPAuthenticationError: "authentication failed",
    SMTPSenderRefused: "sender refused",
    SMTPDataError: "message refused",
    SMTPHeloError: "EHLO refused",
}


def _is_permanent(code: int) -> bool:
    return 500 <= code < 600


def _text(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc)


def _find_cause(exc: BaseException, wanted: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, wanted):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


# -- SMTP -------------------------------------------------------------------------------------


class SmtpTransport:
    """aiosmtplib over one connection reused for a batch; reconnects once if it was dropped.

    Certificates are verified unless ``verify=False``; ``ca_file`` trusts a private CA.
    ``security="starttls"`` refuses to go on in plain text if the server lacks STARTTLS.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        verify: bool = True,
        ca_file: str | Path | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"security must be starttls, tls or none, not {security!r}")
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self._password = password
        self.timeout = timeout
        self.verify = verify
        self.ca_file = str(ca_file) if ca_file is not None else None
        self.local_hostname = local_hostname
        self._client: SMTP | None = None

    def __repr__(self) -> str:
        password = "'***'" if self._password else "None"
        return (
            f"SmtpTransport(host={self.host!r}, port={self.port}, security={self.security!r}, "
            f"username={self.username!r}, password={password}, verify={self.verify}, "
            f"ca_file={self.ca_file!r})"
        )

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    async def open(self) -> None:
        if self._client is None or not self._client.is_connected:
            await self._connect()

    async def send(self, message: EmailMessage, recipients: Sequence[str]) -> SendResult:
        addresses = list(dict.fromkeys(recipients))
        if not addresses:
            raise PermanentFailure(f"{self.server}: message {message['Message-ID']} has no recipients")
        for attempt in (1, 2):
            client = self._client
            if client is None or not client.is_connected:
                await self._connect()
                client = self._client
                assert client is not None
            try:
                errors, _ = await _send_over(client, message, addresses)
            except SMTPServerDisconnected as exc:
                self._drop()
                if attempt == 2:
                    raise self._error(exc) from exc
                log.info("smtp.reconnecting", server=self.server, reason=_text(exc))
                continue
            except (*NETWORK_ERRORS, ValueError) as exc:
                if not isinstance(exc, SMTPResponseException | SMTPRecipientsRefused | ValueError):
                    self._drop()  # the conversation is in an unknown state
                raise self._error(exc) from exc
            replies = {
                address: (reply.code, f"{reply.code} {reply.message}") for address, reply in errors.items()
            }
            refused = {a: text for a, (code, text) in replies.items() if _is_permanent(code)}
            deferred = {a: text for a, (code, text) in replies.items() if not _is_permanent(code)}
            accepted = tuple(a for a in addresses if a not in replies)
            log.info(
                "smtp.sent",
                server=self.server,
                message_id=message["Message-ID"],
                accepted=len(accepted),
                refused=sorted(refused),
                deferred=sorted(deferred),
            )
            return SendResult(accepted=accepted, refused=refused, deferred=deferred)
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if client.is_connected:
                await client.quit()
        except NETWORK_ERRORS:
            pass
        finally:
            client.close()

    async def _connect(self) -> None:
        self._drop()
        client = SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self._password,
            local_hostname=self.local_hostname,
            timeout=self.timeout,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",
            tls_context=self._tls_context(),
        )
        try:
            await client.connect()
        except NETWORK_ERRORS as exc:
            client.close()
            raise self._error(exc) from exc
        self._client = client
        log.info(
            "smtp.connected",
            server=self.server,
            security=self.security,
            verify=self.verify,
            authenticated=self.username is not None,
        )

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.security == "none":
            return None
        if self.verify:
            return ssl.create_default_context(cafile=self.ca_file)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def _error(self, exc: BaseException) -> TransportError:
        secrets = [self._password] if self._password else []
        return classify(exc, server=self.server, secrets=secrets)


async def _send_over(client: SMTP, message: EmailMessage, addresses: list[str]):
    """``message`` over ``client``: a ``WireMessage`` as its bytes (flattened once, in the render
    process), any other flattened by aiosmtplib."""
    if isinstance(message, WireMessage):  # as send_message would ask for a non-ASCII address
        ascii_only = all(a.isascii() for a in (message.sender, *addresses))
        return await client.sendmail(
            message.sender, addresses, message.wire, mail_options=[] if ascii_only else ["SMTPUTF8"]
        )
    return await client.send_message(message, recipients=addresses)


# -- Maildir ----------------------------------------------------------------------------------


class MaildirTransport:
    """Writes each message as ``root/new/NAME.eml`` instead of sending it (the embedded default).

    NAME comes from the Message-ID, so a re-send after a crash replaces the file instead of
    adding a second one. Each write goes to ``root/tmp`` first, is fsynced, then renamed.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"MaildirTransport(root={str(self.root)!r})"

    async def open(self) -> None:
        try:
            await asyncio.to_thread(self._make_dirs)
        except OSError as exc:
            raise self._error(exc) from exc

    async def send(self, message: EmailMessage, recipients: Sequence[str]) -> SendResult:
        data = to_wire(message)
        name = maildir_name(message)
        try:
            path = await asyncio.to_thread(self._write, name, data)
        except OSError as exc:
            raise self._error(exc) from exc
        log.info("maildir.written", path=str(path), message_id=message["Message-ID"])
        return SendResult(accepted=tuple(dict.fromkeys(recipients)), refused={})

    async def close(self) -> None:
        return None

    def _error(self, exc: OSError) -> TemporaryFailure:
        """A file that cannot be written (a full disk, a read-only or unwritable folder): said as such,
        never as a "network error"; retried (the folder may be fixed meanwhile)."""
        where = f" {exc.filename}" if exc.filename else ""
        return TemporaryFailure(f"maildir {self.root}: cannot write{where}: {exc.strerror or exc}")

    def path_for(self, message: EmailMessage) -> Path:
        return self.root / "new" / f"{maildir_name(message)}.eml"

    def _make_dirs(self) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def _write(self, name: str, data: bytes) -> Path:
        self._make_dirs()
        tmp = self.root / "tmp" / f"{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        final = self.root / "new" / f"{name}.eml"
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(final.parent)
        return final


def maildir_name(message: EmailMessage) -> str:
    """A file name from the Message-ID: ``<abc@example.org>`` gives ``abc@example.org``."""
    name = maildir_file_name(message["Message-ID"] or "")
    if not name:
        raise PermanentFailure("maildir: a message without Message-ID cannot be stored idempotently")
    return name


def maildir_file_name(message_id: str) -> str:
    """The file name (without ``.eml``) a Message-ID is stored under; ``""`` for none."""
    return re.sub(r"[^A-Za-z0-9@._+-]", "_", message_id.strip().strip("<>"))[:200]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- capture ----------------------------------------------------------------------------------


class CaptureTransport:
    """Keeps every ``(message, recipients)`` in ``.sent``; for ``simulate`` and tests.

    ``refuse`` maps addresses to the reply they get (a ``5…`` reply in ``SendResult.refused``, a
    ``4…`` one in ``SendResult.deferred``);
    ``failures`` is a queue of errors raised by the next sends, one per send.
    """

    def __init__(
        self,
        *,
        refuse: dict[str, str] | None = None,
        failures: Iterable[TransportError] = (),
    ) -> None:
        self.sent: list[tuple[EmailMessage, tuple[str, ...]]] = []
        self.refuse = dict(refuse or {})
        self.failures = list(failures)
        self.opened = 0
        self.closed = 0

    async def open(self) -> None:
        self.opened += 1

    async def send(self, message: EmailMessage, recipients: Sequence[str]) -> SendResult:
        if self.failures:
            raise self.failures.pop(0)
        addresses = tuple(dict.fromkeys(recipients))
        replies = {a: self.refuse[a] for a in addresses if a in self.refuse}
        accepted = tuple(a for a in addresses if a not in replies)
        if not accepted:
            shown = "; ".join(f"{a}: {r}" for a, r in replies.items()) or "no recipients"
            permanent = all(r.startswith("5") for r in replies.values())
            error = PermanentFailure if permanent else TemporaryFailure
            raise error(f"capture: all recipients refused: {shown}")
        self.sent.append((whole(message), addresses))
        refused = {a: r for a, r in replies.items() if r.startswith("5")}
        deferred = {a: r for a, r in replies.items() if not r.startswith("5")}
        return SendResult(accepted=accepted, refused=refused, deferred=deferred)

    async def close(self) -> None:
        self.closed += 1
