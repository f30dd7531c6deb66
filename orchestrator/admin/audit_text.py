"""The audit log as a person reads it: an event's kind, its change and its detail in Chinese.

Events are stored with machine kinds (``obligation.done``) and their before/after as JSON; ``--json``
keeps both as they are. ``duban log``, ``duban show`` and ``duban outbox show`` print each event
through ``kind_text``, ``change_text`` and ``detail_text``: the kind's word from
``notifications.labels.EVENT_KINDS``, the change rendered from before/after (states in their
words, times in the plan's zone, ``done_late=True`` → 逾期完成), and the detail. Duban writes its
own prose details in the words of ``labels.EVENT_DETAILS``; events written before that carry
English details, which are read here in the same words — nothing stored is rewritten. A detail
someone typed (a reason, a note) is shown as it was typed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, time, tzinfo
from typing import Any

from notifications.labels import (
    DAEMON_ROLES,
    EVENT_DETAILS,
    EVENT_KINDS,
    INDICATOR_STATUSES,
    OBLIGATION_STATES,
    OUTBOX_STATES,
    PHASE_STATES,
    label,
)
from orchestrator.admin.portal_views import KIND_LABELS
from orchestrator.engine.clock import wall_time


def kind_text(kind: str) -> str:
    """``obligation.done`` → ``完成`` (an unknown kind as it is)."""
    return label(EVENT_KINDS, kind)


def kind_of_label(text: str) -> str | None:
    """The machine kind a person named by its word (``完成`` → ``obligation.done``), or None."""
    found = [kind for kind, word in EVENT_KINDS.items() if word == text.strip()]
    return found[0] if len(found) == 1 else None


# -- the change: before → after -------------------------------------------------------------------


def moment_text(value: Any, tz: tzinfo) -> str:
    """An ISO 8601 time of an event's JSON on the plan's wall clock; a day's start as the day
    alone (an imported done date: ``2026-06-05``, not ``2026-06-04T16:00:00+00:00``)."""
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if at.tzinfo is None:
        return str(value)
    local = at.astimezone(tz)
    return local.date().isoformat() if local.time() == time(0) else wall_time(local)


def _count(noun: str) -> Callable[[Any, tzinfo], str]:
    return lambda v, _tz: f"{len(v)} {noun}" if isinstance(v, list | tuple) else f"{v} {noun}"


def _ids(value: Any, _tz: tzinfo) -> str:
    items = value if isinstance(value, list | tuple) else [value]
    shown = "、".join(f"#{i}" for i in items[:10])
    return shown + (f" 等 {len(items)} 封" if len(items) > 10 else "")


def _files(value: Any, _tz: tzinfo) -> str:
    return f"{len(value)} 份" if isinstance(value, list | tuple) else str(value)


FIELDS: dict[str, tuple[str, Callable[[Any, tzinfo], str]]] = {
    # key: (its name, its value as a person reads it); the name may be empty
    "done_at": ("完成时间", moment_text),
    "done_late": ("", lambda v, _tz: {True: "逾期完成", False: "按时完成"}.get(v, str(v))),
    "evidence": ("完成依据", lambda v, tz: f"材料 {_files(v, tz)}" if isinstance(v, list) else str(v)),
    "reason": ("理由", lambda v, _tz: str(v)),
    "note": ("说明", lambda v, _tz: str(v)),
    "opens": ("开始", lambda v, _tz: str(v)),
    "due": ("到期", lambda v, _tz: str(v)),
    "until": ("申请延至", lambda v, _tz: str(v)),
    "start": ("开始", lambda v, _tz: str(v)),
    "end": ("结束", lambda v, _tz: str(v)),
    "files": ("材料", _files),
    "submission": ("申请", lambda v, _tz: f"#{v}"),
    "kind": ("", lambda v, _tz: label(KIND_LABELS, str(v))),
    "timers": ("通知", _count("个")),
    "outbox_id": ("邮件", lambda v, _tz: f"#{v}"),
    "attempts": ("已尝试", _count("次")),
    "next_attempt_at": ("下次发送", moment_text),
    "send_date": ("发送日", lambda v, _tz: str(v)),
    "channel": ("", lambda v, _tz: "邮件" if v == "email" else f"群机器人 {str(v).removeprefix('robot:')}"),
    "refused": ("拒收", lambda v, _tz: "、".join(v) if isinstance(v, dict) else str(v)),
    "owed": ("待送达", lambda v, _tz: "、".join(v) if isinstance(v, list) else str(v)),
    "version": ("链接版本", lambda v, _tz: f"第 {v} 版"),
    "sessions": ("结束会话", _count("个")),
    "login_links": ("作废登录链接", _count("个")),
    "value": ("数值", lambda v, _tz: "—" if v is None else f"{v:g}" if isinstance(v, float) else str(v)),
    "count": ("分子", lambda v, _tz: "—" if v is None else str(v)),
    "of": ("分母", lambda v, _tz: "—" if v is None else str(v)),
    "not_applicable": ("", lambda v, _tz: "不适用" if v else "适用"),
    "status": ("", lambda v, _tz: label(INDICATOR_STATUSES, str(v))),
    "workflow": ("方案", lambda v, _tz: str(v)),
    "year": ("年度", lambda v, _tz: str(v)),
    "title": ("", lambda v, _tz: str(v)),
    "notify_from": ("通知起始", moment_text),
    "sha256": ("文件 SHA-256", lambda v, _tz: f"{str(v)[:12]}…"),
    "done": ("完成", _count("项")),
    "waived": ("免除", _count("项")),
    "unchanged": ("未变", _count("项")),
    "obligations": ("事项", _count("项")),
    "messages": ("邮件", _ids),
    "from": ("原认领进程", lambda v, _tz: "、".join(v) if isinstance(v, list) else str(v)),
    "role": ("", lambda v, _tz: label(DAEMON_ROLES, str(v))),
    "config": ("配置文件", lambda v, _tz: str(v)),
    "changed": ("有变化的方案", lambda v, _tz: "、".join(v) if v else "无"),
}
HIDDEN = frozenset({"workflow"})  # shown by the program's title and year: its id says nothing more


def _states(kind: str) -> Mapping[str, str]:
    family = kind.partition(".")[0]
    if family == "phase":
        return PHASE_STATES
    if family in ("mail", "robot"):
        return OUTBOX_STATES
    return OBLIGATION_STATES


def _field(key: str, value: Any, tz: tzinfo) -> str:
    name, shown = FIELDS.get(key, (key, lambda v, _tz: str(v)))
    text = shown(value, tz) if value is not None else "—"
    return f"{name} {text}" if name else text


def change_text(event: Mapping[str, Any], tz: tzinfo) -> str:
    """An event's before → after in one line: ``已逾期 → 已完成，完成时间 2026-06-15 10:30，逾期完成``."""
    before, after = event.get("before") or {}, event.get("after") or {}
    states = _states(str(event.get("kind", "")))
    parts = []
    if "state" in before or "state" in after:
        old = label(states, before["state"]) if before.get("state") else ""
        new = label(states, after.get("state") or "")
        parts.append(new if old == new else f"{old} → {new}".strip())
    if after.get("to"):
        to = after["to"]
        parts.append("→ " + (", ".join(to) if isinstance(to, list) else str(to)))
    for key, value in after.items():
        if key in ("state", "to") or key in HIDDEN or value in (None, ""):
            continue
        name, _ = FIELDS.get(key, (key, None))
        if key in before and before[key] != value:
            old = _field(key, before[key], tz).removeprefix(name).strip()
            parts.append(f"{name} {old} → {_field(key, value, tz).removeprefix(name).strip()}".strip())
        else:
            parts.append(_field(key, value, tz))
    return "，".join(parts)


# -- the detail -----------------------------------------------------------------------------------

OLD_DETAILS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(pattern), key)
    for pattern, key in (
        (r"(?P<n>\d+) waiting notice\(s\) withdrawn", "withdrawn"),
        (r"(?P<n>\d+) timer\(s\) armed", "armed"),
        (r"imported from (?P<name>.+)", "imported"),
        (r"outbox #(?P<id>\d+)", "outbox"),
        (r"notices not yet sent or skipped follow the new date", "notify_from_moved"),
        (r"no longer in the plan \(definition, units or register changed\)", "left_plan"),
        (r"refused for good by the mail server", "refused"),
        (r"the other recipients got the message", ""),
        (r"refused for now (?P<n>\d+) times, given up for these recipients: (?P<error>.*)", "given_up"),
        (r"refused for now by the mail server, tried again for these recipients: (?P<error>.*)", "deferred"),
        (r"refused for now: (?P<error>.*)", "refused_now"),
        (
            r"the sender stopped while sending \(its claim expired\): the server may have the message",
            "interrupted",
        ),
        (r"sent again with the same Message-ID", "resent"),
        (r"will be sent again with the same Message-ID", "resent"),
        (r"claimed by a daemon that stopped mid-send", "dead_sender"),
        (
            r"before notify-from (?P<start>\S+): due (?P<due>\S+), before duban notified anyone "
            r"\(in the office's summary\)",
            "before_notify_from",
        ),
        (
            r"before notify-from (?P<start>\S+): (?P<task>\S+) was due (?P<due>\S+), before duban notified "
            r"anyone \(in the office's summary\)",
            "escalation_before",
        ),
        (r"nothing late: every obligation of (?P<task>\S+) due (?P<due>\S+) is finished", "nothing_late"),
        (r"caught up on (?P<today>\S+): the obligation is already due \((?P<due>[^)]+)\)", "already_due"),
        (r"caught up on (?P<today>\S+): the due date (?P<due>\S+) has passed", "due_passed"),
        (r"superseded by a later reminder due at the same tick", "superseded"),
        (r"caught up on (?P<today>\S+): phase (?P<phase>\S+) already ended (?P<end>\S+)", "phase_ended"),
        (r"before notify-from (?P<start>\S+): phase notice of (?P<on>\S+)", "phase_before_notify_from"),
        (r"caught up on (?P<today>\S+): superseded by a later phase notice", "phase_superseded"),
        (r"nothing was due before notify-from (?P<start>\S+)", "nothing_before"),
        (
            r"(?P<n>\d+) obligations were due before notify-from (?P<start>\S+): summarized to the office",
            "summarized",
        ),
        (r"at most (?P<n>\d+) messages a minute per robot: sent when the minute has passed", "paced"),
        (
            r"not tried: robot:(?P<name>\S+) failed (?P<n>\d+) times in a row \(the last: (?P<error>.*)\); "
            r"tried again later",
            "robot_down",
        ),
        (r"robot (?P<name>\S+): not in the robots file", "no_robot"),
        (r"cannot render: the message has no digest", "no_digest"),
        (r"cannot render: (?P<error>.*)", "unrenderable"),
    )
]
"""The English details of events written before duban wrote them in Chinese, each a whole part of
a detail (parts are joined by ``; ``), read in the words of ``EVENT_DETAILS`` ("" drops the part)."""


def _old_part(part: str, *, errors_only: bool = False) -> str | None:
    for pattern, key in OLD_DETAILS:
        if errors_only and "error" not in pattern.groupindex:
            continue
        found = pattern.fullmatch(part)
        if found:
            return EVENT_DETAILS[key].format(**found.groupdict()) if key else ""
    return None


def _tail(detail: str, name: str) -> tuple[str, str | None]:
    """``detail`` without its last part ``name=…`` (a user agent may hold "; " itself), and that value."""
    if detail.startswith(f"{name}="):
        return "", detail[len(name) + 1 :]
    head, found, value = detail.rpartition(f"; {name}=")
    return (head, value) if found else (detail, None)


def detail_text(event: Mapping[str, Any]) -> str:
    """An event's detail in Chinese: an old English detail read in today's words; what someone
    typed (a reason, a note) and what a server answered as they were."""
    detail = event.get("detail") or ""
    whole = _old_part(detail, errors_only=True)
    if whole is not None:  # the whole detail is one of duban's with an error in it (which may hold "; ")
        return whole
    detail, agent = _tail(detail, "ua")  # a unit's page: "…; client=ADDRESS; ua=AGENT"
    detail, client = _tail(detail, "client")
    shown, translated = "", False
    for i, part in enumerate(detail.split("; ") if detail else []):
        words = _old_part(part)
        if i:
            shown += "；" if translated or words is not None else "; "
        translated = words is not None
        shown += part if words is None else words
    web = [
        EVENT_DETAILS[key].format(value=value)
        for key, value in (("client", client), ("user_agent", agent))
        if value
    ]
    return "；".join(p for p in (shown.strip("；"), *web) if p)
