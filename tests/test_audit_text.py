"""An audit event as a person reads it (``admin.audit_text``), table-driven: every English detail an
older duban wrote reads in today's Chinese words; before/after in words and the plan's local time."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from orchestrator.admin.audit_text import change_text, detail_text, kind_of_label, kind_text

TZ = ZoneInfo("Asia/Shanghai")

OLD_DETAILS = [
    ("1 waiting notice(s) withdrawn", "撤回 1 条待发通知"),
    ("imported from 启用前已到期事项.xlsx; 2 waiting notice(s) withdrawn", "由 启用前已到期事项.xlsx 导入；撤回 2 条待发通知"),
    ("0 waiting notice(s) withdrawn; 4 timer(s) armed; 同意延期", "撤回 0 条待发通知；按新的截止日期安排 4 个通知；同意延期"),
    ("outbox #7", "邮件 #7"),
    ("材料齐全; client=198.51.100.4; ua=Mozilla/5.0 (X11; Linux x86_64)",
     "材料齐全；来源地址 198.51.100.4；浏览器 Mozilla/5.0 (X11; Linux x86_64)"),
    ("notices not yet sent or skipped follow the new date", "尚未发送和已跳过的通知按新的通知起始时间处理"),
    ("no longer in the plan (definition, units or register changed)", "已不在方案中（定义文件、单位名单或登记表有变化）"),
    ("refused for good by the mail server; the other recipients got the message", "邮件服务器拒收这些收件地址；其他收件人已收到"),
    ("refused for now 8 times, given up for these recipients: a@x: 452 full; b@x: 451 later",
     "邮件服务器 8 次暂时拒收，不再向这些收件地址发送：a@x: 452 full; b@x: 451 later"),
    ("refused for now by the mail server, tried again for these recipients: a@x: 452 full",
     "邮件服务器暂时拒收，将再次向这些收件地址发送：a@x: 452 full"),
    ("the sender stopped while sending (its claim expired): the server may have the message; "
     "sent again with the same Message-ID",
     "发送进程在发送中途停止（认领已过期）：邮件服务器可能已收到该邮件；将以相同的 Message-ID 重新发送"),
    ("claimed by a daemon that stopped mid-send; will be sent again with the same Message-ID",
     "认领它的守护进程在发送中途停止；将以相同的 Message-ID 重新发送"),
    ("before notify-from 2026-12-02: due 2026-06-10, before duban notified anyone (in the office's summary)",
     "截止日 2026-06-10 早于通知起始日 2026-12-02，不单独通知（已列入给督办办公室的汇总）"),
    ("before notify-from 2026-12-02: D01 was due 2026-05-15, before duban notified anyone (in the office's summary)",
     "D01 的截止日 2026-05-15 早于通知起始日 2026-12-02，不催办（已列入给督办办公室的汇总）"),
    ("nothing late: every obligation of T05 due 2026-06-10 is finished",
     "T05（截止 2026-06-10）的各项事项都已完成、免除或取消，无需催办"),
    ("caught up on 2026-06-15: the obligation is already due (2026-06-10)", "2026-06-15 补处理时已到截止日（2026-06-10），不再提醒"),
    ("caught up on 2026-06-15: the due date 2026-06-10 has passed", "2026-06-15 补处理时截止日 2026-06-10 已过"),
    ("superseded by a later reminder due at the same tick", "同一次处理中还有更晚的提醒，以更晚的为准"),
    ("caught up on 2026-06-15: phase mobilize already ended 2026-05-30", "2026-06-15 补处理时「mobilize」已于 2026-05-30 结束"),
    ("before notify-from 2026-12-02: phase notice of 2026-05-10", "2026-05-10 的阶段通知早于通知起始日 2026-12-02，不发送"),
    ("caught up on 2026-06-15: superseded by a later phase notice", "2026-06-15 补处理时还有更晚的阶段通知，以更晚的为准"),
    ("nothing was due before notify-from 2026-12-02", "通知起始日 2026-12-02 前没有到期事项"),
    ("1085 obligations were due before notify-from 2026-12-02: summarized to the office",
     "1085 项事项在通知起始日 2026-12-02 前已到期：已汇总告知督办办公室"),
    ("at most 20 messages a minute per robot: sent when the minute has passed", "每个群机器人每分钟最多 20 条：下一分钟再发送"),
    ("not tried: robot:wc failed 3 times in a row (the last: HTTP 502; retry); tried again later",
     "未发送：群机器人 wc 已连续 3 次发送失败（最近一次：HTTP 502; retry），稍后重试"),
    ("robot wc: not in the robots file", "群机器人 wc 不在机器人文件中"),
    ("refused for now: a@x: 452 full", "暂时拒收：a@x: 452 full"),
    # what someone typed, and what a server answered, stay as they were
    ("材料不全，退回补充", "材料不全，退回补充"),
    ("see; the attachment", "see; the attachment"),
    ("535 5.7.8 Authentication credentials invalid", "535 5.7.8 Authentication credentials invalid"),
    (None, ""),
]  # fmt: skip


@pytest.mark.parametrize(("stored", "shown"), OLD_DETAILS)
def test_an_old_detail_reads_in_todays_words(stored, shown) -> None:
    assert detail_text({"detail": stored}) == shown


CHANGES = [
    ("obligation.done", {"state": "overdue"},
     {"state": "done", "done_at": "2026-06-04T16:00:00+00:00", "done_late": True, "evidence": "x号"},
     "已逾期 → 已完成，完成时间 2026-06-05，逾期完成，完成依据 x号"),
    ("obligation.done", {"state": "submitted"},
     {"state": "done", "done_at": "2026-06-08T23:41:00+00:00", "done_late": False, "submission": 3, "evidence": ["ab", "cd"]},
     "待审核 → 已完成，完成时间 2026-06-09 07:41，按时完成，申请 #3，完成依据 材料 2 份"),
    ("obligation.moved", {"due": "2026-06-01", "state": "open"}, {"due": "2026-06-03", "state": "open"},
     "办理中，到期 2026-06-01 → 2026-06-03"),
    ("obligation.waived", {"state": "open"}, {"state": "waived", "reason": "本镇无此职能"}, "办理中 → 已免除，理由 本镇无此职能"),
    ("phase.active", {"state": "pending"}, {"state": "active"}, "未开始 → 进行中"),
    ("mail.sent", None, {"outbox_id": 5, "to": ["a@x", "b@x"], "attempts": 1}, "→ a@x, b@x，邮件 #5，已尝试 1 次"),
    ("mail.retry_requested", {"state": "failed", "attempts": 8}, {"state": "pending", "next_attempt_at": "2026-06-15T02:30:00+00:00"},
     "发送失败 → 待发送，下次发送 2026-06-15 10:30"),
    ("submission.returned", {"state": "submitted"}, {"state": "open", "submission": 4, "kind": "completion"},
     "待审核 → 办理中，申请 #4，办结申请"),
    ("unit.link_revoked", {"version": 1}, {"version": 2}, "链接版本 第 1 版 → 第 2 版"),
    ("indicator.set", None, {"value": 95.0, "count": None, "of": None, "note": None, "status": "met"}, "数值 95，达标"),
    ("daemon.leader", None, {"role": "leader"}, "主实例：定时处理并发送"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "before", "after", "shown"), CHANGES)
def test_a_change_reads_in_words_and_local_time(kind, before, after, shown) -> None:
    assert change_text({"kind": kind, "before": before, "after": after}, TZ) == shown


def test_kinds_by_their_words_and_back() -> None:
    assert (kind_text("obligation.done"), kind_text("mail.sent"), kind_text("someday.maybe")) == (
        "完成",
        "邮件已发送",
        "someday.maybe",
    )
    assert (kind_of_label("完成"), kind_of_label(" 转为逾期 "), kind_of_label("完")) == (
        "obligation.done",
        "obligation.overdue",
        None,
    )
