"""Messages in their wire form: flattened once, then sent and stored byte for byte.

A digest made in the render process (``render_pool``) crosses over as the bytes the SMTP
conversation carries, with its raw header lines and its envelope sender: ``WireMessage`` wraps
them, so that the bytes are never flattened, nor the headers parsed, a second time in the daemon.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.policy import SMTP

from aiosmtplib.email import extract_sender

Made = tuple[bytes, str, str, list[tuple[str, str]]]  # (wire, envelope sender, Message-ID, raw headers)


class WireMessage(EmailMessage):
    """An email whose whole text is ``wire`` (CRLF line ends), with its headers for reading.

    It cannot change (the bytes are what is sent). A header is read at most once: reading one makes
    a header object, which for an address list costs more than sending the message. ``sender`` is
    the envelope's sender, taken from the From header where the message was made.
    """

    wire: bytes
    sender: str

    @classmethod
    def made(
        cls, wire: bytes, sender: str, message_id: str, headers: Iterable[tuple[str, str]]
    ) -> WireMessage:
        """The message made elsewhere (``flat``'s parts): nothing is parsed here."""
        message = cls(policy=SMTP)
        for name, value in headers:
            message.set_raw(name, value)
        message.wire, message.sender = wire, sender
        message._read = {"message-id": message_id}
        return message

    def get(self, name, failobj=None):
        key = name.lower()
        read = self.__dict__.setdefault("_read", {})
        if key not in read:
            read[key] = super().get(name, failobj)
        return read[key]

    def __setitem__(self, name, value):
        raise TypeError("a message in its wire form cannot change")

    def __delitem__(self, name):
        raise TypeError("a message in its wire form cannot change")


_HEADERS = BytesHeaderParser(policy=SMTP)
_WHOLE = BytesParser(policy=SMTP)


def to_wire(message: EmailMessage) -> bytes:
    """``message`` as it goes on the wire: what aiosmtplib's ``send_message`` makes of it (policy
    ``SMTP``: CRLF, headers as set) but for Bcc, which duban never sets."""
    if isinstance(message, WireMessage):
        return message.wire
    with io.BytesIO() as buffer:
        BytesGenerator(buffer, policy=SMTP).flatten(message)
        return buffer.getvalue()


def flat(message: EmailMessage) -> Made | str:
    """What ``WireMessage.made`` needs of ``message`` (a picklable tuple), or why it cannot be sent."""
    sender = extract_sender(message)
    message_id = message["Message-ID"]
    if not sender or not message_id:
        return "cannot render: the message has no From address or no Message-ID"
    data = to_wire(message)
    end = data.find(b"\r\n\r\n")
    headers = list(_HEADERS.parsebytes(data if end < 0 else data[: end + 4]).raw_items())
    return data, str(sender), str(message_id), headers


def whole(message: EmailMessage) -> EmailMessage:
    """``message`` with its body parsed too (a ``WireMessage`` is read back in full; any other is
    returned as it is): for those who look inside, such as ``simulate`` and the tests."""
    if isinstance(message, WireMessage):
        return _WHOLE.parsebytes(message.wire)  # type: ignore[return-value]
    return message
