"""The zh-CN words the CLI shows for states and kinds (one table per vocabulary).

Issue 11 moves these to a single ``notifications/labels.py`` shared with the emails and reports;
until then every CLI module takes them from here, never from its own copy.
"""

from __future__ import annotations

STATE_ZH = {
    "pending": "未开始",
    "open": "办理中",
    "overdue": "已逾期",
    "done": "已完成",
    "waived": "已免除",
    "cancelled": "已取消",
}
PHASE_ZH = {"pending": "未开始", "active": "进行中", "closed": "已结束", "cancelled": "已取消"}
OUTBOX_ZH = {"pending": "待发送", "sending": "发送中", "sent": "已发送", "failed": "发送失败"}
ITEM_ZH = {"pending": "待发送", "queued": "已编入邮件", "skipped": "未发送（已撤回或过时）"}
KIND_NAMES = {
    "phase_started": "阶段开始",
    "phase_ending": "阶段即将结束",
    "task_opened": "任务开始",
    "reminder": "提醒",
    "due_today": "今日到期",
    "overdue": "逾期",
    "escalation": "催办",
    "phase_closed": "阶段结束",
    "scorecard": "考评结果",
}
STATE_STYLE = {"overdue": "red", "done": "green", "waived": "dim", "cancelled": "dim"}
