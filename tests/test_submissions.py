"""Units answer, the office reviews (``orchestrator.admin.submissions``): one store suite on a real
SQLite file and on the real PostgreSQL server. Time is a parameter: the program is started, ticked
and answered at chosen moments; nothing waits for a date."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func
from sqlmodel import Session, select
from support import OFFICE_AND_TWO_TOWNS

from orchestrator.admin.evidence import UploadLimits, store_file
from orchestrator.admin.operations import InvalidTransition
from orchestrator.admin.submissions import (
    Actor,
    BadRequest,
    Desk,
    acknowledge,
    approve,
    board,
    feedback,
    pending_reviews,
    request_extension,
    return_submission,
    submit_completion,
    unacknowledged,
    unit_obligations,
)
from orchestrator.engine.programs import start_program
from orchestrator.engine.tick import tick
from orchestrator.evaluation.scoring import build_scorecard
from orchestrator.service.config import Settings
from orchestrator.service.runtime import send_policy
from orchestrator.store.db import make_engine, transaction, upgrade
from orchestrator.store.models import (
    Event,
    Evidence,
    NotificationItem,
    Obligation,
    Program,
    Submission,
    Timer,
)
from workflows.catalog import load_bundle
from workflows.errors import NotFound

TZ = ZoneInfo("Asia/Shanghai")

DEFINITION = """\
[workflow]
id = "review-test"
title = "审核测试方案"
timezone = "Asia/Shanghai"
calendar = "cn-workdays"
contact = "role:office"
reminders = ["-3d"]
escalation = [{ after = "1wd", to = "lead" }, { after = "5wd", to = "role:office" }]

[[phases]]
id = "p1"
name = "实施阶段"
start = "06-01"
end = "06-30"

[[tasks]]
id = "T1"
title = "报送实施方案"
phase = "p1"
lead = ["role:office"]
responsible = ["role:town"]
due = "06-10"
deliverable = "实施方案（加盖公章）"

[[tasks]]
id = "T2"
title = "报送工作总结"
phase = "p1"
lead = ["role:office"]
responsible = ["role:town"]
due = "06-26"
"""

UNITS = OFFICE_AND_TWO_TOWNS

A = Actor.for_unit("town-a", client="203.0.113.7", user_agent="Mozilla/5.0 (iPhone)")
B = Actor.for_unit("town-b", client="203.0.113.8", user_agent="curl/8")
OFFICE = Actor.office("fazhiban@example.gov.cn")


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=TZ).astimezone(UTC)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    (root / "def.toml").write_text(DEFINITION, encoding="utf-8")
    (root / "units.toml").write_text(UNITS, encoding="utf-8")
    return load_bundle(root / "def.toml", root / "units.toml")


@pytest.fixture
def desk(bundle) -> Desk:
    return Desk({"review-test": bundle}, send_policy(Settings(), {"review-test": bundle}))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, bundle, tmp_path):
    """The program started on 2026-05-20 and ticked on 06-01 10:00 (the phase and T1, T2 open)."""
    url = (
        f"sqlite:///{tmp_path / 'duban.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    engine = make_engine(url)
    upgrade(engine)
    with transaction(engine) as session:
        start_program(session, bundle, 2026, at("2026-05-20T09:00"))
    tick(engine, at("2026-06-01T10:00"), policy(bundle))
    yield engine
    engine.dispose()


def policy(bundle):
    return send_policy(Settings(), {"review-test": bundle})


def ob(engine, task: str, unit: str) -> Obligation:
    with Session(engine) as session:
        return session.exec(select(Obligation).where(Obligation.task == task, Obligation.unit == unit)).one()


def items(engine, obligation_id: int, kind: str | None = None) -> list[NotificationItem]:
    """The obligation's items, and the escalations that list it among the late units."""
    with Session(engine) as session:
        return [
            i
            for i in session.exec(select(NotificationItem).order_by(NotificationItem.id))
            if (i.obligation_id == obligation_id or any(o == obligation_id for o, _ in i.late or ()))
            and (kind is None or i.kind == kind)
        ]


def counts(engine) -> tuple[int, int, int, int]:
    with Session(engine) as session:
        return tuple(
            session.exec(select(func.count()).select_from(model)).one()
            for model in (Submission, Evidence, Event, NotificationItem)
        )


def pdf(tmp_path: Path, body: bytes = b"report") -> Path:
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.7\n" + body + b"\n%%EOF\n")
    return path


def stored_pdf(tmp_path: Path, name: str = "实施方案.pdf", body: bytes = b"report"):
    return store_file(tmp_path / "evidence", pdf(tmp_path, body), name, UploadLimits())


def test_approval_sets_done_at_the_submission_time_and_the_scorecard_counts_it_on_time(
    engine, bundle, desk, tmp_path
):
    t1 = ob(engine, "T1", "town-a")
    submitted_at = at("2026-06-09T15:00")
    with transaction(engine) as session:
        submission = submit_completion(
            session, t1.id, A, submitted_at, "县政发〔2026〕12号", [stored_pdf(tmp_path)], desk=desk
        )
    assert ob(engine, "T1", "town-a").state == "submitted"
    tick(engine, at("2026-06-11T10:00"), policy(bundle))  # overdue day, first escalation: paused
    with transaction(engine) as session:
        decided = approve(session, submission.id, OFFICE, at("2026-06-12T10:00"), note="材料齐全", desk=desk)
    assert (decided.state, decided.done_at, decided.done_late) == ("done", submitted_at, False)
    done = ob(engine, "T1", "town-a")
    assert (done.state, done.done_at, done.done_late) == ("done", submitted_at, False)
    assert "县政发〔2026〕12号" in done.evidence and "实施方案.pdf" in done.evidence
    with Session(engine) as session:
        program = session.exec(select(Program)).one()
        card = build_scorecard(session, program, bundle, date(2026, 6, 30))
        event = session.exec(select(Event).where(Event.kind == "obligation.done")).one()
    tallies = {u.unit: u.score.tally for u in card.units}
    assert tallies["town-a"].on_time == 1 and tallies["town-a"].done_late == 0
    assert tallies["town-b"].on_time == 0
    assert event.actor == "office:fazhiban@example.gov.cn" and event.after["done_at"].startswith(
        "2026-06-09T07:00"
    )
    told = items(engine, t1.id, "submission_approved")
    assert [i.recipient for i in told] == ["town-a"]


def test_a_submitted_obligation_gets_no_reminder_overdue_notice_or_escalation(engine, bundle, desk):
    t1, other = ob(engine, "T1", "town-a"), ob(engine, "T1", "town-b")
    with transaction(engine) as session:
        submit_completion(session, t1.id, A, at("2026-06-04T11:00"), "已报送", desk=desk)
    for day in ("2026-06-05", "2026-06-10", "2026-06-11", "2026-06-18"):
        tick(engine, at(f"{day}T10:00"), policy(bundle))
    assert ob(engine, "T1", "town-a").state == "submitted"
    assert [i.kind for i in items(engine, t1.id) if i.kind != "task_opened"] == []
    escalations = items(engine, other.id, "escalation")
    assert len(escalations) == 2 and all(i.late == [[other.id, "town-b"]] for i in escalations)
    office = [i for i in items(engine, t1.id) if i.kind == "review_pending"]
    assert office == []  # the office's 待审核 item is about no one obligation
    with Session(engine) as session:
        review = session.exec(select(NotificationItem).where(NotificationItem.kind == "review_pending")).all()
    assert [i.recipient for i in review] == ["office"]


def test_a_returned_completion_resumes_the_notices_as_the_dates_say(engine, bundle, desk):
    t1 = ob(engine, "T1", "town-a")
    with transaction(engine) as session:
        submission = submit_completion(session, t1.id, A, at("2026-06-09T15:00"), "已报送", desk=desk)
    tick(engine, at("2026-06-11T10:00"), policy(bundle))
    assert items(engine, t1.id, "overdue") == []
    with transaction(engine) as session:
        decided = return_submission(
            session, submission.id, OFFICE, at("2026-06-12T10:00"), "缺少盖章页", desk=desk
        )
    assert decided.state == "overdue" and ob(engine, "T1", "town-a").state == "overdue"
    tick(engine, at("2026-06-17T10:00"), policy(bundle))  # the second escalation step (5wd)
    late = [i.late for i in items(engine, t1.id, "escalation")]
    assert late and [t1.id, "town-a"] in late[-1]
    assert [i.recipient for i in items(engine, t1.id, "submission_returned")] == ["town-a"]
    with Session(engine) as session:
        page = {o.task: o for o in unit_obligations(session, "town-a", date(2026, 6, 12), desk=desk)}
    assert page["T1"].last_word == "缺少盖章页" and page["T1"].colour == "red"
    with pytest.raises(InvalidTransition), transaction(engine) as session:
        return_submission(session, submission.id, OFFICE, at("2026-06-12T11:00"), "again")


def test_an_approved_extension_moves_the_due_date_and_the_reminders(engine, bundle, desk):
    t1, other = ob(engine, "T1", "town-a"), ob(engine, "T1", "town-b")
    with transaction(engine) as session:
        asked = request_extension(
            session, t1.id, A, at("2026-06-03T10:00"), date(2026, 6, 24), "需征求意见", desk=desk
        )
        assert [r.submission.id for r in pending_reviews(session, desk=desk)] == [asked.id]
        approve(session, asked.id, OFFICE, at("2026-06-04T10:00"), desk=desk)
    moved = ob(engine, "T1", "town-a")
    assert (moved.due, moved.extended_to, moved.state) == (date(2026, 6, 24), date(2026, 6, 24), "open")
    with Session(engine) as session:
        own = session.exec(select(Timer).where(Timer.obligation_id == t1.id, Timer.fired_at.is_(None))).all()
        event = session.exec(select(Event).where(Event.kind == "obligation.extended")).one()
    assert {(t.kind, t.on) for t in own} >= {
        ("reminder", date(2026, 6, 18)),  # 06-21 is a Sunday, 06-19 端午
        ("due_today", date(2026, 6, 24)),
        ("overdue", date(2026, 6, 25)),
    }
    assert (event.before["due"], event.after["due"]) == ("2026-06-10", "2026-06-24")
    for day in ("2026-06-05", "2026-06-11"):
        tick(engine, at(f"{day}T10:00"), policy(bundle))
    assert [i.kind for i in items(engine, t1.id)] == ["task_opened", "submission_approved"]
    assert {i.kind for i in items(engine, other.id)} >= {"reminder", "overdue", "escalation"}
    with transaction(engine) as session:  # a reload of the plan keeps the extension and its timers
        start_program(session, bundle, 2026, at("2026-06-12T09:00"))
    assert ob(engine, "T1", "town-a").due == date(2026, 6, 24)
    tick(engine, at("2026-06-18T10:00"), policy(bundle))
    assert [i.due for i in items(engine, t1.id, "reminder")] == [date(2026, 6, 24)]


def test_an_extension_is_asked_before_the_due_date_for_a_later_date(engine, desk):
    t1 = ob(engine, "T1", "town-a")
    before = counts(engine)
    for when, until, message in (
        ("2026-06-11T10:00", date(2026, 6, 20), "has passed"),
        ("2026-06-05T10:00", date(2026, 6, 10), "must be after"),
    ):
        with pytest.raises(BadRequest, match=message), transaction(engine) as session:
            request_extension(session, t1.id, A, at(when), until, "理由", desk=desk)
    with pytest.raises(BadRequest), transaction(engine) as session:
        request_extension(session, t1.id, A, at("2026-06-05T10:00"), date(2026, 6, 20), "  ", desk=desk)
    assert counts(engine) == before


def test_a_unit_cannot_touch_another_units_obligation_and_nothing_is_stored(engine, desk, tmp_path):
    theirs = ob(engine, "T1", "town-b")
    before = counts(engine)
    attempts = [
        lambda s: acknowledge(s, theirs.id, A, at("2026-06-02T10:00")),
        lambda s: feedback(s, theirs.id, A, at("2026-06-02T10:00"), "进展"),
        lambda s: submit_completion(s, theirs.id, A, at("2026-06-02T10:00"), "完成", [stored_pdf(tmp_path)]),
        lambda s: request_extension(s, theirs.id, A, at("2026-06-02T10:00"), date(2026, 7, 1), "理由"),
        lambda s: acknowledge(s, 999999, A, at("2026-06-02T10:00")),
        lambda s: acknowledge(s, "1; DROP TABLE obligation", A, at("2026-06-02T10:00")),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound) as caught, transaction(engine) as session:
            attempt(session)
        assert "town-b" not in str(caught.value)
    assert counts(engine) == before
    assert ob(engine, "T1", "town-b").state == "open"


def test_a_double_submit_is_stored_once(engine, desk, tmp_path):
    t1, t2 = ob(engine, "T1", "town-a"), ob(engine, "T2", "town-a")
    files = [stored_pdf(tmp_path)]
    with transaction(engine) as session:
        first = [
            acknowledge(session, t1.id, A, at("2026-06-02T10:00"), nonce="n-ack").id,
            feedback(session, t1.id, A, at("2026-06-02T10:01"), "已完成初稿", files, nonce="n-fb").id,
            submit_completion(session, t1.id, A, at("2026-06-02T10:02"), "完成", files, nonce="n-done").id,
            request_extension(session, t2.id, A, at("2026-06-02T10:03"), date(2026, 7, 3), "理由").id,
        ]
    with transaction(engine) as session:  # the same forms again, with and without their nonce
        again = [
            acknowledge(session, t1.id, A, at("2026-06-02T10:05")).id,
            feedback(session, t1.id, A, at("2026-06-02T10:05"), "已完成初稿", files).id,
            submit_completion(session, t1.id, A, at("2026-06-02T10:05"), "完成", files).id,
            request_extension(session, t2.id, A, at("2026-06-02T10:05"), date(2026, 7, 3), "理由").id,
        ]
        nonce_again = submit_completion(session, t1.id, A, at("2026-06-02T10:06"), "x", [], nonce="n-done").id
    assert again == first and nonce_again == first[2]
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Submission)).one() == 4
        assert session.exec(select(func.count()).select_from(Evidence)).one() == 2
        assert len(session.exec(select(Event).where(Event.kind == "obligation.submitted")).all()) == 1
        audited = session.exec(select(Event).where(Event.kind == "unit.acknowledged")).one()
    assert audited.actor == "unit:town-a" and "203.0.113.7" in audited.detail and "iPhone" in audited.detail


def test_the_unit_page_lists_most_urgent_first_with_colours(engine, bundle, desk):
    t1 = ob(engine, "T1", "town-a")
    with Session(engine) as session:
        page = unit_obligations(session, "town-a", date(2026, 6, 8), desk=desk)
    assert [(o.task, o.colour, o.state_label) for o in page] == [
        ("T1", "yellow", "办理中"),
        ("T2", "blue", "办理中"),
    ]
    first = page[0]
    assert (first.due_weekday, first.lead_names, first.deliverable) == (
        "周三",
        ("县督查办",),
        "实施方案（加盖公章）",
    )
    with transaction(engine) as session:
        submission = submit_completion(session, t1.id, A, at("2026-06-09T10:00"), "完成", desk=desk)
        approve(session, submission.id, OFFICE, at("2026-06-09T11:00"), desk=desk)
    tick(engine, at("2026-06-29T10:00"), policy(bundle))
    with Session(engine) as session:
        page = unit_obligations(session, "town-a", date(2026, 6, 29), desk=desk)
        other = unit_obligations(session, "town-b", date(2026, 6, 29), desk=desk)
    assert [(o.task, o.colour) for o in page] == [("T2", "red"), ("T1", "green")]
    assert [o.task for o in other] == ["T1", "T2"] and all(o.colour == "red" for o in other)
    assert [h.what for h in page[1].history][-2:] == ["提交办结申请", "已办结"]
    assert {h.who for h in page[1].history} <= {"本单位", "督办办公室", "系统"}


def test_the_office_sees_who_has_not_acknowledged_and_the_board(engine, desk):
    with transaction(engine) as session:
        acknowledge(session, ob(engine, "T1", "town-a").id, A, at("2026-06-02T10:00"))
        submit_completion(session, ob(engine, "T2", "town-b").id, B, at("2026-06-02T10:00"), "完成")
        waiting = [(u.unit, u.task) for u in unacknowledged(session, desk=desk)]
        view = board(session, date(2026, 6, 2), desk=desk)
    assert waiting == [("town-a", "T2"), ("town-b", "T1")]
    assert view.units == (("town-a", "甲镇人民政府"), ("town-b", "乙镇人民政府"))
    assert [t[0] for t in view.tasks] == ["T1", "T2"]
    assert view.cells[("town-b", "T2")].states == ("submitted",)
    assert view.cells[("town-a", "T1")].colour == "blue"
