"""Every zh-CN word for a state, a notice kind or an indicator status: one table the CLI, the emails
and the reports all read.

Keyed by the plain values (``orchestrator.store.states`` names them; a ``StrEnum`` member looks up
as its string). ``label(table, value)`` shows an unknown value as it is rather than failing.
"""

from __future__ import annotations

from collections.abc import Mapping

from notifications.model import NoticeKind

OBLIGATION_STATES = {
    "pending": "未开始",
    "open": "办理中",
    "overdue": "已逾期",
    "submitted": "待审核",
    "done": "已完成",
    "waived": "已免除",
    "cancelled": "已取消",
}
UNIT_PAGE_STATES = OBLIGATION_STATES | {"done": "已办结"}
"""An obligation's state in the unit's own words on its page (a unit applies for 办结; the CLI,
the emails and the reports say 已完成)."""
BEFORE_START = "启用前已到期，待办公室核实"
"""How the portal shows an obligation due before its program's notify-from day that nobody has
recorded yet (grey, with these words: no unit was ever told of it)."""

PHASE_STATES = {"pending": "未开始", "active": "进行中", "closed": "已结束", "cancelled": "已取消"}
OUTBOX_STATES = {"pending": "待发送", "sending": "发送中", "sent": "已发送", "failed": "发送失败"}
ITEM_STATES = {"pending": "待发送", "queued": "已编入邮件", "skipped": "未发送（已撤回或过时）"}
DAEMON_ROLES = {"leader": "主实例：定时处理并发送", "standby": "待命：协助发送", "stopped": "已停止"}
"""A daemon's role in its heartbeat (``duban status``): on PostgreSQL the standbys send too."""

NOTICE_KINDS = {
    NoticeKind.PHASE_STARTED: "阶段开始",
    NoticeKind.PHASE_ENDING: "阶段即将结束",
    NoticeKind.TASK_OPENED: "任务开始",
    NoticeKind.REMINDER: "提醒",
    NoticeKind.DUE_TODAY: "今日到期",
    NoticeKind.OVERDUE: "逾期",
    NoticeKind.ESCALATION: "催办",
    NoticeKind.PHASE_CLOSED: "阶段结束",
    NoticeKind.SCORECARD: "考评结果",
    NoticeKind.SUBMISSION_APPROVED: "审核通过",
    NoticeKind.SUBMISSION_RETURNED: "申请退回",
    NoticeKind.REVIEW_PENDING: "待审核",
    NoticeKind.BEFORE_START: "启用前已到期汇总",
}
"""A notice kind's short name (CLI tables, ``simulate``'s summary)."""

NOTICE_HEADINGS = {
    NoticeKind.BEFORE_START: "启用前已到期事项",
    NoticeKind.OVERDUE: "已逾期事项",
    NoticeKind.ESCALATION: "催办：责任单位逾期未完成",
    NoticeKind.DUE_TODAY: "今日到期",
    NoticeKind.REMINDER: "即将到期",
    NoticeKind.TASK_OPENED: "新开始的任务",
    NoticeKind.PHASE_STARTED: "阶段开始",
    NoticeKind.PHASE_ENDING: "阶段即将结束",
    NoticeKind.PHASE_CLOSED: "阶段结束",
    NoticeKind.SCORECARD: "综合考评",
    NoticeKind.REVIEW_PENDING: "待审核",
    NoticeKind.SUBMISSION_RETURNED: "退回的申请",
    NoticeKind.SUBMISSION_APPROVED: "审核通过",
}
"""A notice kind's heading in a digest email (its group of rows)."""

NOTICE_COUNTS = {
    NoticeKind.BEFORE_START: "启用前已到期{n}项",
    NoticeKind.OVERDUE: "{n}项逾期",
    NoticeKind.ESCALATION: "{n}项催办",
    NoticeKind.DUE_TODAY: "{n}项今日到期",
    NoticeKind.REMINDER: "{n}项即将到期",
    NoticeKind.TASK_OPENED: "{n}项新任务",
    NoticeKind.REVIEW_PENDING: "待审核",
    NoticeKind.SUBMISSION_RETURNED: "{n}项申请退回",
    NoticeKind.SUBMISSION_APPROVED: "{n}项审核通过",
}
"""A deadline kind counted in a digest's subject (``3项逾期``)."""

NOTICE_SENTENCES = {
    NoticeKind.OVERDUE: "逾期事项{n}项",
    NoticeKind.ESCALATION: "催办{n}项",
    NoticeKind.DUE_TODAY: "今日到期{n}项",
    NoticeKind.REMINDER: "即将到期{n}项",
    NoticeKind.TASK_OPENED: "新开始的任务{n}项",
    NoticeKind.SUBMISSION_RETURNED: "退回的申请{n}项",
    NoticeKind.SUBMISSION_APPROVED: "审核通过的申请{n}项",
}
"""A kind counted in a digest's first sentence (``本期共有逾期事项2项、催办1项``)."""

REVIEW_PENDING_SENTENCE = "有申请等待审核"
"""The office's 待审核 notice in a digest's first sentence (its count is in the notice itself)."""

NOTICE_WORDS = {
    NoticeKind.BEFORE_START: "启用前已到期",
    NoticeKind.OVERDUE: "逾期",
    NoticeKind.ESCALATION: "催办",
    NoticeKind.DUE_TODAY: "今日到期",
    NoticeKind.REMINDER: "即将到期",
    NoticeKind.TASK_OPENED: "新任务",
    NoticeKind.PHASE_STARTED: "阶段开始",
    NoticeKind.PHASE_ENDING: "阶段即将结束",
    NoticeKind.PHASE_CLOSED: "阶段结束",
    NoticeKind.SCORECARD: "综合考评",
}
"""A notice kind in a word or two: the robots' counts, the attached lists' 类别 column."""

PHASE_NOTICES = {
    NoticeKind.PHASE_STARTED: "「{name}」开始",
    NoticeKind.PHASE_ENDING: "「{name}」即将结束",
    NoticeKind.PHASE_CLOSED: "「{name}」结束",
}
"""A phase notice in a digest's subject and first sentence (``「第一阶段」开始``: a name may hold a 、)."""

INDICATOR_STATUSES = {"met": "达标", "not_met": "未达标", "missing": "未填报", "not_applicable": "不适用"}

SCORECARD_ITEMS = {"late": "逾期完成", "missing": "尚未完成", "waived": "免除"}
"""A unit's listed scorecard item by its kind."""


def label(table: Mapping[str, str], value: str) -> str:
    """``table``'s word for ``value``, or ``value`` itself when the table has none."""
    return table.get(value, value)
