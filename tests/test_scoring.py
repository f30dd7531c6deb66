"""The year-end evaluation, counted by hand.

A small plan (three towns, an office, four tasks, two indicators) runs through 2026 on a real
SQLite database made by ``duban db upgrade`` and ``duban start``: the engine ticks on a fake clock,
the towns' work is recorded with ``orchestrator.admin.operations`` on the days it happens, and the
indicator values go in through ``duban indicator set``. Every figure of the scorecard on 21
December is then checked against the hand count written next to it.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import structlog
import support
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from orchestrator.admin.operations import mark_done, waive
from orchestrator.cli import main
from orchestrator.engine.tick import tick
from orchestrator.engine.window import SendPolicy
from orchestrator.evaluation.scorecard_csv import scorecard_csv
from orchestrator.evaluation.scoring import (
    ObligationFact,
    Scorecard,
    _ranks,
    band_for,
    build_scorecard,
    half_up,
    late_days,
    score,
)
from orchestrator.store.db import make_engine, transaction
from orchestrator.store.models import Obligation, Program
from workflows.calendar import make_calendar
from workflows.catalog import Bundle, load_bundle
from workflows.errors import DefinitionError
from workflows.loader import load_definition
from workflows.schema import Evaluation, Weights

TZ = ZoneInfo("Asia/Shanghai")
YEAR = 2026
EVALUATION_DAY = date(2026, 12, 21)  # [evaluation] send_on, a Monday

MINI = """\
[workflow]
id = "mini-eval"
title = "考评测试方案"
timezone = "Asia/Shanghai"
calendar = "cn-workdays"
reminders = ["-1wd"]
escalation = []

[[phases]]
id = "work"
name = "实施阶段"
start = "06-01"
end = "09-30"

[[phases]]
id = "evaluate"
name = "考评阶段"
start = "12-01"
end = "12-30"

[[tasks]]
id = "A1"
section = "甲、制度建设"
title = "制定实施方案"
phase = "work"
due = "06-10"
lead = ["office"]
responsible = ["role:town"]

[[tasks]]
id = "A2"
section = "甲、制度建设"
title = "建立工作台账"
phase = "work"
lead = ["office"]
responsible = ["role:town"]
indicators = [{ id = "filing_rate", name = "规范性文件备案率", target = ">= 100%" }]

[[tasks]]
id = "B1"
section = "乙、监督检查"
title = "开展专项检查"
due = "11-13"
lead = ["office"]
responsible = ["role:town"]
indicators = [{ id = "closure_rate", name = "投诉按时办结率", target = ">= 90%" }]

[[duties]]
id = "D1"
section = "乙、监督检查"
title = "报送年度工作总结"
phase = "evaluate"
due = "12-10"
lead = ["office"]
responsible = ["role:town", "office"]

[evaluation]
subjects = ["role:town"]
recipients = ["office"]
send_on = "12-21"
weights = { on_time = 50, timeliness = 20, indicators = 30 }
late_days_full_penalty = 10
"""

UNITS = support.units_toml(
    support.unit("office", "县考评办", "office"),
    support.unit("town-a", "甲镇", "town"),
    support.unit("town-b", "乙镇", "town"),
    support.unit("town-c", "丙镇", "town"),
)

# What happens in the year, (local day, action, task, unit). Working days late are counted in
# the PRC calendar: 2026-10-01…07 is the National Day holiday, 10-08 a working day and
# Saturday 10-10 a make-up working day.
STORY = [
    (date(2026, 6, 9), "done", "A1", "town-c"),  # a day early
    (date(2026, 6, 10), "done", "A1", "town-a"),  # on the due day
    (date(2026, 6, 12), "done", "A1", "town-b"),  # 2 working days late (06-11, 06-12)
    (date(2026, 9, 30), "done", "A2", "town-a"),
    (date(2026, 9, 30), "done", "A2", "town-c"),
    (date(2026, 10, 10), "done", "A2", "town-b"),  # 3 working days late (10-08, 10-09, Sat 10-10)
    (date(2026, 11, 2), "waive", "B1", "town-b"),
    (date(2026, 11, 13), "done", "B1", "town-a"),
    (date(2026, 11, 20), "done", "B1", "town-c"),  # 5 working days late (11-16 … 11-20)
    (date(2026, 12, 9), "done", "D1", "office"),
    (date(2026, 12, 10), "done", "D1", "town-a"),
    (date(2026, 12, 10), "done", "D1", "town-b"),
    # town-c never hands in D1 (due 12-10): on 12-21 it is 7 working days late (12-11 … 12-21)
]

INDICATORS = [
    ("filing_rate", "town-a", ["--count", "12", "--of", "12"]),  # 100 %: met
    ("filing_rate", "town-b", ["--count", "11", "--of", "12"]),  # 91.67 %: not met
    ("filing_rate", "town-c", ["--value", "100"]),  # met
    ("closure_rate", "town-a", ["--value", "95"]),  # met (>= 90 %)
    ("closure_rate", "town-c", ["--value", "90%"]),  # met: exactly the target
    # town-b reports no closure_rate: missing
]


def local(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), TZ).astimezone(UTC)


def cli(
    config: Path, *args: str, now: str = "2026-12-21T10:00:00+08:00", actor: str = "tester"
) -> tuple[int, str, str]:
    """Run ``duban --config CONFIG ARGS`` in this process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    logging = structlog.get_config()  # the CLI configures structlog for the process: put it back after
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DUBAN_FAKE_NOW", now)
        patch.setenv("DUBAN_ACTOR", actor)
        patch.delenv("SUDO_USER", raising=False)
        patch.setenv("COLUMNS", "200")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--config", str(config), *args])
    structlog.configure(**logging)
    return code, out.getvalue(), err.getvalue()


@dataclass
class Deployment:
    root: Path
    config: Path
    engine: Engine
    bundle: Bundle
    workflow: str = "mini-eval"

    def program(self, session: Session) -> Program:
        return session.exec(select(Program).where(Program.workflow == self.workflow)).one()

    def obligation_id(self, task: str, unit: str) -> int:
        with Session(self.engine) as session:
            return session.exec(
                select(Obligation.id).where(Obligation.task == task, Obligation.unit == unit)
            ).one()

    def scorecard(self, as_of: date = EVALUATION_DAY) -> Scorecard:
        with Session(self.engine) as session:
            return build_scorecard(session, self.program(session), self.bundle, as_of)


def deploy(root: Path, definition: str = MINI, units: str = UNITS, workflow: str = "mini-eval") -> Deployment:
    """Files, config, ``duban db upgrade`` and ``duban start WORKFLOW --year 2026`` (on 1 May)."""
    (root / "definitions").mkdir(parents=True)
    (root / "definitions" / "definition.toml").write_text(definition, encoding="utf-8")
    (root / "units.toml").write_text(units, encoding="utf-8")
    config = root / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{root / "duban.db"}"\n\n'
        '[definitions]\npaths = ["definitions"]\nunits = "units.toml"\n\n'
        '[mail]\nsender = "督办系统 <duban@example.gov.cn>"\ndomain = "duban.test"\n',
        encoding="utf-8",
    )
    code, _, err = cli(config, "db", "upgrade")
    assert code == 0, err
    code, out, err = cli(config, "start", workflow, "--year", "2026", now="2026-05-01T09:00:00+08:00")
    assert code == 0, err
    assert out.startswith("已启动方案「") and "2026 年度" in out
    bundle = load_bundle(root / "definitions" / "definition.toml", root / "units.toml")
    return Deployment(root, config, make_engine(f"sqlite:///{root / 'duban.db'}"), bundle, workflow)


def policy(bundle: Bundle) -> SendPolicy:
    return SendPolicy((time(9), time(17, 30)), {"mini-eval": bundle.calendar}, bundle.calendar)


def live_the_year(deployment: Deployment, until: date = EVALUATION_DAY) -> None:
    """Tick on each day something happens, record it as it happens, then tick on ``until``."""
    rules = policy(deployment.bundle)
    for day, action, task, unit in STORY:
        now = local(day)
        tick(deployment.engine, now, rules)
        ref = deployment.obligation_id(task, unit)
        with transaction(deployment.engine) as session:
            if action == "done":
                mark_done(session, ref, evidence="材料已报送", now=now, actor="test")
            else:
                waive(session, ref, reason="本年度无专项检查任务", now=now, actor="test")
    for indicator, unit, value in INDICATORS:
        code, _, err = cli(deployment.config, "indicator", "set", indicator, "--unit", unit, *value)
        assert code == 0, err
    tick(deployment.engine, local(until), rules)


@pytest.fixture(scope="module")
def year(tmp_path_factory) -> Deployment:
    deployment = deploy(tmp_path_factory.mktemp("scoring"))
    live_the_year(deployment)
    return deployment


def by_unit(card: Scorecard) -> dict:
    return {u.unit: u for u in card.units}


# -- the hand count ---------------------------------------------------------------------------

# Points: on_time = 50 × on time / counted; timeliness = 20 × (1 − mean(min(days, 10) / 10));
# indicators = 30 × met / reported-or-missing. Each rounded to 0.01; the score is their sum.
#
# 甲镇: 4 of 4 on time, 0 days late, 2 of 2 met            → 50.00 + 20.00 + 30.00 = 100.00 优秀
# 丙镇: A1 A2 on time; B1 5 days late; D1 open, 7 days late → 50 × 2/4 = 25.00;
#       20 × (1 − (0 + 0 + 0.5 + 0.7) / 4) = 14.00; 2 of 2 met = 30.00           →  69.00 合格
# 乙镇: B1 waived (not counted); A1 2 and A2 3 days late; D1 on time → 50 × 1/3 = 16.67;
#       20 × (1 − (0.2 + 0.3 + 0) / 3) = 16.67; filing 91.67 % not met, closure missing: 0.00
#                                                                                 →  33.34 不合格
HAND_COUNT = {
    "town-a": (1, "100.00", "优秀", "50.00", "20.00", "30.00"),
    "town-c": (2, "69.00", "合格", "25.00", "14.00", "30.00"),
    "town-b": (3, "33.34", "不合格", "16.67", "16.67", "0.00"),
}


def test_each_unit_scores_what_a_hand_count_gives(year):
    card = year.scorecard()
    assert [u.unit for u in card.units] == ["town-a", "town-c", "town-b"]  # the office is no subject
    for unit in card.units:
        rank, total, band, on_time, timeliness, indicators = HAND_COUNT[unit.unit]
        got = (
            unit.rank,
            str(unit.score.total),
            unit.score.band,
            str(unit.score.on_time.points),
            str(unit.score.timeliness.points),
            str(unit.score.indicators.points),
        )
        assert got == (rank, total, band, on_time, timeliness, indicators), unit.unit


def test_tallies_count_on_time_late_open_waived_and_indicators(year):
    units = by_unit(year.scorecard())
    tallies = {u: units[u].score.tally for u in units}
    #                  counted on_time late not_done overdue waived days ind met not_met missing
    expected = {
        "town-a": (4, 4, 0, 0, 0, 0, 0, 2, 2, 0, 0),
        "town-b": (3, 1, 2, 0, 0, 1, 5, 2, 0, 1, 1),
        "town-c": (4, 2, 1, 1, 1, 0, 12, 2, 2, 0, 0),
    }
    for unit, t in tallies.items():
        got = (t.counted, t.on_time, t.done_late, t.not_done, t.overdue, t.waived, t.late_days)
        got += (t.indicators, t.met, t.not_met, t.missing)
        assert got == expected[unit], unit


def test_late_missing_and_waived_items_name_each_obligation(year):
    units = by_unit(year.scorecard())
    assert (units["town-a"].late, units["town-a"].missing, units["town-a"].waived) == ((), (), ())
    b = units["town-b"]
    assert [(i.task, i.due, i.done_on, i.late_days) for i in b.late] == [
        ("A1", date(2026, 6, 10), date(2026, 6, 12), 2),
        ("A2", date(2026, 9, 30), date(2026, 10, 10), 3),
    ]
    assert [(i.indicator, i.title) for i in b.missing] == [("closure_rate", "投诉按时办结率")]
    assert [(i.task, i.reason, i.ref) for i in b.waived] == [
        ("B1", "本年度无专项检查任务", f"#{year.obligation_id('B1', 'town-b')}")
    ]
    c = units["town-c"]
    assert [(i.task, i.done_on, i.late_days) for i in c.late] == [("B1", date(2026, 11, 20), 5)]
    assert [(i.task, i.due, i.done_on, i.late_days) for i in c.missing] == [
        ("D1", date(2026, 12, 10), None, 7)
    ]


def test_sections_and_overall_are_scored_with_the_same_formula(year):
    card = year.scorecard()
    # 甲 (A1, A2 × 3 towns): 4/6 on time → 33.33; days 2 + 3 → 20 × (1 − 0.5/6) = 18.33;
    #   filing met by 甲 and 丙 → 30 × 2/3 = 20.00.                                  71.66 合格
    # 乙 (B1 × 2 counted, D1 × 3): 3/5 on time → 30.00; 丙 5 + 7 days → 20 × (1 − 1.2/5) = 15.20;
    #   closure met by 甲 and 丙, 乙 missing → 20.00.                                 65.20 合格
    sections = {s.section: s.score for s in card.sections}
    assert list(sections) == ["甲、制度建设", "乙、监督检查"]
    got = {
        name: (
            str(s.total),
            s.band,
            str(s.on_time.points),
            str(s.timeliness.points),
            str(s.indicators.points),
        )
        for name, s in sections.items()
    }
    assert got == {
        "甲、制度建设": ("71.66", "合格", "33.33", "18.33", "20.00"),
        "乙、监督检查": ("65.20", "合格", "30.00", "15.20", "20.00"),
    }
    # all towns: 7/11 on time → 31.82; 20 × (1 − 1.7/11) = 16.91; 4/6 met → 20.00
    overall = card.overall
    assert (str(overall.total), str(overall.on_time.points), str(overall.timeliness.points)) == (
        "68.73",
        "31.82",
        "16.91",
    )
    per_unit = {u.unit: {s.section: str(s.score.total) for s in u.sections} for u in card.units}
    assert per_unit == {
        "town-a": {"甲、制度建设": "100.00", "乙、监督检查": "100.00"},
        "town-b": {"甲、制度建设": "15.00", "乙、监督检查": "70.00"},
        "town-c": {"甲、制度建设": "100.00", "乙、监督检查": "38.00"},
    }


def test_deadlines_and_phases_for_the_timeline(year):
    card = year.scorecard()
    assert card.deadlines == (
        (date(2026, 6, 10), 3, 0),
        (date(2026, 9, 30), 3, 0),
        (date(2026, 11, 13), 2, 0),  # 乙镇's B1 is waived
        (date(2026, 12, 10), 3, 1),  # 丙镇's D1 is not done
    )
    assert [(p.id, p.start, p.end) for p in card.phases] == [
        ("work", date(2026, 6, 1), date(2026, 9, 30)),
        ("evaluate", date(2026, 12, 1), date(2026, 12, 30)),
    ]


def test_as_of_an_earlier_day_counts_only_what_was_due_and_done_by_then(year):
    # On 10-09 only A1 and A2 are due. 乙镇 handed A2 in on 10-10, so on 10-09 it is still open,
    # 2 working days late: 50 × 0/2 = 0; 20 × (1 − (0.2 + 0.2) / 2) = 16.00; indicators 0 of 2.
    units = by_unit(year.scorecard(date(2026, 10, 9)))
    assert {u: (units[u].rank, str(units[u].score.total)) for u in units} == {
        "town-a": (1, "100.00"),
        "town-c": (1, "100.00"),  # a tie shares the rank
        "town-b": (3, "16.00"),
    }
    assert [(i.task, i.late_days) for i in units["town-b"].missing if i.task == "A2"] == [("A2", 2)]


def test_scorecard_cli_json_carries_the_same_numbers(year):
    code, out, err = cli(year.config, "scorecard", "--as-of", "2026-12-21", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["as_of"] == "2026-12-21"
    assert [(u["rank"], u["unit"], u["score"], u["band"]) for u in data["units"]] == [
        (1, "town-a", 100.0, "优秀"),
        (2, "town-c", 69.0, "合格"),
        (3, "town-b", 33.34, "不合格"),
    ]
    town_b = data["units"][2]
    assert town_b["on_time"] == {"weight": 50.0, "ratio": 0.3333, "points": 16.67}
    assert [i["task"] for i in town_b["late"]] == ["A1", "A2"]
    assert data["overall"]["score"] == 68.73


def test_scorecard_cli_csv_and_table(year, tmp_path):
    out_file = tmp_path / "考评.csv"
    code, out, err = cli(
        year.config, "scorecard", "--as-of", "2026-12-21", "--format", "csv", "--out", str(out_file)
    )
    assert code == 0, err
    assert str(out_file) in out
    raw = out_file.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # a BOM, so spreadsheet programs read the Chinese right
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    totals = [(r["名次"], r["单位"], r["综合得分"], r["等次"]) for r in rows if r["领域"] == "全部"]
    assert totals == [
        ("1", "甲镇", "100.00", "优秀"),
        ("2", "丙镇", "69.00", "合格"),
        ("3", "乙镇", "33.34", "不合格"),
        ("", "全部考评单位", "68.73", "合格"),
    ]
    c_sections = [(r["领域"], r["综合得分"], r["逾期工作日"]) for r in rows if r["单位标识"] == "town-c"]
    assert c_sections == [
        ("全部", "69.00", "12"),
        ("甲、制度建设", "100.00", "0"),
        ("乙、监督检查", "38.00", "12"),
    ]

    code, out, err = cli(year.config, "scorecard", "--as-of", "2026-12-21")
    assert code == 0, err
    for text in ("甲镇", "100.00", "优秀", "33.34", "不合格", "本年度无专项检查任务", "已逾期7个工作日"):
        assert text in out, text


def test_scorecard_csv_never_writes_a_formula(year):
    """Names and sections come from the units file and the plan: one starting with ``=`` (or ``+``,
    ``-``, ``@``) is written as text with a leading ``'``, as the .xlsx sheets are (issue 26)."""
    card = year.scorecard(date(2026, 12, 21))
    first = card.units[0]
    hostile = dataclasses.replace(
        first,
        name='=HYPERLINK("http://evil.example/x","甲镇")',
        sections=(dataclasses.replace(first.sections[0], section="+cmd|' /C calc'!A0"),),
    )
    rows = list(csv.reader(io.StringIO(scorecard_csv(dataclasses.replace(card, units=(hostile,))))))
    assert rows[1][2] == '\'=HYPERLINK("http://evil.example/x","甲镇")'
    assert rows[2][2:4] == ['\'=HYPERLINK("http://evil.example/x","甲镇")', "'+cmd|' /C calc'!A0"]
    assert rows[1][1] == "town-a" and rows[1][3] == "全部"  # plain text stays as it is


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "pdf"], '--format：没有 "pdf" 这种格式'),
        (["--as-of", "2026-13-01"], '--as-of：日期 "2026-13-01" 有误'),
        (["--program", "nope"], '--program: no program "nope"'),
        (["--out", "/nonexistent/dir/x.html"], "--out：/nonexistent/dir 不是文件夹"),
    ],
)
def test_scorecard_bad_input_is_one_line_exit_2(year, args, message):
    code, _, err = cli(year.config, "scorecard", *args)
    assert code == 2
    assert err.strip().splitlines() == [f"duban: {err.strip().removeprefix('duban: ')}"]
    assert message in err
    assert "Traceback" not in err


# -- the formula's pieces, table-driven --------------------------------------------------------

CAL = make_calendar("cn-workdays")


def fact(due: date, state: str = "open", done_on: date | None = None) -> ObligationFact:
    return ObligationFact(1, "T", "t", "s", "u", None, due, state, done_on)


@pytest.mark.parametrize(
    ("due", "done_on", "as_of", "days"),
    [
        (date(2026, 6, 10), date(2026, 6, 10), date(2026, 12, 1), 0),  # on the due day
        (date(2026, 6, 10), date(2026, 6, 1), date(2026, 12, 1), 0),  # early
        (date(2026, 6, 12), date(2026, 6, 13), date(2026, 12, 1), 1),  # Friday due, Saturday done: Monday
        (date(2026, 9, 30), date(2026, 10, 7), date(2026, 12, 1), 1),  # through the holiday: 10-08
        (date(2026, 9, 30), date(2026, 10, 10), date(2026, 12, 1), 3),  # Saturday 10-10 is a working day
        (date(2026, 9, 30), None, date(2026, 10, 9), 2),  # not done: counted to as_of
        (date(2026, 12, 10), None, date(2026, 12, 10), 0),  # due today: not late yet
        (date(2026, 9, 30), date(2026, 10, 12), date(2026, 10, 9), 2),  # done after as_of: open then
    ],
)
def test_late_days_are_working_days(due, done_on, as_of, days):
    state = "done" if done_on else "overdue"
    assert late_days(fact(due, state, done_on), as_of, CAL) == days


def test_a_part_that_does_not_apply_is_left_out_and_the_rest_scaled_to_100():
    evaluation = Evaluation(weights=Weights(on_time=50, timeliness=20, indicators=30))
    # one obligation done 1 working day late, no indicators: on_time 0/1 = 0, timeliness
    # 20 × (1 − 1/20) = 19.00; (0 + 19) × 100 / 70 = 27.142… → 27.14
    result = score(
        [fact(date(2026, 6, 10), "done", date(2026, 6, 11))], [], evaluation, CAL, date(2026, 12, 1)
    )
    assert (str(result.on_time.points), str(result.timeliness.points), result.indicators.points) == (
        "0.00",
        "19.00",
        None,
    )
    assert (str(result.total), result.band) == ("27.14", "不合格")
    nothing = score([fact(date(2026, 12, 30))], [], evaluation, CAL, date(2026, 12, 1))
    assert (nothing.total, nothing.band, nothing.tally.counted) == (None, None, 0)
    waived = score([fact(date(2026, 6, 10), "waived")], [], evaluation, CAL, date(2026, 12, 1))
    assert (waived.total, waived.tally.waived) == (None, 1)


@pytest.mark.parametrize(
    ("total", "band"),
    [
        ("100.00", "优秀"),
        ("90.00", "优秀"),
        ("89.99", "良好"),
        ("80.00", "良好"),
        ("60.00", "合格"),
        ("59.99", "不合格"),
        ("0.00", "不合格"),
    ],
)
def test_bands_take_the_highest_minimum_reached(total, band):
    assert band_for(Decimal(total), Evaluation()) == band


def test_rounding_is_half_up_on_exact_fractions():
    assert str(half_up(Fraction(2675, 1000))) == "2.68"  # binary floats would give 2.67
    assert str(half_up(Fraction(50, 3))) == "16.67"
    assert str(half_up(Fraction(-1, 200))) == "-0.01"


def test_ties_share_a_rank():
    scores = [Decimal("90"), Decimal("85"), Decimal("85"), Decimal("70"), None]
    assert _ranks(scores) == [1, 2, 2, 4, None]


# -- the [evaluation] section is checked when the definition is loaded -------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("indicators = 30 }", "indicators = 20 }", "must be 100 points (they add up to 90)"),
        (
            "late_days_full_penalty = 10",
            'bands = [{ name = "好", min = 80 }, { name = "差", min = 50 }]',
            "the lowest band must have min = 0",
        ),
        (
            "late_days_full_penalty = 10",
            'bands = [{ name = "好", min = 80 }, { name = "好", min = 0 }]',
            'duplicate band name "好"',
        ),
    ],
)
def test_bad_evaluation_sections_are_located_errors(tmp_path, old, new, message):
    path = tmp_path / "bad.toml"
    path.write_text(MINI.replace(old, new), encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_definition(path)
    (problem,) = caught.value.problems
    assert problem.file == str(path)
    assert problem.line > MINI.count("\n", 0, MINI.index("[evaluation]"))  # at the [evaluation] section
    assert message in problem.message


def test_reported_by_must_name_known_units(tmp_path):
    text = MINI.replace('target = ">= 90%" }', 'target = ">= 90%", reported_by = ["role:nobody"] }')
    path = tmp_path / "mini.toml"
    path.write_text(text, encoding="utf-8")
    (tmp_path / "units.toml").write_text(UNITS, encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_bundle(path, tmp_path / "units.toml")
    assert any("nobody" in p.message and "reported_by" in p.message for p in caught.value.problems)


def test_the_pilots_county_indicator_is_reported_by_the_county_government_office():
    from orchestrator.evaluation.indicators import reporters
    from workflows.catalog import BUILTIN_DEFINITIONS

    repo = Path(__file__).resolve().parent.parent
    bundle = load_bundle(
        BUILTIN_DEFINITIONS / "rule_of_law_pilot.toml",
        repo / "examples" / "units.example.toml",
        {"normative_documents": repo / "examples" / "normative_documents.example.csv"},
        on_assumed=lambda year, message: None,
    )
    found = {ind.id: reporters(bundle, task, ind) for task, ind in bundle.definition.indicators}
    assert found["npc_normative_doc_filing_rate"] == ("county-government-office",)
    assert "chengguan-town" in found["normative_doc_filing_rate"]
    assert os.path.basename(bundle.loaded.path) == "rule_of_law_pilot.toml"


def test_without_an_evaluation_section_every_unit_that_owes_something_is_scored(tmp_path):
    from orchestrator.evaluation.scoring import evaluation_of, subjects_of

    path = tmp_path / "plain.toml"
    path.write_text(MINI[: MINI.index("[evaluation]")], encoding="utf-8")
    (tmp_path / "units.toml").write_text(UNITS, encoding="utf-8")
    bundle = load_bundle(path, tmp_path / "units.toml")
    owing = [
        ObligationFact(1, "A1", "t", "s", "town-b", None, date(2026, 6, 10), "open", None),
        ObligationFact(2, "D1", "t", "s", "office", None, date(2026, 12, 10), "open", None),
    ]
    assert subjects_of(bundle, owing) == [("office", "县考评办"), ("town-b", "乙镇")]  # units-file order
    evaluation = evaluation_of(bundle)
    assert (evaluation.weights.on_time, [b.name for b in evaluation.bands]) == (
        50,
        ["优秀", "良好", "合格", "不合格"],
    )


def test_the_sections_are_the_plans_areas_and_other_duties_are_routine_work():
    from orchestrator.evaluation.scoring import DUTY_SECTION, _sections
    from workflows.catalog import load_bundle

    repo = Path(__file__).resolve().parent.parent
    bundle = load_bundle(
        repo / "workflows/definitions/rule_of_law_pilot.toml",
        repo / "examples/units.example.toml",
        {"normative_documents": repo / "examples/normative_documents.example.csv"},
    )
    by_task, order = _sections(bundle)
    assert order == [
        "（一）行政决策法治化", "（二）行政执法法治化", "（三）行政监督法治化",
        "（四）行政争议化解法治化", "（五）公共服务法治化", "（六）保障措施落实", DUTY_SECTION,
    ]  # fmt: skip
    duties = {d.id: d.section for d in bundle.definition.duties}
    assert all(by_task[d] == s for d, s in duties.items() if s in order)  # a duty of an area counts there
    assert {by_task[d] for d, s in duties.items() if s.startswith(("三、", "四、"))} == {DUTY_SECTION}
