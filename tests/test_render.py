"""Rendering a digest into an email: headers, parts, wording, calendar, escaping, wire form."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime
from email import message_from_bytes
from email.policy import default
from email.utils import parsedate_to_datetime

import pytest
from icalendar import Calendar

from notifications import zh
from notifications.model import Digest, DigestItem, Recipient, digest_message_id
from notifications.render import Renderer, make_environment

DOMAIN = "duban.example.gov.cn"
NOW = datetime(2026, 6, 8, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai, Monday 2026-06-08
SEND_DATE = date(2026, 6, 8)
PLAN = "法治政府建设指标体系试点"
POLICE = Recipient("county-police", "县公安局", ("gaj@example.gov.cn", "gaj-office@example.gov.cn"))
LEGAL = Recipient("county-legal-office", "县政府法制办", ("fazhiban@example.gov.cn",))


def item(kind: str, due: date | None, *, task: str | None = "T05", unit: str = "county-police", **changes):
    unit_name = {"county-police": "县公安局", "town-a": "甲镇", "town-b": "乙镇"}.get(unit, unit)
    occurrence = changes.get("occurrence")
    base = DigestItem(
        key=f"rule-of-law-pilot:2026:{task}:{unit}:{occurrence or '-'}:{kind}:0",
        kind=kind,
        workflow="rule-of-law-pilot",
        workflow_title=PLAN,
        phase="implement",
        phase_name="组织实施阶段",
        task=task,
        task_title=f"{task}：建立行政执法公示制度" if task else None,
        section="（二）严格规范公正文明执法",
        detail="全面推行行政执法公示制度、执法全过程记录制度。",
        unit=unit,
        unit_name=unit_name,
        occurrence=None,
        due=due,
        opens=date(2026, 6, 1),
        lead_names=("县司法局",),
        deliverable="工作方案及人员名单",
        contact="县司法局法治督察科，0571-1234567",
        ref="#123",
    )
    return dataclasses.replace(base, **changes)


def phase_item(kind: str) -> DigestItem:
    return item(
        kind,
        None,
        task=None,
        key=f"rule-of-law-pilot:2026:implement:county-police:{kind}",
        phase_start=date(2026, 6, 1),
        phase_end=date(2026, 11, 30),
        ref=None,
    )


def digest(*items: DigestItem, recipient: Recipient = POLICE, send_date: date = SEND_DATE) -> Digest:
    return Digest(recipient=recipient, send_date=send_date, items=items)


@pytest.fixture
def renderer() -> Renderer:
    return Renderer(
        sender="督办系统 <duban@example.gov.cn>",
        reply_to="fazhiban@example.gov.cn",
        domain=DOMAIN,
        timezone="Asia/Shanghai",
    )


def parse(message) -> object:
    return message_from_bytes(message.as_bytes(), policy=default)


def text_of(message) -> str:
    return parse(message).get_body(("plain",)).get_content().replace("\r\n", "\n")


def html_of(message) -> str:
    return parse(message).get_body(("html",)).get_content().replace("\r\n", "\n")


def calendar_of(message) -> Calendar:
    (part,) = [p for p in parse(message).walk() if p.get_content_type() == "text/calendar"]
    return Calendar.from_ical(part.get_content())


def mixed_digest() -> Digest:
    return digest(
        item("overdue", date(2026, 6, 5), task="T01"),
        item("overdue", date(2026, 6, 3), task="T02"),
        item("overdue", date(2026, 6, 1), task="T03"),
        item("due_today", SEND_DATE, task="T04"),
        item("due_today", SEND_DATE, task="T06"),
        item("reminder", date(2026, 6, 10), task="T07"),
        item("reminder", date(2026, 6, 30), task="T08"),
    )


# -- subject and headers ----------------------------------------------------------------------


def test_subject_counts_by_kind_most_urgent_first_and_decodes_back(renderer):
    message = renderer.render(mixed_digest(), now=NOW)
    raw = message.as_bytes()
    subject_line = re.search(rb"^Subject: (.*?)\r\n(?! )", raw, re.M | re.S).group(1)
    assert subject_line.startswith(b"=?utf-8?")  # RFC 2047 on the wire
    expected = f"【督办提醒】{PLAN}：3项逾期、2项今日到期、2项即将到期"
    assert parse(message)["Subject"] == expected
    assert renderer.subject(mixed_digest()) == expected


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (
            (item("escalation", date(2026, 6, 1), unit="town-a"), item("overdue", date(2026, 6, 5))),
            f"【督办催办】{PLAN}：1项逾期、1项催办",
        ),
        ((phase_item("phase_started"),), f"【督办通知】{PLAN}：组织实施阶段开始"),
        ((item("task_opened", date(2026, 6, 30)),), f"【督办提醒】{PLAN}：1项新任务"),
    ],
)
def test_subject_prefix(renderer, items, expected):
    assert renderer.subject(digest(*items)) == expected


def test_long_subject_is_cut_below_80_characters(renderer):
    long_title = "关于" + "进一步加强和改进行政执法工作" * 8 + "的实施方案"
    d = digest(
        *(dataclasses.replace(i, workflow_title=long_title) for i in mixed_digest().items),
        phase_item("phase_ending"),
    )
    subject = renderer.subject(d)
    assert len(subject) < 80
    assert subject.startswith("【督办提醒】关于进一步")
    assert "3项逾期" in subject


def test_headers(renderer):
    message = parse(renderer.render(mixed_digest(), now=NOW))
    assert message["From"].addresses[0].display_name == "督办系统"
    assert message["From"].addresses[0].addr_spec == "duban@example.gov.cn"
    to = message["To"].addresses
    assert [a.addr_spec for a in to] == list(POLICE.emails)
    assert {a.display_name for a in to} == {"县公安局"}
    assert message["Reply-To"] == "fazhiban@example.gov.cn"
    assert parsedate_to_datetime(message["Date"]) == NOW
    assert message["Date"].endswith("+0800")
    assert message["Message-ID"] == digest_message_id([i.key for i in mixed_digest().items], DOMAIN)
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Content-Language"] == "zh-CN"


def test_message_id_depends_only_on_the_set_of_item_keys(renderer):
    d = mixed_digest()
    reordered = dataclasses.replace(d, items=tuple(reversed(d.items)), send_date=date(2026, 6, 9))
    first = renderer.render(d, now=NOW)["Message-ID"]
    assert renderer.render(reordered, now=datetime(2026, 6, 9, 1, tzinfo=UTC))["Message-ID"] == first
    fewer = dataclasses.replace(d, items=d.items[:-1])
    assert renderer.render(fewer, now=NOW)["Message-ID"] != first
    assert re.fullmatch(r"<[0-9a-f]{40}@duban\.example\.gov\.cn>", first)
    assert digest_message_id(["b", "a"], DOMAIN) == digest_message_id(["a", "b", "a"], DOMAIN)


def test_rendering_is_deterministic_given_the_digest_and_now(renderer):
    assert (
        renderer.render(mixed_digest(), now=NOW).as_bytes()
        == renderer.render(mixed_digest(), now=NOW).as_bytes()
    )


def test_render_refuses_a_naive_now_and_an_empty_digest(renderer):
    with pytest.raises(ValueError, match="aware"):
        renderer.render(mixed_digest(), now=datetime(2026, 6, 8, 9))
    with pytest.raises(ValueError, match="no items"):
        renderer.render(digest(), now=NOW)


# -- parts ------------------------------------------------------------------------------------


def test_parts_text_html_calendar(renderer):
    message = parse(renderer.render(mixed_digest(), now=NOW))
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    plain, html, ics = list(message.walk())[2:]
    assert plain.get_content_charset() == html.get_content_charset() == "utf-8"
    assert ics.get_param("method") == "PUBLISH"
    assert ics.get_filename() == "duban.ics"
    assert ics.get_content_disposition() == "attachment"


def test_scorecard_summary_in_body_and_its_attachment_attached(renderer):
    html_report = "<html><body><h1>综合考评</h1></body></html>".encode()
    scorecard = item(
        "scorecard",
        None,
        task=None,
        task_title="2026年度综合考评结果",
        key="rule-of-law-pilot:2026:scorecard:county-police",
        summary="县公安局：得分92分，排名第3。\n扣分项：案卷评查。",
        attachment=("2026年度综合考评.html", "text/html", html_report),
    )
    message = parse(renderer.render(digest(scorecard), now=NOW))
    attachments = list(message.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["2026年度综合考评.html"]  # no .ics: nothing dated
    assert attachments[0].get_content_type() == "text/html"
    assert attachments[0].get_content().encode() == html_report
    body = text_of(renderer.render(digest(scorecard), now=NOW))
    assert "得分92分，排名第3。" in body and "扣分项：案卷评查。" in body
    assert "2026年度综合考评.html" in body
    assert message["Subject"] == f"【督办通知】{PLAN}：综合考评结果"


# -- wording ----------------------------------------------------------------------------------


def test_due_dates_days_left_and_days_late_on_a_known_date(renderer):
    text = text_of(renderer.render(mixed_digest(), now=NOW))
    assert "2026年6月5日（周五）" in text
    assert "已逾期3天" in text
    assert "已逾期7天" in text  # due 6/1
    assert "2026年6月8日（周一）" in text
    assert "今日到期" in text
    assert "2026年6月10日（周三）" in text
    assert "还有2天" in text
    assert "还有22天" in text  # due 6/30
    html = html_of(renderer.render(mixed_digest(), now=NOW))
    for phrase in ("已逾期3天", "今日到期", "还有2天", "2026年6月10日（周三）"):
        assert phrase in html


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        (date(2026, 6, 8), "今日到期"),
        (date(2026, 6, 9), "还有1天"),
        (date(2026, 6, 7), "已逾期1天"),
        (date(2027, 1, 1), "还有207天"),
        (date(2025, 12, 31), "已逾期159天"),
    ],
)
def test_days_left(due, expected):
    assert zh.days_left(due, SEND_DATE) == expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 6, 8), "2026年6月8日（周一）"),
        (date(2026, 10, 10), "2026年10月10日（周六）"),
        (date(2026, 12, 27), "2026年12月27日（周日）"),
    ],
)
def test_day_with_weekday(day, expected):
    assert zh.day_with_weekday(day) == expected


def test_groups_are_ordered_most_urgent_first(renderer):
    d = digest(
        phase_item("phase_started"),
        item("reminder", date(2026, 6, 10), task="T07"),
        item("task_opened", date(2026, 6, 30), task="T09"),
        item("due_today", SEND_DATE, task="T04"),
        item("overdue", date(2026, 6, 5), task="T01"),
    )
    text = text_of(renderer.render(d, now=NOW))
    headings = re.findall(r"^【(.+?)】", text, re.M)
    assert headings == ["已逾期事项", "今日到期", "即将到期", "新开始的任务", "阶段开始"]


def test_each_item_says_what_to_do_whom_to_ask_and_its_reference(renderer):
    text = text_of(renderer.render(digest(item("reminder", date(2026, 6, 10))), now=NOW))
    for expected in (
        "T05：建立行政执法公示制度",
        "（二）严格规范公正文明执法",
        "全面推行行政执法公示制度、执法全过程记录制度。",
        "牵头单位：县司法局",
        "应提交：工作方案及人员名单",
        "联系：县司法局法治督察科，0571-1234567",
        "事项编号：#123",
        "县公安局：",
    ):
        assert expected in text, expected


def test_escalations_are_grouped_by_task_with_each_late_unit_and_since_when(renderer):
    d = digest(
        item("escalation", date(2026, 6, 1), task="T01", unit="town-a", ref="#7"),
        item("escalation", date(2026, 6, 1), task="T01", unit="town-b", ref="#8"),
        item("escalation", date(2026, 6, 3), task="T02", unit="town-a", ref="#9"),
        recipient=LEGAL,
    )
    text = text_of(renderer.render(d, now=NOW))
    assert text.count("T01：建立行政执法公示制度") == 1
    assert "2个单位逾期" in text
    assert "甲镇：逾期自2026年6月2日起，已逾期7天（事项编号 #7）" in text
    assert "乙镇：逾期自2026年6月2日起，已逾期7天（事项编号 #8）" in text
    assert "甲镇：逾期自2026年6月4日起，已逾期5天（事项编号 #9）" in text
    html = html_of(renderer.render(d, now=NOW))
    assert "逾期自2026年6月2日起" in html and "乙镇" in html
    assert renderer.subject(d) == f"【督办催办】{PLAN}：3项催办"


def test_phase_items_show_name_and_dates(renderer):
    text = text_of(renderer.render(digest(phase_item("phase_ending")), now=NOW))
    assert "组织实施阶段" in text
    assert "2026年6月1日（周一） 至 2026年11月30日（周一）" in text
    assert "还有175天结束" in text


# -- HTML -------------------------------------------------------------------------------------


def test_html_escapes_data(renderer):
    evil = Recipient("evil", "<script>alert(1)</script>单位", ("evil@example.gov.cn",))
    d = digest(
        item("overdue", date(2026, 6, 5), unit="evil", unit_name=evil.name, deliverable="<b>报告</b>"),
        item("escalation", date(2026, 6, 5), unit="town-a", unit_name="<script>x</script>镇"),
        recipient=evil,
    )
    scorecard = item("scorecard", None, task=None, key="s", summary="第一行<script>\n第二行")
    message = renderer.render(dataclasses.replace(d, items=(*d.items, scorecard)), now=NOW)
    html = html_of(message)
    assert "<script" not in html
    assert "第一行&lt;script&gt;<br>\n第二行" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;单位" in html
    assert "&lt;b&gt;报告&lt;/b&gt;" in html
    assert "<script>alert(1)</script>单位" in text_of(message)  # plain text is not HTML
    assert parse(message)["To"].addresses[0].display_name == evil.name


def test_autoescape_is_on_for_html_templates_only():
    env = make_environment()
    assert env.autoescape("digest.html.j2") is True
    assert env.autoescape("digest.txt.j2") is False


def test_html_is_self_contained_and_marks_overdue_red_and_due_soon_amber(renderer):
    d = digest(
        item("overdue", date(2026, 6, 5), task="T01"),
        item("reminder", date(2026, 6, 10), task="T07"),
        item("reminder", date(2026, 6, 30), task="T08"),
    )
    html = html_of(renderer.render(d, now=NOW))
    for forbidden in ("<style", "<script", "<img", "<link", "http://", "https://", "url("):
        assert forbidden not in html
    assert html.count("background:#fdecea") == 1  # overdue
    assert html.count("background:#fff8e1") == 1  # due in 2 days
    assert html.count("background:#ffffff;border-left") == 1  # due in 22 days
    assert '<html lang="zh-CN">' in html


# -- calendar ---------------------------------------------------------------------------------


def test_calendar_has_a_todo_per_deadline_and_an_event_per_phase(renderer):
    d = digest(
        item("overdue", date(2026, 6, 5), task="T01"),
        item("reminder", date(2026, 6, 10), task="T07"),
        phase_item("phase_started"),
    )
    calendar = calendar_of(renderer.render(d, now=NOW))
    assert str(calendar["METHOD"]) == "PUBLISH"
    todos = {str(t["SUMMARY"]): t for t in calendar.walk("VTODO")}
    assert set(todos) == {"T01：建立行政执法公示制度（县公安局）", "T07：建立行政执法公示制度（县公安局）"}
    todo = todos["T07：建立行政执法公示制度（县公安局）"]
    assert todo.decoded("DUE") == date(2026, 6, 10)
    assert not isinstance(todo.decoded("DUE"), datetime)  # a DATE value
    assert str(todo["STATUS"]) == "NEEDS-ACTION"
    assert todo.decoded("DTSTAMP") == NOW
    assert "应提交：工作方案及人员名单" in str(todo["DESCRIPTION"])
    assert str(todo["UID"]).endswith("@" + DOMAIN)
    (event,) = calendar.walk("VEVENT")
    assert event.decoded("DTSTART") == date(2026, 6, 1)
    assert event.decoded("DTEND") == date(2026, 12, 1)  # exclusive end of an all-day event
    assert "组织实施阶段" in str(event["SUMMARY"])


def uids(renderer, d: Digest, now: datetime = NOW) -> dict[str, str]:
    return {str(c["SUMMARY"]): str(c["UID"]) for c in calendar_of(renderer.render(d, now=now)).walk()
            if c.name in ("VTODO", "VEVENT")}  # fmt: skip


def test_the_same_obligation_has_the_same_uid_in_every_email(renderer):
    reminder = digest(item("reminder", date(2026, 6, 10)), send_date=date(2026, 6, 3))
    overdue = digest(item("overdue", date(2026, 6, 10)), item("overdue", date(2026, 6, 10), task="T06"))
    first = uids(renderer, reminder, datetime(2026, 6, 3, 1, tzinfo=UTC))
    second = uids(renderer, overdue)
    summary = "T05：建立行政执法公示制度（县公安局）"
    assert first[summary] == second[summary]
    assert second["T06：建立行政执法公示制度（县公安局）"] != second[summary]


def test_an_escalation_s_calendar_holds_only_the_recipient_s_own_to_dos(renderer):
    """The late units' to-dos are theirs, not the office's (one December escalation carried 1,065)."""
    others = [item("escalation", date(2026, 6, 10), unit=f"town-{n}", key=f"e{n}") for n in range(40)]
    escalation = renderer.render(digest(*others, recipient=LEGAL), now=NOW)
    assert [p for p in parse(escalation).walk() if p.get_content_type() == "text/calendar"] == []
    own = item("overdue", date(2026, 6, 5), unit="county-legal-office", unit_name="县政府法制办", key="own")
    mixed = uids(renderer, digest(own, *others, recipient=LEGAL))
    assert list(mixed) == ["T05：建立行政执法公示制度（县政府法制办）"]


def test_uid_differs_by_unit_and_occurrence(renderer):
    base = item("reminder", date(2026, 12, 31), occurrence="2026-12-31")
    variants = [
        base,
        dataclasses.replace(base, unit="town-a", unit_name="甲镇", key="k2"),
        dataclasses.replace(base, occurrence="2027-12-31", key="k3"),
    ]
    own = [digest(v, recipient=Recipient(v.unit, v.unit_name, ("x@example.gov.cn",))) for v in variants]
    seen = {next(iter(uids(renderer, d).values())) for d in own}
    assert len(seen) == 3


def test_phase_event_uid_is_stable_across_phase_notices(renderer):
    started = uids(renderer, digest(phase_item("phase_started")))
    ending = uids(renderer, digest(phase_item("phase_ending")))
    assert started == ending


# -- wire form --------------------------------------------------------------------------------


def test_wire_form_is_7bit_ascii_crlf_with_short_lines(renderer):
    d = digest(
        *mixed_digest().items,
        item("escalation", date(2026, 6, 1), unit="town-a", detail="很长的说明" * 400),
        phase_item("phase_closed"),
    )
    raw = renderer.render(d, now=NOW).as_bytes()
    raw.decode("ascii")  # raises if any byte is not ASCII
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert b"Content-Transfer-Encoding: base64\r\n" in raw
