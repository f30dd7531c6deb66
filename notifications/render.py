"""A digest rendered into one email: text and HTML bodies, an ``.ics`` part, item attachments.

Deterministic: given the same digest, only the Date header and the calendar's DTSTAMP (both from
``now``) differ between two renderings. The Message-ID comes from the item keys.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable, Generator
from dataclasses import replace
from datetime import datetime
from email.headerregistry import Address, BaseHeader
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from notifications import sheet, view
from notifications.ics import build_calendar
from notifications.model import DEADLINE_KINDS, Digest, Signature, digest_message_id

CALENDAR_FILENAME = "duban.ics"


# CRLF line ends, RFC 2047, lines of at most 78 characters.
POLICY = SMTP


@functools.cache
def _prefolded_class(name: str) -> type:
    """The header class of ``name``, writing itself as given instead of re-folding (see ``_header``)."""
    base = SMTP.header_factory[name]

    class Prefolded(base):  # type: ignore[misc, valid-type]
        def fold(self, *, policy) -> str:
            return f"{self.name}: {policy.linesep.join(self.folded.splitlines())}{policy.linesep}"

    return Prefolded


def _header(name: str, folded: str) -> BaseHeader:
    """A parsed header (so reading it back is free) that is written as ``folded`` (so writing is too).

    The generator reads ``Content-Type`` back several times per part and the email package's
    parsing and re-folding cost more than the rest of the rendering together. ``folded`` must be
    ASCII, with lines of at most 78 characters.
    """
    header = _prefolded_class(name)(name, "".join(folded.splitlines()))
    header.folded = folded
    return header


def make_environment() -> Environment:
    """The Jinja2 environment of the package templates (HTML templates autoescaped)."""
    return Environment(
        loader=PackageLoader("notifications", "templates"),
        # select_autoescape matches name suffixes: "x.html.j2" needs "html.j2" listed.
        autoescape=select_autoescape(enabled_extensions=("html", "xml", "html.j2"), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # the templates ship with the package: no stat() of their files per message
    )


class Renderer:
    """Renders digests into ``EmailMessage`` objects (``email.policy.SMTP``: CRLF, RFC 2047)."""

    def __init__(
        self,
        *,
        sender: str,
        reply_to: str | None = None,
        domain: str,
        timezone: str,
        link_for: Callable[[str], str | None] | None = None,
        office_url: str | None = None,
        calendar: str = "events",
        signature: Signature | None = None,
    ) -> None:
        """``link_for(unit_id)``: the unit's personal link (made by the service: signed), or None;
        ``office_url``: the office's review page; ``calendar``: deadlines in the ``.ics`` part as
        ``events``, ``todos`` or ``both``; ``signature``: the office that signs every digest."""
        self.link_for = link_for
        self.office_url = office_url
        self.sender = sender
        self.calendar = calendar
        self.signature = signature
        self.reply_to = reply_to
        self.domain = domain
        self.timezone = ZoneInfo(timezone)
        self._env = make_environment()
        # Parsed once, written as folded here: ``aiosmtplib`` reads From back for every message.
        self._from = _header("From", _addresses("From", sender))
        self._reply_to = _header("Reply-To", _addresses("Reply-To", reply_to)) if reply_to else None
        # What another process needs to make the same renderer (the links are made here: ``linked``).
        self.settings: tuple[tuple[str, Any], ...] = (
            ("sender", sender),
            ("reply_to", reply_to),
            ("domain", domain),
            ("timezone", timezone),
            ("office_url", office_url),
            ("calendar", calendar),
            ("signature", signature),
        )

    def subject(self, digest: Digest) -> str:
        """The Chinese subject line, e.g. ``【督办提醒】法治政府建设指标体系试点：3项逾期``."""
        return view.subject(digest)

    def message_id(self, digest: Digest) -> str:
        return digest_message_id((item.key for item in digest.items), self.domain)

    def linked(self, digest: Digest) -> Digest:
        """``digest`` with its unit's personal link, if there is a link maker and it has none yet."""
        if digest.link is None and self.link_for is not None:
            return replace(digest, link=self.link_for(digest.recipient.unit_id))
        return digest

    def render(self, digest: Digest, *, now: datetime, message_id: str | None = None) -> EmailMessage:
        """One email to one unit; ``now`` (aware) only sets the Date header and DTSTAMP; ``message_id``
        (the one stored when it was queued) wins over the one the item keys give, should they differ
        (the domain changed in config since)."""
        steps = self.render_in_steps(digest, now=now, message_id=message_id)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    def render_in_steps(
        self, digest: Digest, *, now: datetime, message_id: str | None = None
    ) -> Generator[None, None, EmailMessage]:
        """``render`` as a generator that yields between its costly steps (each a fraction of a
        millisecond) and returns the email: a sender can render the next message between the mail
        server's replies to the current one instead of making the server wait."""
        if now.tzinfo is None:
            raise ValueError("render() needs an aware datetime for now")
        if not digest.items:
            raise ValueError(f"digest for {digest.recipient.unit_id!r} has no items")
        if not digest.recipient.emails:
            raise ValueError(f"unit {digest.recipient.unit_id!r} has no email address")
        subject = self.subject(digest)
        digest = self.linked(digest)
        attachments: list[tuple[str, str, bytes]] = []
        if view.is_before_start(digest):
            digest_view = view.build_before_start(digest)
            template = "before_start"
            listed = view.before_start_items(digest)
            data = sheet.xlsx(listed, digest.send_date, title="启用前已到期事项", for_import=True)
            attachments.append((digest_view.attachment, sheet.XLSX, data))
        else:
            digest_view, template = view.build(digest, self.office_url, signature=self.signature), "digest"
            if digest_view.attachment:  # more than can be read in full: the whole list attached
                data = sheet.xlsx(view.by_urgency(digest.items), digest.send_date, title="督办事项清单")
                attachments.append((digest_view.attachment, sheet.XLSX, data))
        yield
        text = self._env.get_template(f"{template}.txt.j2").render(view=digest_view, subject=subject)
        yield
        html = self._env.get_template(f"{template}.html.j2").render(view=digest_view, subject=subject)
        yield

        # Every header is written here already encoded and folded (``set_raw``), so that flattening
        # the message copies it instead of re-folding it with the email package (several ms per
        # message, and Python 3.11 before 3.11.8 folds some address lists wrongly).
        message_id = message_id or self.message_id(digest)
        message = EmailMessage(policy=POLICY)
        message.set_raw("From", self._from)
        message.set_raw(
            "To", address_list("To", [(digest.recipient.name, e) for e in digest.recipient.emails])
        )
        if self._reply_to:
            message.set_raw("Reply-To", self._reply_to)
        message.set_raw("Subject", unstructured("Subject", subject))
        message.set_raw("Date", format_datetime(now.astimezone(self.timezone)))
        message.set_raw("Message-ID", message_id)
        message.set_raw("Auto-Submitted", "auto-generated")
        message.set_raw("X-Auto-Response-Suppress", "All")
        message.set_raw("MIME-Version", "1.0")
        # multipart/mixed [multipart/alternative [text, HTML], calendar, attachments…]; every text part
        # base64: a 7-bit ASCII wire form whatever the server supports.
        message.set_raw("Content-Type", _MIXED)
        alternative = EmailMessage(policy=POLICY)
        alternative.set_raw("Content-Type", _ALTERNATIVE)
        alternative.attach(_text_part(text, _PLAIN))
        alternative.attach(_text_part(html, _HTML))
        message.attach(alternative)
        yield
        # the calendar: the recipient's own to-dos (never the late units' of an escalation), of the
        # items listed in full (a bounded part; the rest are in the attached list)
        listed = [] if view.is_before_start(digest) else view.listed_in_full(digest)[0]
        own = [i for i in listed if i.unit == digest.recipient.unit_id or i.kind not in DEADLINE_KINDS]
        ics = build_calendar(own, domain=self.domain, now=now, kind=self.calendar)
        if ics is not None:
            message.attach(_text_part(ics.decode("utf-8"), _CALENDAR, _CALENDAR_DISPOSITION))
        for item in sorted(digest.items, key=lambda i: i.key):
            if item.attachment is not None:
                _attach(message, *item.attachment)
        for attachment in attachments:
            _attach(message, *attachment)
        message.set_raw("Content-Language", "zh-CN")
        return message


def _addresses(header: str, value: str) -> str:
    """A configured address header (``Name <addr>, …``) as a raw, encoded and folded value."""
    addresses = POLICY.header_factory(header, value).addresses
    if not addresses:  # not an address: passed on as text (the mail server will say what it thinks)
        return unstructured(header, value)
    return address_list(header, [(a.display_name, a.addr_spec) for a in addresses])


def address_list(header: str, addresses: list[tuple[str, str]]) -> str:
    """An address header's value (``[(name, email), …]``), RFC 2047-encoded and folded: one per line."""
    lines: list[str] = []
    for number, (name, email) in enumerate(addresses):
        comma = "," if number < len(addresses) - 1 else ""
        if name.isascii() and len(name) + len(email) < 60:
            lines.append(str(Address(display_name=name, addr_spec=email)) + comma)
            continue
        lines.extend(_encoded_words(name, first=_first_budget(header) if not lines else _WORD_BYTES))
        lines.append(f"<{email}>{comma}")
    return "\r\n ".join(lines)


def unstructured(header: str, text: str) -> str:
    """A one-line text (a Subject) as a raw header value: as is if short ASCII, else encoded words."""
    text = " ".join(text.split())
    if text.isascii() and len(header) + len(text) < 70:
        return text
    return "\r\n ".join(_encoded_words(text, first=_first_budget(header)))


_WORD_BYTES = 45  # base64 of 45 bytes is 60 characters: an encoded word of 72 (RFC 2047: at most 75)


def _first_budget(header: str) -> int:
    """Bytes in the encoded word that shares the first line with ``Header: `` (78 characters in all)."""
    return (78 - len(header) - 2 - len("=?utf-8?b??=")) // 4 * 3


def _encoded_words(text: str, *, first: int = _WORD_BYTES) -> list[str]:
    """``text`` as base64 encoded words, the first of at most ``first`` bytes, the others of at most
    ``_WORD_BYTES``; never splitting a character."""
    words: list[str] = []
    chunk = b""
    budget = first
    for char in text:
        data = char.encode("utf-8")
        if chunk and len(chunk) + len(data) > budget:
            words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
            chunk, budget = b"", _WORD_BYTES
        chunk += data
    if chunk:
        words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
    return words


# Fixed boundaries: every part is base64 (``=_`` occurs neither there nor in RFC 2047 words), so
# no body can contain them, and the same digest gives the same bytes.
_MIXED = _header("Content-Type", 'multipart/mixed;\r\n boundary="=_duban_mixed_0"')
_ALTERNATIVE = _header("Content-Type", 'multipart/alternative;\r\n boundary="=_duban_alternative_1"')
_PLAIN = _header("Content-Type", 'text/plain; charset="utf-8"')
_HTML = _header("Content-Type", 'text/html; charset="utf-8"')
_CALENDAR = _header("Content-Type", 'text/calendar; charset="utf-8"; method="PUBLISH"')
_CALENDAR_DISPOSITION = _header("Content-Disposition", f'attachment; filename="{CALENDAR_FILENAME}"')
_BASE64 = _header("Content-Transfer-Encoding", "base64")


def _text_part(content: str, content_type: BaseHeader, disposition: BaseHeader | None = None) -> EmailMessage:
    """A UTF-8 text part, base64-encoded as ``set_content(..., cte="base64")`` does it."""
    part = EmailMessage(policy=POLICY)
    part.set_raw("Content-Type", content_type)
    part.set_raw("Content-Transfer-Encoding", _BASE64)
    if disposition is not None:
        part.set_raw("Content-Disposition", disposition)
    data = b"\r\n".join(content.encode("utf-8").splitlines()) + b"\r\n"
    encoded = binascii.b2a_base64(data, newline=False).decode("ascii")
    width = POLICY.max_line_length // 4 * 4  # 76: what set_content writes (57 bytes a line)
    part.set_payload("\n".join([encoded[i : i + width] for i in range(0, len(encoded), width)]) + "\n")
    return part


def _attach(message: EmailMessage, filename: str, mime_type: str, data: bytes) -> None:
    """Attach bytes; ``text/*`` without a charset parameter is taken to be UTF-8."""
    content_type, *raw_params = (part.strip() for part in mime_type.split(";"))
    maintype, _, subtype = content_type.partition("/")
    params = dict(p.split("=", 1) for p in raw_params if "=" in p)
    params = {k.strip().lower(): v.strip().strip('"') for k, v in params.items()}
    if maintype == "text":
        params.setdefault("charset", "utf-8")
    if not maintype or not subtype:
        maintype, subtype = "application", "octet-stream"
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename, params=params)
