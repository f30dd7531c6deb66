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


EVENT_KINDS = {
    "obligation.created": "创建事项",
    "obligation.added": "新增事项",
    "obligation.open": "开始办理",
    "obligation.overdue": "转为逾期",
    "obligation.submitted": "提交办结申请",
    "obligation.done": "完成",
    "obligation.waived": "免除",
    "obligation.reopened": "重新办理",
    "obligation.extended": "同意延期",
    "obligation.moved": "日期调整",
    "obligation.restored": "恢复事项",
    "obligation.cancelled": "取消事项",
    "phase.active": "阶段开始",
    "phase.closed": "阶段结束",
    "phase.moved": "阶段日期调整",
    "phase.cancelled": "阶段取消",
    "program.started": "启动方案",
    "program.notify_from": "调整通知起始时间",
    "program.before_start": "启用前已到期汇总",
    "notice.skipped": "通知未发送",
    "mail.queued": "邮件待发",
    "mail.sent": "邮件已发送",
    "mail.refused": "收件地址拒收",
    "mail.deferred": "邮件暂未送达",
    "mail.retry": "邮件稍后重发",
    "mail.failed": "邮件发送失败",
    "mail.reclaimed": "邮件中断后重发",
    "mail.retry_requested": "人工重发邮件",
    "mail.failures_reported": "报告发送失败",
    "robot.queued": "群消息待发",
    "robot.sent": "群消息已发送",
    "robot.retry": "群消息稍后重发",
    "robot.failed": "群消息发送失败",
    "robot.held": "群消息暂停发送",
    "robot.paced": "群消息限速顺延",
    "unit.acknowledged": "单位签收",
    "unit.feedback": "单位反馈",
    "unit.extension_requested": "单位申请延期",
    "unit.link_revoked": "作废单位链接",
    "submission.returned": "退回申请",
    "office.login_link": "生成登录链接",
    "office.login": "办公室登录",
    "office.logout": "办公室退出登录",
    "office.sessions_revoked": "结束办公室会话",
    "indicator.set": "填报指标",
    "import.status": "批量导入办理情况",
    "evidence.unwritable": "材料无法保存",
    "daemon.leader": "守护进程接管",
    "daemon.reloaded": "重新加载配置",
    "daemon.stopped": "守护进程停止",
}
"""An audit event's kind (stored as the machine word, ``obligation.done``; ``--json`` and ``duban log
--kind`` keep it) as ``duban log`` and ``duban show`` print it."""

EVENT_DETAILS = {
    "withdrawn": "撤回 {n} 条待发通知",
    "armed": "按新的截止日期安排 {n} 个通知",
    "imported": "由 {name} 导入",
    "outbox": "邮件 #{id}",
    "client": "来源地址 {value}",
    "user_agent": "浏览器 {value}",
    "notify_from_moved": "尚未发送和已跳过的通知按新的通知起始时间处理",
    "left_plan": "已不在方案中（定义文件、单位名单或登记表有变化）",
    "refused": "邮件服务器拒收这些收件地址；其他收件人已收到",
    "refused_now": "暂时拒收：{error}",
    "deferred": "邮件服务器暂时拒收，将再次向这些收件地址发送：{error}",
    "given_up": "邮件服务器 {n} 次暂时拒收，不再向这些收件地址发送：{error}",
    "interrupted": "发送进程在发送中途停止（认领已过期）：邮件服务器可能已收到该邮件",
    "resent": "将以相同的 Message-ID 重新发送",
    "dead_sender": "认领它的守护进程在发送中途停止",
    "before_notify_from": "截止日 {due} 早于通知起始日 {start}，不单独通知（已列入给督办办公室的汇总）",
    "already_due": "{today} 补处理时已到截止日（{due}），不再提醒",
    "due_passed": "{today} 补处理时截止日 {due} 已过",
    "escalation_before": "{task} 的截止日 {due} 早于通知起始日 {start}，不催办（已列入给督办办公室的汇总）",
    "nothing_late": "{task}（截止 {due}）的各项事项都已完成、免除或取消，无需催办",
    "superseded": "同一次处理中还有更晚的提醒，以更晚的为准",
    "phase_ended": "{today} 补处理时「{phase}」已于 {end} 结束",
    "phase_before_notify_from": "{on} 的阶段通知早于通知起始日 {start}，不发送",
    "phase_superseded": "{today} 补处理时还有更晚的阶段通知，以更晚的为准",
    "nothing_before": "通知起始日 {start} 前没有到期事项",
    "summarized": "{n} 项事项在通知起始日 {start} 前已到期：已汇总告知督办办公室",
    "paced": "每个群机器人每分钟最多 {n} 条：下一分钟再发送",
    "robot_down": "未发送：群机器人 {name} 已连续 {n} 次发送失败（最近一次：{error}），稍后重试",
    "no_robot": "群机器人 {name} 不在机器人文件中",
    "no_digest": "无法生成消息：没有可发送的内容",
    "unrenderable": "无法生成消息：{error}",
}
"""An audit event's detail where duban writes prose (the events written before these words were
English: ``orchestrator.admin.audit_text`` reads those in these words)."""

EVENT_FIELDS = {
    "done_late": {True: "逾期完成", False: "按时完成"},
}
"""A yes/no field of an audit event's before/after in words (``done_late=True`` → 逾期完成)."""


def label(table: Mapping[str, str], value: str) -> str:
    """``table``'s word for ``value``, or ``value`` itself when the table has none."""
    return table.get(value, value)
