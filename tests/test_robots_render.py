"""The group-robot message of a digest: what it says, that it fits each platform's limit by
leaving out whole items (never cutting a character), and the DingTalk signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest

from notifications.errors import PermanentFailure, RateLimited, TemporaryFailure
from notifications.im import (
    DINGTALK_BODY_BYTES,
    WECOM_MARKDOWN_BYTES,
    Robot,
    RobotTransport,
    classify_reply,
    dingtalk_sign,
)
from notifications.model import Digest, DigestItem, Recipient
from notifications.robots import render_robot, robot_message_id

WECOM = Robot("w", "wecom", key="k")
DINGTALK = Robot("d", "dingtalk", access_token="t", secret="SECabc")
TODAY = date(2026, 6, 11)


def item(
    n: int, kind: str = "overdue", title: str | None = None, due: date = date(2026, 6, 10)
) -> DigestItem:
    return DigestItem(
        key=f"k{n:04d}",
        kind=kind,
        workflow="w",
        workflow_title="法治政府建设指标体系试点",
        phase=None,
        phase_name=None,
        task=f"T{n:03d}",
        task_title=title or f"任务{n}",
        section=None,
        detail=None,
        unit="police",
        unit_name="县公安局",
        occurrence=None,
        due=due,
        opens=None,
        contact="县政府法制办 fazhiban@example.gov.cn",
    )


def digest(*items: DigestItem) -> Digest:
    return Digest(Recipient("police", "县公安局", ("p@example.gov.cn",)), TODAY, items)


def test_the_message_names_the_unit_counts_the_most_urgent_items_and_whom_to_ask():
    message = render_robot(
        digest(item(1, "reminder", due=date(2026, 6, 18)), item(2), item(3, "due_today", due=TODAY)),
        WECOM.fits,
    )
    lines = message.text.splitlines()
    assert lines[0] == "### 【督办提醒】县公安局"
    assert "1项逾期、1项今日到期、1项即将到期" in lines[1] and "2026年6月11日（周四）" in lines[1]
    assert lines[4:7] == [
        "- 【逾期】**任务2**｜截止2026年6月10日｜已逾期1天",
        "- 【今日到期】**任务3**｜截止2026年6月11日｜今日到期",
        "- 【即将到期】**任务1**｜截止2026年6月18日｜还有7天",
    ]
    assert "如有疑问，请联系：县政府法制办 fazhiban@example.gov.cn" in message.text
    assert message.title == "【督办提醒】县公安局：1项逾期、1项今日到期、1项即将到期"
    assert (message.shown, message.total) == (3, 3) and "另有" not in message.text


def test_markdown_in_data_cannot_make_a_link_or_a_heading():
    message = render_robot(
        digest(item(1, title="[点我](http://evil.example) **粗** # 标题\n第二行")), WECOM.fits
    )
    line = message.text.splitlines()[4]
    assert "](http" not in line and "\n" not in line and "**粗**" not in line
    assert "［点我］（http://evil.example）" in line


@pytest.mark.parametrize(("robot", "limit"), [(WECOM, WECOM_MARKDOWN_BYTES), (DINGTALK, DINGTALK_BODY_BYTES)])
def test_long_chinese_titles_are_left_out_by_whole_items_within_the_platforms_limit(
    robot, limit, monkeypatch
):
    monkeypatch.setattr("notifications.robots.MAX_ITEMS", 500)  # only the byte limit decides here
    long_title = (
        "关于进一步加强和规范行政执法全过程记录制度落实情况的专项检查与整改报告" * 3
    )  # 108 characters
    items = [item(n, title=f"{n:03d}{long_title}") for n in range(300)]
    message = render_robot(digest(*items), robot.fits)
    size = (
        len(message.text.encode()) if robot.kind == "wecom" else len(robot.body(message.title, message.text))
    )
    assert size <= limit and robot.fits(message.title, message.text)
    assert 0 < message.shown < 300 and message.total == 300
    assert f"…另有{300 - message.shown}项" in message.text
    listed = [line for line in message.text.splitlines() if line.startswith("- ")]
    assert len(listed) == message.shown
    for number, line in enumerate(listed):  # whole items, in order, each title cut by characters with "…"
        assert (
            line.startswith(f"- 【逾期】**{number:03d}关于进一步加强")
            and "…**｜截止2026年6月10日｜已逾期1天" in line
        )
    message.text.encode("utf-8").decode("utf-8")  # never half a character
    one_more = render_robot(digest(*items[: message.shown + 1]), lambda t, x: True)
    assert not robot.fits(one_more.title, one_more.text.replace("…另有1项，详见督办邮件或督办页面", ""))


def test_at_most_a_handful_of_items_are_listed_even_when_more_would_fit():
    message = render_robot(digest(*[item(n) for n in range(20)]), DINGTALK.fits)
    assert message.shown == 8 and "…另有12项" in message.text


def test_the_dingtalk_signature_is_base64_hmac_sha256_of_timestamp_newline_secret_url_encoded():
    secret, stamp = "SEC1234567890abcdef", 1781143200000
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
    )
    assert dingtalk_sign(secret, stamp) == expected.decode()
    url = RobotTransport(
        {"d": Robot("d", "dingtalk", access_token="tok", secret=secret)}, now=lambda: stamp / 1000
    ).url(Robot("d", "dingtalk", access_token="tok", secret=secret))
    query = parse_qs(urlsplit(url).query)
    assert query == {"access_token": ["tok"], "timestamp": [str(stamp)], "sign": [expected.decode()]}
    assert "+" not in urlsplit(url).query.split("sign=")[1]  # "+", "/" and "=" are percent-encoded


@pytest.mark.parametrize(
    ("robot", "status", "body", "error"),
    [
        (WECOM, 200, {"errcode": 0, "errmsg": "ok"}, None),
        (DINGTALK, 200, {"errcode": 0, "errmsg": "ok"}, None),
        (
            DINGTALK,
            200,
            {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"},
            RateLimited,
        ),
        (WECOM, 200, {"errcode": 45009, "errmsg": "api freq out of limit"}, RateLimited),
        (WECOM, 200, {"errcode": 93000, "errmsg": "invalid webhook url"}, PermanentFailure),
        (DINGTALK, 200, {"errcode": 300001, "errmsg": "token is not exist"}, PermanentFailure),
        (DINGTALK, 200, {"errcode": 310000, "errmsg": "sign not match"}, PermanentFailure),
        (
            DINGTALK,
            200,
            {"errcode": 460101, "errmsg": "message too long, exceed 20000 bytes"},
            PermanentFailure,
        ),
        (WECOM, 200, {"errcode": -1, "errmsg": "system busy"}, TemporaryFailure),
        (WECOM, 200, "<html>proxy</html>", TemporaryFailure),
        (WECOM, 503, {}, TemporaryFailure),
        (WECOM, 404, {}, PermanentFailure),
    ],
)
def test_only_errcode_zero_in_an_http_200_is_success(robot, status, body, error):
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    found = classify_reply(robot, status, content)
    assert (found is None) if error is None else type(found) is error
    if isinstance(found, RateLimited):
        assert found.retry_after == (600 if robot.kind == "dingtalk" else 60)


def test_a_robot_message_has_its_own_idempotency_key_derived_from_the_emails():
    assert (
        robot_message_id("<abc@duban.example.gov.cn>", "tax-dingtalk")
        == "<abc.robot.tax-dingtalk@duban.example.gov.cn>"
    )
    assert "SECabc" not in repr(DINGTALK) and "k" not in repr(WECOM).replace("kind", "")
