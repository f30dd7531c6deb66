"""Operator changes (``orchestrator.admin.operations``) and REF resolution (``orchestrator.admin.refs``).

One store suite: every test runs on a real SQLite file and on the real PostgreSQL server (a fresh
schema in database ``test``). Time is a parameter: the program is started and ticked at chosen
moments; nothing waits for a date.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select
from support import towns_plan, unit, units_toml, write_bundle

from orchestrator.admin.operations import (
    ALL_FAILED,
    InvalidTransition,
    MissingText,
    mark_done,
    reopen,
    retry_outbox,
    waive,
)
from orchestrator.admin.refs import AmbiguousRef, BadRef, Ref, resolve
from orchestrator.engine.outbox import enqueue
from orchestrator.engine.programs import start_program
from orchestrator.engine.tick import tick
from orchestrator.service.config import Settings
from orchestrator.service.runtime import make_renderer, send_policy
from orchestrator.store.db import make_engine, transaction, upgrade
from orchestrator.store.models import Event, NotificationItem, Obligation, OutboxMessage, Timer
from workflows.errors import NotFound

TZ = ZoneInfo("Asia/Shanghai")

DEFINITION = towns_plan("ops-test", "操作测试方案")
UNITS = units_toml(
    unit("office", "县督查办", "office"),
    unit("town-a", "甲镇人民政府", "town"),
    unit("town-b", "乙镇人民政府", "town"),
)


NAMES = {"office": "县督查办", "town-a": "甲镇人民政府", "town-b": "乙镇人民政府"}


def at(text_: str) -> datetime:
    """A local (Asia/Shanghai) time as an aware UTC datetime."""
    return datetime.fromisoformat(text_).replace(tzinfo=TZ).astimezone(UTC)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write_bundle(tmp_path_factory.mktemp("ops"), DEFINITION, UNITS)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'duban.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, bundle):
    """A store with the program started on 2026-05-20, ticked on 2026-06-15 10:00 (local) and that
    day's notices put in outbox messages."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    engine = make_engine(url)
    upgrade(engine)
    with transaction(engine) as session:
        start_program(session, bundle, 2026, at("2026-05-20T09:00"))
    tick(engine, at("2026-06-15T10:00"), policy(bundle))
    enqueue(engine, at("2026-06-15T10:00"), {"ops-test": bundle}, make_renderer(Settings()))
    yield engine
    engine.dispose()


def policy(bundle):
    return send_policy(Settings(), {"ops-test": bundle})


def obligation(engine, task: str, unit: str, occurrence: str | None = None) -> Obligation:
    with Session(engine) as session:
        query = select(Obligation).where(Obligation.task == task, Obligation.unit == unit)
        if occurrence:
            query = query.where(Obligation.occurrence == occurrence)
        return session.exec(query).one()


def events(engine, obligation_id: int) -> list[Event]:
    with Session(engine) as session:
        return list(
            session.exec(select(Event).where(Event.obligation_id == obligation_id).order_by(Event.id))
        )


def items_for(engine, obligation_id: int, state: str | None = None) -> list[NotificationItem]:
    """The obligation's items, and the escalations that list it among the late units."""
    with Session(engine) as session:
        query = select(NotificationItem)
        if state:
            query = query.where(NotificationItem.state == state)
        return [
            i
            for i in session.exec(query)
            if i.obligation_id == obligation_id or any(oid == obligation_id for oid, _ in i.late or ())
        ]


# -- REF ---------------------------------------------------------------------------------------


def test_a_ref_is_an_id_a_key_or_a_task_with_its_unit(engine):
    target = obligation(engine, "T1", "town-a")
    names = NAMES
    with Session(engine) as session:
        for ref in (
            target.id,
            str(target.id),
            f"#{target.id}",
            target.key,
            Ref("T1", unit="town-a"),
            Ref("t1", unit="town-a"),
            Ref("T1", unit="甲镇人民政府"),
            Ref("T1", unit="town-a", program="ops-test:2026"),
        ):
            assert resolve(session, ref, names).id == target.id, ref
        monthly = obligation(engine, "M1", "town-b", "2026-07-15")
        assert resolve(session, Ref("M1", unit="town-b", occurrence="2026-07-15")).id == monthly.id


@pytest.mark.parametrize(
    ("ref", "error", "message"),
    [
        (Ref("9999"), NotFound, "no obligation #9999"),
        (
            Ref("ops-test/2026/T1/nobody/-"),
            NotFound,
            'no obligation with the key "ops-test/2026/T1/nobody/-"',
        ),
        (Ref("T99", unit="town-a"), NotFound, 'unknown task "T99"'),
        (Ref("T1", unit="nowhere"), NotFound, 'unknown unit "nowhere"'),
        (
            Ref("T1", unit="office"),
            NotFound,
            'T1 has no obligation for unit "office" (its units: town-a, town-b)',
        ),
        (Ref("M1", unit="town-a", occurrence="2026-08-15"), NotFound, 'no occurrence "2026-08-15"'),
        (Ref("T1", unit="town-a", program="other"), NotFound, 'no program "other" (programs: ops-test:2026)'),
        (Ref("T1", unit="town-a", program="ops-test:26"), BadRef, "expected WORKFLOW or WORKFLOW:YYYY"),
        (Ref("12", unit="town-a"), BadRef, "--unit, --occurrence and --program go with a TASK_ID"),
        (Ref("T1"), AmbiguousRef, '"T1" matches 2 obligations; add --unit or use an id: #'),
        (Ref("M1", unit="town-a"), AmbiguousRef, "add --occurrence or use an id"),
    ],
)
def test_a_ref_that_is_not_exactly_one_obligation_says_why_in_one_line(engine, ref, error, message):
    with Session(engine) as session, pytest.raises(error) as raised:
        resolve(session, ref, NAMES)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert raised.value.exit_code == 2


# -- done ------------------------------------------------------------------------------------------


def test_done_late_records_who_when_and_evidence_in_one_event(engine):
    target = obligation(engine, "T1", "town-a")  # due 06-10, overdue on 06-15
    assert target.state == "overdue"
    now = at("2026-06-15T11:00")
    with transaction(engine) as session:
        change = mark_done(session, target.id, evidence="  甲政发〔2026〕8号 ", now=now, actor="alice")
    assert (change.before, change.after, change.done_late) == ("overdue", "done", True)
    row = obligation(engine, "T1", "town-a")
    assert (row.state, row.done_late, row.evidence) == ("done", True, "甲政发〔2026〕8号")
    assert row.done_at == now
    last = events(engine, target.id)[-1]
    assert (last.kind, last.actor, last.at) == ("obligation.done", "alice", now)
    assert last.before == {"state": "overdue"}
    assert last.after == {
        "state": "done",
        "done_at": "2026-06-15T03:00:00+00:00",
        "done_late": True,
        "evidence": "甲政发〔2026〕8号",
    }


def test_done_on_the_due_date_is_on_time_and_a_pending_one_may_be_done_early(engine):
    open_one = obligation(engine, "M1", "town-a", "2026-06-15")  # due today
    pending = obligation(engine, "M1", "town-a", "2026-07-15")  # opens 07-05
    assert (open_one.state, pending.state) == ("open", "pending")
    with transaction(engine) as session:
        assert (
            mark_done(session, open_one.id, evidence=None, now=at("2026-06-15T23:59"), actor="a").done_late
            is False
        )
        assert (
            mark_done(session, pending.id, evidence=None, now=at("2026-06-15T23:59"), actor="a").done_late
            is False
        )
    assert obligation(engine, "M1", "town-a", "2026-07-15").state == "done"


def test_done_withdraws_notices_still_waiting_for_the_send_window(engine, bundle):
    target = obligation(engine, "T2", "town-a")  # due 06-26; reminder -3d on 06-23
    tick(engine, at("2026-06-23T00:30"), policy(bundle))  # before the 09:00 window: items wait
    assert [i.kind for i in items_for(engine, target.id, "pending")] == ["reminder"]
    with transaction(engine) as session:
        change = mark_done(
            session, Ref("T2", unit="town-a"), evidence=None, now=at("2026-06-23T08:00"), actor="a"
        )
    assert change.withdrawn == 1
    assert [i.kind for i in items_for(engine, target.id, "skipped")] == ["reminder"]
    assert items_for(engine, target.id, "pending") == []
    enqueue(engine, at("2026-06-23T09:30"), {"ops-test": bundle}, make_renderer(Settings()))
    other = obligation(engine, "T2", "town-b")
    with Session(engine) as session:
        queued = session.exec(
            select(NotificationItem.obligation_id, NotificationItem.kind).where(
                NotificationItem.state == "queued", NotificationItem.on == date(2026, 6, 23)
            )
        ).all()
        assert (other.id, "reminder") in queued  # town-b is still reminded
        assert target.id not in {oid for oid, _ in queued}  # town-a is not
        assert [e.detail for e in events(engine, target.id)][-1] == "撤回 1 条待发通知"


def tick_through(engine, bundle, *days: str) -> None:
    """One tick on each day at 10:00 local, as the daemon would."""
    for day in days:
        tick(engine, at(f"{day}T10:00"), policy(bundle))


AFTER_DUE = ("2026-06-23", "2026-06-26", "2026-06-29", "2026-07-03", "2026-07-10")


def kinds_since(engine, obligation_id: int, since: datetime) -> set[str]:
    return {i.kind for i in items_for(engine, obligation_id) if i.created_at > since}


def test_the_next_tick_sends_nothing_more_about_a_done_obligation(engine, bundle):
    done_one, other = obligation(engine, "T2", "town-a"), obligation(engine, "T2", "town-b")
    done_at = at("2026-06-15T11:00")
    with transaction(engine) as session:
        mark_done(session, done_one.id, evidence="已报送", now=done_at, actor="a")
    tick_through(engine, bundle, *AFTER_DUE)  # reminder, due date, overdue, both escalation steps
    assert kinds_since(engine, other.id, done_at) == {"reminder", "due_today", "overdue", "escalation"}
    assert kinds_since(engine, done_one.id, done_at) == set()
    assert obligation(engine, "T2", "town-a").state == "done"
    with Session(engine) as session:  # T2's timers (one per notice for all towns) fired for the others
        outcomes = set(session.exec(select(Timer.outcome).where(Timer.task == "T2", Timer.fire_at > done_at)))
    assert outcomes == {"fired"}


@pytest.mark.parametrize(
    ("first", "then", "message"),
    [
        ("waive", "done", "is waived: reopen it first"),
        ("done", "waive", "is done: reopen it first"),
        ("done", "done", "is already done: reopen it first to record it again"),
        ("waive", "waive", "is already waived: reopen it first to record it again"),
    ],
)
def test_a_finished_obligation_must_be_reopened_before_it_changes_again(engine, first, then, message):
    target = obligation(engine, "T1", "town-b")
    now = at("2026-06-15T11:00")
    actions = {
        "done": lambda s: mark_done(s, target.id, evidence="x", now=now, actor="a"),
        "waive": lambda s: waive(s, target.id, reason="不适用", now=now, actor="a"),
    }
    with transaction(engine) as session:
        actions[first](session)
    before = (obligation(engine, "T1", "town-b"), len(events(engine, target.id)))
    with pytest.raises(InvalidTransition) as raised, transaction(engine) as session:
        actions[then](session)
    assert str(raised.value) == f"#{target.id} {message}"
    after = (obligation(engine, "T1", "town-b"), len(events(engine, target.id)))
    assert after[0].model_dump() == before[0].model_dump() and after[1] == before[1]


# -- waive / reopen --------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_a_waiver_needs_a_reason(engine, reason):
    target = obligation(engine, "T2", "town-b")
    with pytest.raises(MissingText, match="a reason is required"), transaction(engine) as session:
        waive(session, target.id, reason=reason, now=at("2026-06-15T11:00"), actor="a")
    assert obligation(engine, "T2", "town-b").state == "open"


def test_waive_then_reopen_restores_the_state_the_dates_give(engine):
    late, current, future = (
        obligation(engine, "T1", "town-b"),
        obligation(engine, "T2", "town-b"),
        obligation(engine, "M1", "town-b", "2026-07-15"),
    )
    now = at("2026-06-15T11:00")
    with transaction(engine) as session:
        for target in (late, current, future):
            assert waive(session, target.id, reason="合并办理", now=now, actor="bob").after == "waived"
    assert obligation(engine, "T1", "town-b").reason == "合并办理"
    with transaction(engine) as session:
        states = [
            reopen(session, t.id, now=now, actor="carol", reason="需补报").after
            for t in (late, current, future)
        ]
    assert states == ["overdue", "open", "pending"]
    row = obligation(engine, "T1", "town-b")
    assert (row.reason, row.evidence, row.done_at) == (None, None, None)
    last = events(engine, late.id)[-1]
    assert (last.kind, last.actor, last.detail) == ("obligation.reopened", "carol", "需补报")
    assert last.before["state"] == "waived" and last.before["reason"] == "合并办理"
    assert last.after == {"state": "overdue"}


def test_reopen_refuses_an_obligation_that_is_not_finished(engine):
    target = obligation(engine, "T2", "town-a")
    refused = pytest.raises(
        InvalidTransition, match="is open: only a done or waived obligation can be reopened"
    )
    with refused, transaction(engine) as session:
        reopen(session, target.id, now=at("2026-06-15T11:00"), actor="a")


def test_a_reopened_obligation_gets_the_notices_still_ahead(engine, bundle):
    target = obligation(engine, "T2", "town-a")
    with transaction(engine) as session:
        mark_done(session, target.id, evidence="x", now=at("2026-06-15T11:00"), actor="a")
    tick_through(engine, bundle, "2026-06-23")  # the reminder passes while it is done
    reopened_at = at("2026-06-24T11:00")
    with transaction(engine) as session:
        assert reopen(session, target.id, now=reopened_at, actor="a").after == "open"
    tick_through(engine, bundle, *AFTER_DUE[1:])
    assert kinds_since(engine, target.id, reopened_at) == {"due_today", "overdue", "escalation"}


def test_cancelled_obligations_cannot_be_changed(engine):
    target = obligation(engine, "T2", "town-a")
    with transaction(engine) as session:
        session.get(Obligation, target.id).state = "cancelled"
    with pytest.raises(InvalidTransition, match="is cancelled"), transaction(engine) as session:
        mark_done(session, target.id, evidence=None, now=at("2026-06-15T11:00"), actor="a")


# -- outbox retry ---------------------------------------------------------------------------------


def _messages(engine, states: list[str]) -> list[int]:
    now = at("2026-06-15T10:00")
    with transaction(engine) as session:
        rows = [
            OutboxMessage(
                message_id=f"<m{n}@duban.test>",
                recipient="town-a",
                to=["town-a@example.gov.cn"],
                subject="【督办提醒】",
                send_date=date(2026, 6, 15),
                state=state,
                attempts=8 if state == "failed" else 1,
                next_attempt_at=now,
                last_error="550 5.1.1 no such user" if state == "failed" else None,
                created_at=now,
                reported_at=now if state == "failed" else None,
            )
            for n, state in enumerate(states)
        ]
        session.add_all(rows)
        session.flush()
        return [r.id for r in rows]


def test_retry_puts_a_failed_message_back_due_now_keeping_its_attempts(engine):
    failed, sent = _messages(engine, ["failed", "sent"])
    now = at("2026-06-16T10:00")
    with transaction(engine) as session:
        assert retry_outbox(session, failed, now=now, actor="alice") == [failed]
    with Session(engine) as session:
        row = session.get(OutboxMessage, failed)
        assert (row.state, row.attempts, row.next_attempt_at, row.reported_at) == ("pending", 8, now, None)
        event = session.exec(select(Event).where(Event.kind == "mail.retry_requested")).one()
    assert (event.actor, event.subject, event.unit) == ("alice", "<m0@duban.test>", "town-a")
    assert event.before == {"state": "failed", "attempts": 8, "last_error": "550 5.1.1 no such user"}
    refused = pytest.raises(InvalidTransition, match=f"#{sent} is sent: only a failed message can be retried")
    with refused, transaction(engine) as session:
        retry_outbox(session, sent, now=now, actor="alice")
    with pytest.raises(NotFound, match="no outbox message #999"), transaction(engine) as session:
        retry_outbox(session, 999, now=now, actor="alice")


def test_retry_all_failed_takes_every_failed_message_and_only_those(engine):
    ids = _messages(engine, ["failed", "sent", "failed", "pending"])
    with transaction(engine) as session:
        assert retry_outbox(session, ALL_FAILED, now=at("2026-06-16T10:00"), actor="a") == [ids[0], ids[2]]
    with Session(engine) as session:
        assert [session.get(OutboxMessage, i).state for i in ids] == ["pending", "sent", "pending", "pending"]
    with transaction(engine) as session:
        assert retry_outbox(session, ALL_FAILED, now=at("2026-06-16T10:00"), actor="a") == []


def test_done_takes_the_obligation_out_of_escalations_still_waiting_to_be_sent(engine, bundle):
    """An escalation naming town-a and town-b fired but is not yet in an email; town-a reports done:
    the escalation still goes out, about town-b only (an escalation left with nobody is skipped)."""
    done_one, other = obligation(engine, "T2", "town-a"), obligation(engine, "T2", "town-b")
    tick_through(engine, bundle, *AFTER_DUE)
    waiting = [i for i in items_for(engine, done_one.id, state="pending") if i.kind == "escalation"]
    assert waiting and all({done_one.id, other.id} <= {oid for oid, _ in i.late} for i in waiting)
    with transaction(engine) as session:
        change = mark_done(session, done_one.id, evidence="已报送", now=at("2026-07-10T10:30"), actor="a")
    assert change.withdrawn >= len(waiting)
    assert [i for i in items_for(engine, done_one.id, state="pending") if i.kind == "escalation"] == []
    still = [i for i in items_for(engine, other.id, state="pending") if i.kind == "escalation"]
    assert still and all(done_one.id not in {oid for oid, _ in i.late} for i in still)
