"""The admin's failure report rendered by ``notifications.failures`` from its template (plain data in)."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default

from notifications.failures import Undelivered, failure_report

NOW = datetime(2026, 6, 11, 1, 5, tzinfo=UTC)  # 09:05 in Shanghai

EXPECTED = """\
截至2026年6月11日 09:05，以下督办邮件未能投递，请核查：

一、投递失败的邮件（2封）

#3 致 town-a（a@example.gov.cn, b@example.gov.cn）
    主题：【督办提醒】试点：1项逾期
    尝试：3次；原因：550 5.1.1 no such user

#4 致 town-b（无地址）
    主题：【督办提醒】试点：1项即将到期
    尝试：0次；原因：未知

二、已投递但有收件人被拒收的邮件（1封）

#7 致 agency-1，主题：【督办提醒】试点：2项待办
    Police@example.gov.cn：551 5.1.6 moved
    office@example.gov.cn：550 5.1.1 no such user

处理办法：
- 查看：duban outbox --state failed
- 排除原因（如核对单位文件中的电子邮箱、邮件服务器设置）后重发：
  duban outbox retry 编号，或 duban outbox retry --all-failed

--
本邮件由督办系统每日自动发送一次，仅列出此前未报告的问题。
"""

ROWS = [
    Undelivered(
        3,
        "town-a",
        ("a@example.gov.cn", "b@example.gov.cn"),
        "【督办提醒】试点：1项逾期",
        True,
        3,
        "550 5.1.1 no such user",
    ),
    Undelivered(4, "town-b", (), "【督办提醒】试点：1项即将到期", True),
    Undelivered(
        7,
        "agency-1",
        ("office@example.gov.cn", "Police@example.gov.cn"),
        "【督办提醒】试点：2项待办",
        False,
        refused={
            "office@example.gov.cn": "550 5.1.1 no such user",
            "Police@example.gov.cn": "551 5.1.6 moved",
        },
    ),
]


def render(rows):
    message = failure_report(
        rows,
        now=NOW,
        sender="督办系统 <duban@example.gov.cn>",
        admin="admin@example.gov.cn",
        domain="example.gov.cn",
        timezone="Asia/Shanghai",
    )
    return message_from_bytes(message.as_bytes(), policy=default)


def text(parsed) -> str:
    """The plain-text body, with the wire's CRLF line ends read as newlines."""
    return parsed.get_content().replace("\r\n", "\n")


def test_the_report_lists_failed_then_refused_messages_in_the_official_wording():
    parsed = render(ROWS)
    assert text(parsed) == EXPECTED
    assert parsed["Subject"] == "【督办系统】3封邮件投递失败或被拒收"
    assert parsed["From"].addresses[0].display_name == "督办系统"
    assert parsed["To"] == "admin@example.gov.cn"
    assert parsed["Date"] == "Thu, 11 Jun 2026 09:05:00 +0800"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Message-ID"].startswith("<failures-20260611-") and parsed["Message-ID"].endswith(
        "@example.gov.cn>"
    )


def test_only_refused_messages_make_section_one_and_the_message_id_follows_the_ids():
    parsed = render(ROWS[2:])
    body = text(parsed)
    assert body.startswith(
        "截至2026年6月11日 09:05，以下督办邮件未能投递，请核查：\n\n一、已投递但有收件人被拒收的邮件（1封）\n"
    )
    assert "投递失败的邮件" not in body.replace("已投递但有收件人被拒收的邮件", "")
    assert render(ROWS[2:])["Message-ID"] == parsed["Message-ID"] != render(ROWS)["Message-ID"]


def test_group_robot_messages_are_a_section_of_their_own_and_counted_in_the_subject():
    robot = Undelivered(
        9,
        "town-a",
        (),
        "【督办提醒】试点：1项逾期",
        True,
        4,
        "errcode 310000: sign not match",
        robot="wecom-town",
    )
    parsed = render([*ROWS, robot])
    assert parsed["Subject"] == "【督办系统】3封邮件、1条群机器人消息投递失败或被拒收"
    body = text(parsed)
    assert body.startswith("截至2026年6月11日 09:05，以下督办邮件及群机器人消息未能投递，请核查：\n")
    assert (
        "三、发送失败的群机器人消息（1条）\n\n"
        "#9 群机器人 wecom-town，致 town-a\n"
        "    内容：【督办提醒】试点：1项逾期\n"
        "    尝试：4次；原因：errcode 310000: sign not match\n\n"
    ) in body
    assert "邮件服务器设置，机器人文件中的key、access_token、secret）后重发" in body
    only = render([robot])
    assert only["Subject"] == "【督办系统】1条群机器人消息投递失败或被拒收"
    assert "一、发送失败的群机器人消息（1条）" in text(only)
