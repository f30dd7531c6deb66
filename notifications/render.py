"""A digest rendered into one email: text and HTML bodies, an ``.ics`` part, item attachments.

Deterministic: given the same digest, only the Date header and the calendar's DTSTAMP (both from
``now``) differ between two renderings. The Message-ID comes from the item keys.
"""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from notifications import view
from notifications.ics import build_calendar
from notifications.model import Digest, digest_message_id

CALENDAR_FILENAME = "duban.ics"


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
    )


class Renderer:
    """Renders digests into ``EmailMessage`` objects (``email.policy.SMTP``: CRLF, RFC 2047)."""

    def __init__(
        self,
        *,
        sender: str,
        reply_to: str | None = None,
        domain: str,
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self.sender = sender
        self.reply_to = reply_to
        self.domain = domain
        self.timezone = ZoneInfo(timezone)
        self._env = make_environment()

    def subject(self, digest: Digest) -> str:
        """The Chinese subject line, e.g. ``【督办提醒】法治政府建设指标体系试点：3项逾期``."""
        return view.subject(digest)

    def message_id(self, digest: Digest) -> str:
        return digest_message_id((item.key for item in digest.items), self.domain)

    def render(self, digest: Digest, *, now: datetime) -> EmailMessage:
        """One email to one unit; ``now`` (aware) only sets the Date header and DTSTAMP."""
        if now.tzinfo is None:
            raise ValueError("render() needs an aware datetime for now")
        if not digest.items:
            raise ValueError(f"digest for {digest.recipient.unit_id!r} has no items")
        if not digest.recipient.emails:
            raise ValueError(f"unit {digest.recipient.unit_id!r} has no email address")
        subject = self.subject(digest)
        digest_view = view.build(digest)
        text = self._env.get_template("digest.txt.j2").render(view=digest_view, subject=subject)
        html = self._env.get_template("digest.html.j2").render(view=digest_view, subject=subject)

        message = EmailMessage(policy=SMTP)
        message["From"] = self.sender
        message["To"] = [
            Address(display_name=digest.recipient.name, addr_spec=email) for email in digest.recipient.emails
        ]
        if self.reply_to:
            message["Reply-To"] = self.reply_to
        message["Subject"] = subject
        message["Date"] = format_datetime(now.astimezone(self.timezone))
        message["Message-ID"] = self.message_id(digest)
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
        # base64 keeps the wire form 7-bit ASCII whatever the server supports.
        message.set_content(text, subtype="plain", charset="utf-8", cte="base64")
        message.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
        message.make_mixed()

        ics = build_calendar(digest.items, domain=self.domain, now=now)
        if ics is not None:
            message.add_attachment(
                ics.decode("utf-8"),
                subtype="calendar",
                charset="utf-8",
                cte="base64",
                filename=CALENDAR_FILENAME,
                params={"method": "PUBLISH"},
            )
        for item in sorted(digest.items, key=lambda i: i.key):
            if item.attachment is not None:
                _attach(message, *item.attachment)
        _fix_boundaries(message)
        # Last: making the message multipart moves Content-* headers into the first part.
        message["Content-Language"] = "zh-CN"
        return message


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


def _fix_boundaries(message: EmailMessage) -> None:
    """Boundaries derived from the Message-ID instead of random ones: the same digest gives the
    same bytes. ``=_`` can occur neither in base64 bodies nor in RFC 2047 words."""
    token = message["Message-ID"].strip("<>").partition("@")[0][:24]
    multiparts = (part for part in message.walk() if part.is_multipart())
    for number, part in enumerate(multiparts):
        part.set_boundary(f"=_duban_{token}_{number}")
