"""``duban draft``'s readings, one phrase family at a time, on sentences written for these tests."""

from __future__ import annotations

import pytest
from support import unit, units_toml

from workflows.draft.dates import TBD, find_dates
from workflows.draft.names import Matcher, by_whom, labels, parentheses, recipients, subject
from workflows.monthday import MonthDay


def one(text: str):
    (found,) = find_dates(text)
    assert found.phrase in text  # every reading keeps the exact words it was read from
    return found


# -- dates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "phrase", "due", "roll", "year"),
    [
        ("各乡镇于6月10日前报送工作方案。", "6月10日前", "06-10", None, None),
        ("2022年10月底前完成全部清理工作。", "2022年10月底前", "10-31", "backward", 2022),
        ("各单位2月底前报送总结。", "2月底前", "02-29", "backward", None),  # 02-28 in a common year
        ("完成时间：2023年3月15日。", "2023年3月15日", "03-15", None, 2023),
        ("年底前全面完成。", "年底前", "12-31", "backward", None),
        ("九月三十日以前报县司法局。", "九月三十日以前", "09-30", None, None),
    ],
)
def test_a_day_and_a_deadline(sentence, phrase, due, roll, year):
    found = one(sentence)
    assert (found.kind, found.phrase, str(found.due), found.roll, found.year) == (
        "due",
        phrase,
        due,
        roll,
        year,
    )


@pytest.mark.parametrize(
    ("sentence", "phrase", "rule", "roll", "placeholder"),
    [
        (
            "县政府每年12月底前向县人大常委会报告。",
            "每年12月底前",
            "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=-1",
            "backward",
            False,
        ),
        (
            "各部门每年3月1日前报送上年度总结。",
            "每年3月1日前",
            "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=1",
            None,
            False,
        ),
        (
            "每季度末报送工作进展。",
            "每季度末",
            "FREQ=MONTHLY;BYMONTH=3,6,9,12;BYMONTHDAY=-1",
            "backward",
            False,
        ),
        ("每月5日前报送上月台账。", "每月5日前", "FREQ=MONTHLY;BYMONTHDAY=5", None, False),
        ("每季度召开一次联席会议。", "每季度", f"FREQ=MONTHLY;BYMONTH={TBD};BYMONTHDAY={TBD}", None, True),
        ("每年开展一次专项检查。", "每年", f"FREQ=YEARLY;BYMONTH={TBD};BYMONTHDAY={TBD}", None, True),
        ("规章每两年清理一次。", "每两年", f"DTSTART:{TBD}\nRRULE:FREQ=YEARLY;INTERVAL=2", None, True),
        ("目录每隔两年更新。", "每隔两年", f"DTSTART:{TBD}\nRRULE:FREQ=YEARLY;INTERVAL=2", None, True),
    ],
)
def test_a_recurrence(sentence, phrase, rule, roll, placeholder):
    found = one(sentence)
    assert (found.kind, found.phrase, found.rrule, found.roll, found.placeholder) == (
        "rrule",
        phrase,
        rule,
        roll,
        placeholder,
    )
    assert (found.unsure is not None) == placeholder  # a day the text does not give is said, not guessed


def test_an_expiry_opens_before_a_registers_date_and_rolls_back():
    found = one("在行政许可证有效期届满前3个月内，发证机关应当提醒持证人。")
    assert (found.kind, found.phrase, found.window, found.roll, found.placeholder) == (
        "expiry",
        "有效期届满前3个月",
        "-3mo",
        "backward",
        True,
    )


@pytest.mark.parametrize(
    ("sentence", "phrase", "begin", "end", "unsure"),
    [
        ("集中整治时间为8月10日至9月30日。", "8月10日至9月30日", "08-10", "09-30", False),
        ("自查自纠阶段，时间：年5月10日—年5月30日。", "年5月10日—年5月30日", "05-10", "05-30", False),
        ("动员部署阶段（4月—7月中旬）", "4月—7月中旬", "04-01", "07-20", True),  # 中旬 read as the 20th
        ("整改提升阶段（2023年10月—12月）", "2023年10月—12月", "10-01", "12-31", False),
    ],
)
def test_a_span_and_a_phase(sentence, phrase, begin, end, unsure):
    found = one(sentence)
    assert (found.kind, found.phrase, str(found.begin), str(found.due)) == ("span", phrase, begin, end)
    assert (found.unsure is not None) == unsure


def test_no_date_is_read_where_there_is_none():
    for sentence in (
        "按照《县行政执法案卷评查制度》（玉府办字〔2007〕142号）的要求开展评查。",
        "行政许可按时办结率达到100%，群众满意率达到90%以上。",
        "3月份开展宣传。",  # a month alone says no day
        "定期开展自查，总结工作成效。",
    ):
        assert find_dates(sentence) == [], sentence


def test_two_dates_in_one_sentence_are_both_read_in_order():
    found = find_dates("县政府每年12月底前向县人大常委会报告，乡镇政府每年12月底前向乡镇人大主席团报告。")
    assert [w.phrase for w in found] == ["每年12月底前", "每年12月底前"]
    assert found[0].start < found[1].start


# -- unit phrases -----------------------------------------------------------------------------------


def test_labels_name_leads_and_responsible_units():
    (lead,) = labels("牵头单位：县司法局、县发展改革局。")
    (responsible,) = labels("责任单位:各乡镇人民政府,县直有关部门")
    assert (lead.role, lead.names) == ("lead", ("县司法局", "县发展改革局"))
    assert (responsible.role, responsible.names) == ("responsible", ("各乡镇人民政府", "县直有关部门"))


def test_a_parenthesis_names_the_lead_and_the_others():
    found = parentheses("推行行政执法三项制度（县司法局牵头，县直各行政执法部门按职责分工负责）。")
    assert [(n.role, n.names) for n in found] == [
        ("lead", ("县司法局",)),
        ("responsible", ("县直各行政执法部门",)),
    ]
    assert [(n.role, n.names) for n in parentheses("建立台账（县财政局负责）")] == [
        ("responsible", ("县财政局",))
    ]


def test_by_whom():
    assert [(n.role, n.names) for n in by_whom("考评办法由县政府办公室负责制定。")] == [
        ("responsible", ("县政府办公室",))
    ]
    assert [(n.role, n.names) for n in by_whom("由县委办、县政府办会同有关部门组织实施")] == [
        ("lead", ("县委办",)),
        ("responsible", ("县委办", "县政府办")),
    ]


def test_a_clauses_subject_and_its_recipient():
    who = subject("各乡镇人民政府和各行政执法机关要在6月底前报送方案")
    assert who.names == ("各乡镇人民政府", "各行政执法机关")
    assert subject("县政府办公室负责汇总").names == ("县政府办公室",)
    assert subject("开展法治政府建设是一项重要工作") is None  # 「开展法治政府」 is no unit
    assert subject("各单位要高度重视") is None  # too vague to be a unit
    (to,) = recipients("名单于6月10日前报县依法治县办公室。")
    assert to.names == ("县依法治县办公室",)


# -- matching names to a units file ----------------------------------------------------------------

UNITS = units_toml(
    unit("justice", "县司法局", "justice_bureau", "law_enforcement_agency"),
    unit("hr", "县人力资源和社会保障局", "human_resources_bureau", "law_enforcement_agency"),
    unit("court", "县人民法院", "court"),
    unit("police", "县公安局", "law_enforcement_agency"),
    unit("gov-office", "县政府办公室", "county_government_office"),
    unit("town-a", "东溪乡人民政府", "township_government"),
    unit("town-b", "城关镇人民政府", "township_government"),
)


@pytest.fixture
def matcher(tmp_path):
    from workflows.loader import load_units

    (tmp_path / "units.toml").write_text(UNITS, encoding="utf-8")
    return Matcher(load_units(tmp_path / "units.toml").directory)


@pytest.mark.parametrize(
    ("name", "ref"),
    [
        ("县司法局", "role:justice_bureau"),  # its own role (the one no other unit holds)
        ("县法院", "role:court"),  # 人民 left out of both
        ("县人保局", "role:human_resources_bureau"),  # an abbreviation of 县人力资源和社会保障局
        ("县公安局", "police"),  # no role of its own: by its id
        ("各行政执法机关", "role:law_enforcement_agency"),  # a collective name, by the role's words
        ("各乡镇人民政府", "role:township_government"),
        ("乡镇政府", "role:township_government"),
        ("县政府", "role:county_government_office"),
    ],
)
def test_names_are_matched_to_roles_and_units(matcher, name, ref):
    found = matcher.match(name)
    assert (found.ref, found.unsure) == (ref, None)


def test_a_name_nothing_matches_is_kept_as_written_and_marked(matcher):
    for name in ("县人大常委会", "县政府各部门", "县气象局"):
        found = matcher.match(name)
        assert found.ref is None and found.unsure and name in found.unsure


def test_without_a_units_file_every_name_is_kept_as_written():
    found = Matcher(None).match("县司法局")
    assert (found.ref, found.how) == (None, "as written") and "--units" in found.unsure


def test_month_days_are_plain_values():
    assert one("6月10日前").due == MonthDay(6, 10)
