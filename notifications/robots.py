"""A digest as one short markdown message for a work group's robot (企业微信 / 钉钉 群机器人).

The same ``Digest`` the email is made of: the unit, the counts by kind, the most urgent items
(title, due date, state) and the unit's portal link (or, without one, whom to ask). The message
fits the platform's limit (``fits``): items are left out whole, most urgent kept, with a line
``…另有N项`` saying how many; nothing is ever cut inside a character. Deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from notifications import view, zh
from notifications.labels import NOTICE_WORDS
from notifications.model import PHASE_KINDS, Digest, DigestItem

MAX_ITEMS = 8  # a group message is a pointer to the portal and the email, not the whole digest
TITLE_CHARS = 60  # a longer task title is shortened (by characters) in the message
UNIT_CHARS = 40


# Markdown and HTML marks in data (titles, names) become their full-width forms: text from the
# plan or the units file can neither make a link nor break the layout.
_MARKS = str.maketrans(
    {
        "*": "＊",
        "_": "＿",
        "`": "｀",
        "[": "［",
        "]": "］",
        "(": "（",
        ")": "）",
        "<": "＜",
        ">": "＞",
        "#": "＃",
        "~": "～",
        "|": "｜",
        "\\": "＼",
    }
)


@dataclass(frozen=True)
class RobotText:
    """What a robot posts: ``title`` (DingTalk's notification preview) and the markdown ``text``."""

    title: str
    text: str
    shown: int  # items listed
    total: int  # items in the digest


def robot_message_id(email_message_id: str, robot: str) -> str:
    """The idempotency key of a digest's message to ``robot``, derived from the email's Message-ID
    (``<abc@host>`` → ``<abc.robot.NAME@host>``): the same digest, the same key."""
    local, _, host = email_message_id.strip("<>").partition("@")
    return f"<{local}.robot.{robot}@{host}>"


def plain(text: str | None, limit: int | None = None) -> str:
    """Data text made safe for a robot's markdown: one line, no marks; shortened by characters."""
    value = " ".join((text or "").split()).translate(_MARKS)
    value = "".join(ch for ch in value if ch.isprintable())
    if limit is not None and len(value) > limit:
        value = value[: limit - 1] + "…"
    return value


def render_robot(
    digest: Digest,
    fits: Callable[[str, str], bool],
    *,
    link: str | None = None,
) -> RobotText:
    """The message of ``digest``; ``fits(title, text)`` says whether the platform takes it.

    ``link`` is the unit's portal page; without it the message names the office to ask (the
    items' ``contact``). Raises ``ValueError`` if not even the message without items fits.
    """
    if not digest.items:
        raise ValueError(f"digest for {digest.recipient.unit_id!r} has no items")
    unit = plain(digest.recipient.name, UNIT_CHARS)
    counts = view.build(digest).counts or f"{len(digest.items)}项督办事项"
    title = f"【督办提醒】{unit}：{counts}"
    head = [
        f"### 【督办提醒】{unit}",
        f"{zh.day_with_weekday(digest.send_date)}，贵单位有{counts}。",
        "",
        "**最紧急的事项：**",
    ]
    tail = ["", *_where(digest, link)]
    ordered = sorted(digest.items, key=_urgency)
    lines = [_line(item, digest.send_date) for item in ordered]
    for shown in range(min(len(lines), MAX_ITEMS), -1, -1):
        rest = len(lines) - shown
        body = lines[:shown] + (["", f"…另有{rest}项，详见督办邮件或督办页面"] if rest else [])
        text = "\n".join(head + body + tail)
        if fits(title, text):
            return RobotText(title=title, text=text, shown=shown, total=len(lines))
    raise ValueError(f"a robot message for {digest.recipient.unit_id!r} does not fit even without items")


def _where(digest: Digest, link: str | None) -> list[str]:
    if link:
        return [f"[进入本单位督办页面办理]({link})"]
    contact = next((item.contact for item in digest.items if item.contact), None)
    lines = ["完整内容见今日发往本单位邮箱的督办邮件。"]
    if contact:
        lines.append(f"如有疑问，请联系：{plain(contact, 200)}")
    return lines


def _urgency(item: DigestItem) -> tuple:
    return (
        view.KIND_ORDER.index(item.kind),
        item.due or item.phase_end or date.max,
        item.task or item.phase or "",
        item.unit_rank,
        item.unit_name,
        item.key,
    )


def _line(item: DigestItem, today: date) -> str:
    """``- 【逾期】报送工作方案｜截止2026年6月10日｜已逾期2天``."""
    word = NOTICE_WORDS.get(item.kind, item.kind)
    if item.kind in PHASE_KINDS:
        name = plain(item.phase_name or item.phase or "阶段", TITLE_CHARS)
        end = f"｜{zh.day(item.phase_end)}结束" if item.phase_end else ""
        return f"- 【{word}】{name}{end}"
    title = plain(item.task_title or item.task or "（未命名任务）", TITLE_CHARS)
    if item.kind == "escalation":
        title = f"{title}：{plain(item.unit_name, UNIT_CHARS)}未按期完成"
    parts = [f"- 【{word}】**{title}**"]
    if item.due:
        parts.append(f"截止{zh.day(item.due)}")
        parts.append(zh.days_left(item.due, today))
    return "｜".join(parts)
