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

NUMERALS = ("一", "二", "三")


@dataclass(frozen=True)
class Undelivered:
    """One outbox message to report: ``failed`` (not delivered at all) or sent with ``refused``
    recipients; a message to a group robot (``robot`` is its name) is always a failed one."""

    id: int
    recipient: str  # the unit id (or another recipient name) the message was for
    to: Sequence[str]
    subject: str
    failed: bool
    attempts: int = 0
    last_error: str | None = None
    refused: Mapping[str, str] = field(default_factory=dict)  # address → the server's reply
    robot: str | None = None  # the group robot it was for (None: an email)


@dataclass(frozen=True)
class _Section:
    heading: str
    rows: tuple[Undelivered, ...]
    layout: str  # failed | refused | robot


def failure_report(
    rows: Sequence[Undelivered], *, now: datetime, sender: str, admin: str, domain: str, timezone: str
) -> EmailMessage:
    """The report's email (plain text, zh-CN): each message, its recipients, and what went wrong.

    The Message-ID is derived from the listed ids and the local day, so a re-render is the same message.
    """
    local = now.astimezone(ZoneInfo(timezone))
    by_robot = tuple(m for m in rows if m.robot is not None)
    emails = [m for m in rows if m.robot is None]
    kinds = (
        ("failed", "投递失败的邮件（{}封）", tuple(m for m in emails if m.failed)),
        ("refused", "已投递但有收件人被拒收的邮件（{}封）", tuple(m for m in emails if not m.failed)),
        ("robot", "发送失败的群机器人消息（{}条）", by_robot),
    )
    sections: list[_Section] = []
    for layout, heading, listed in kinds:
        if listed:
            sections.append(
                _Section(f"{NUMERALS[len(sections)]}、{heading.format(len(listed))}", listed, layout)
            )
    text = (
        make_environment()
        .get_template("failures.txt.j2")
        .render(when=f"{zh.day(local.date())} {local:%H:%M}", sections=sections, robots=bool(by_robot))
    )
    digest = hashlib.sha256(",".join(str(m.id) for m in rows).encode()).hexdigest()[:16]
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = admin
    message["Subject"] = f"【督办系统】{_count(len(emails), len(by_robot))}投递失败或被拒收"
    message["Date"] = format_datetime(local)
    message["Message-ID"] = f"<failures-{local:%Y%m%d}-{digest}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text, charset="utf-8", cte="base64")
    return message


def _count(emails: int, robots: int) -> str:
    """``3封邮件``, ``2条群机器人消息`` or ``3封邮件、2条群机器人消息``."""
    return "、".join(
        ([f"{emails}封邮件"] if emails else []) + ([f"{robots}条群机器人消息"] if robots else [])
    )
