"""The admin's failure report: the outbox messages that could not be delivered, as one email (zh-CN).

Plain data in (``Undelivered`` rows, the time, the sender, the admin and the domain), an
``EmailMessage`` out, its body rendered from ``templates/failures.txt.j2`` like every other email.
The outbox decides what to list and when; this module only words it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from notifications import zh
from notifications.render import make_environment

NUMERALS = ("一", "二")


@dataclass(frozen=True)
class Undelivered:
    """One outbox message to report: ``failed`` (not delivered at all) or sent with ``refused`` recipients."""

    id: int
    recipient: str  # the unit id (or another recipient name) the message was for
    to: Sequence[str]
    subject: str
    failed: bool
    attempts: int = 0
    last_error: str | None = None
    refused: Mapping[str, str] = field(default_factory=dict)  # address → the server's reply


@dataclass(frozen=True)
class _Section:
    heading: str
    rows: tuple[Undelivered, ...]


def failure_report(
    rows: Sequence[Undelivered], *, now: datetime, sender: str, admin: str, domain: str, timezone: str
) -> EmailMessage:
    """The report's email (plain text, zh-CN): each message, its recipients, and what went wrong.

    The Message-ID is derived from the listed ids and the local day, so a re-render is the same message.
    """
    local = now.astimezone(ZoneInfo(timezone))
    failed = tuple(m for m in rows if m.failed)
    refused = tuple(m for m in rows if not m.failed)
    sections: list[_Section] = []
    if failed:
        sections.append(_Section(f"{NUMERALS[len(sections)]}、投递失败的邮件（{len(failed)}封）", failed))
    if refused:
        heading = f"{NUMERALS[len(sections)]}、已投递但有收件人被拒收的邮件（{len(refused)}封）"
        sections.append(_Section(heading, refused))
    text = (
        make_environment()
        .get_template("failures.txt.j2")
        .render(when=f"{zh.day(local.date())} {local:%H:%M}", sections=sections)
    )
    digest = hashlib.sha256(",".join(str(m.id) for m in rows).encode()).hexdigest()[:16]
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = admin
    message["Subject"] = f"【督办系统】{len(rows)}封邮件投递失败或被拒收"
    message["Date"] = format_datetime(local)
    message["Message-ID"] = f"<failures-{local:%Y%m%d}-{digest}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text, charset="utf-8", cte="base64")
    return message
