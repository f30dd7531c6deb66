"""What a tick batch writes besides state changes: notification items, skips, and the notices of
escalations, phases and the program (scorecard, the office's before-start summary).

``BatchNotices`` is the half of ``engine.tick``'s batch that turns a fired timer into items and
audit events; the batch (``_Batch`` in ``engine.tick``) supplies what it reads: ``session``,
``now``, ``policy``, ``actor``, ``report``, ``programs``, ``zones``, ``today``, ``notify_day``,
``latest_phase_notice``, ``state_changes``, ``items``, ``events``, ``slots`` and ``_members``.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import String, cast
from sqlmodel import Session, select

from notifications.labels import EVENT_DETAILS as WORDS
from notifications.model import NoticeKind
from orchestrator.engine.timers import PHASE_NOTICE
from orchestrator.engine.window import send_slot
from orchestrator.store.audit import event_row
from orchestrator.store.models import Obligation, PhaseRun, Timer
from orchestrator.store.states import (
    QUIET_STATES,
    ItemState,
    ObligationState,
    PhaseState,
    TimerKind,
    TimerOutcome,
)

TIMER = Timer.__table__
OBLIGATION = Obligation.__table__


class BatchNotices:
    """The items and events of one batch's timers (escalations, phase and program notices)."""

    def _skip(self, timer, why: str) -> str:
        self.events.append(
            event_row(
                at=self.now,
                actor=self.actor,
                kind="notice.skipped",
                program_id=timer.program_id,
                obligation_id=timer.obligation_id,
                subject=timer.key,
                detail=why,
            )
        )
        return TimerOutcome.SKIPPED

    def _item(
        self, timer, kind: str, recipient: str, *, obligation: dict | None = None, phase=None, late=None
    ) -> None:
        o = obligation or {}
        # an item of one obligation is keyed by it (a timer narrowed to one obligation: by its own key)
        base = (
            timer.key if not o or timer.obligation_id else f"{o['key']}/{timer.kind}/{timer.step}/{timer.on}"
        )
        self.items.append(
            {
                **self._item_template(timer, kind, late),
                "key": f"{base}/{recipient}",
                "recipient": recipient,
                "obligation_id": o.get("id"),
                "phase": o.get("phase", phase),
                "task": o.get("task", timer.task),
                "unit": o.get("unit"),
                "occurrence": o.get("occurrence", timer.occurrence),
                "due": o.get("due", timer.due),
            }
        )

    def _obligation_items(self, timer, obligations: list[dict]) -> None:
        """The items of a task occurrence's notice, one per obligation: ``_item``'s rows, built from
        one template (a province's notice is 5,000 of them)."""
        if timer.obligation_id is not None:  # narrowed to one obligation: keyed by the timer itself
            for obligation in obligations:
                self._item(timer, timer.kind, obligation["unit"], obligation=obligation)
            return
        template = self._item_template(timer, timer.kind, None)
        suffix = f"/{timer.kind}/{timer.step}/{timer.on}/"
        self.items.extend(
            {
                **template,
                "key": f"{o['key']}{suffix}{o['unit']}",
                "recipient": o["unit"],
                "obligation_id": o["id"],
                "phase": o["phase"],
                "task": o["task"],
                "unit": o["unit"],
                "occurrence": o["occurrence"],
                "due": o["due"],
            }
            for o in obligations
        )

    def _item_template(self, timer, kind: str, late) -> dict:
        """What every item of one notice shares: its kind, program, day, send slot and state."""
        return {
            "kind": kind,
            "program_id": timer.program_id,
            "on": timer.on,
            "send_at": self._slot(timer.program_id, max(timer.fire_at, self.now)),
            "state": ItemState.PENDING,
            "message_id": None,
            "created_at": self.now,
            "late": late,
        }

    def _slot(self, program_id: int, at: datetime) -> datetime:
        key = (program_id, at)
        if key not in self.slots:
            calendar = self.policy.calendar(self.programs[program_id].workflow)
            self.slots[key] = send_slot(at, self.zones[program_id], self.policy.window, calendar)
        return self.slots[key]

    def _escalation(self, timer) -> str:
        """One escalation step of a task occurrence: each recipient is told which units are late.

        Late means not done, waived or cancelled by now (states changed earlier in this batch
        included); a recipient is never told about its own obligation.
        """
        start = self.notify_day[timer.program_id]
        if timer.due is not None and timer.due < start:
            return self._skip(
                timer, WORDS["escalation_before"].format(task=timer.task, due=timer.due, start=start)
            )
        late = self._late(timer)
        if not late:
            return self._skip(timer, WORDS["nothing_late"].format(task=timer.task, due=timer.due))
        fired = False
        for recipient in timer.recipients:
            others = [pair for pair in late if pair[1] != recipient]  # (stored as [id, unit] lists)
            if others:
                self._item(timer, NoticeKind.ESCALATION, recipient, phase=timer.phase, late=others)
                self.listed += len(others)
                fired = True
        return TimerOutcome.FIRED if fired else TimerOutcome.SKIPPED

    def _late(self, timer) -> list[tuple[int, str]]:
        late = [(o["id"], o["unit"]) for o in self._members(timer) if o["state"] not in QUIET_STATES]
        return sorted(late, key=lambda pair: (pair[1], pair[0]))

    def _program_timer(self, timer) -> str:
        session = self.session
        today = self.today[timer.program_id]
        if timer.kind == TimerKind.SCORECARD:
            for recipient in timer.recipients:
                self._item(timer, NoticeKind.SCORECARD, recipient)
            return TimerOutcome.FIRED
        if timer.kind == TimerKind.BEFORE_START:
            return self._before_start(timer)
        run = session.exec(
            select(PhaseRun).where(PhaseRun.program_id == timer.program_id, PhaseRun.phase == timer.phase)
        ).first()
        if run is None or run.state == PhaseState.CANCELLED:
            return TimerOutcome.SKIPPED
        if timer.kind == TimerKind.PHASE_START and run.state == PhaseState.PENDING:
            self._phase_state(run, PhaseState.ACTIVE)
        if timer.kind == TimerKind.PHASE_END and run.state != PhaseState.CLOSED:
            self._phase_state(run, PhaseState.CLOSED)
        if timer.kind in (TimerKind.PHASE_START, TimerKind.PHASE_ENDING) and today > run.end:
            return self._skip(timer, WORDS["phase_ended"].format(today=today, phase=run.name, end=run.end))
        start = self.notify_day[timer.program_id]
        if timer.on < start:
            return self._skip(timer, WORDS["phase_before_notify_from"].format(start=start, on=timer.on))
        latest = self.latest_phase_notice.get(timer.program_id)
        if latest is not None and latest > timer.fire_at:
            return self._skip(timer, WORDS["phase_superseded"].format(today=today))
        kind = PHASE_NOTICE.get(timer.kind, timer.kind)
        for recipient in _phase_audience(session, timer.program_id, run.phase):
            self._item(timer, kind, recipient, phase=run.phase)
        return TimerOutcome.FIRED

    def _before_start(self, timer) -> str:
        """The office's one summary of what fell due before ``notify_from`` and is not finished: one
        item per office unit listing those obligations (by due date), or skipped if there are none."""
        start = self.notify_day[timer.program_id]
        o = OBLIGATION.c
        rows = self.session.connection().execute(
            select(o.id, o.unit, o.due, o.state)
            .where(o.program_id == timer.program_id, o.due < start)
            .order_by(o.due, o.task, o.unit, o.id)
        )
        listed = []
        for oid, unit, _due, state in rows.all():
            state = self.state_changes.get(oid, state)
            if state not in QUIET_STATES:
                listed.append([oid, unit])
        if not listed:
            return self._skip(timer, WORDS["nothing_before"].format(start=start))
        for recipient in timer.recipients:
            self._item(timer, NoticeKind.BEFORE_START, recipient, phase=None, late=listed)
            self.listed += len(listed)
        self.events.append(
            event_row(
                at=self.now,
                actor=self.actor,
                kind="program.before_start",
                program_id=timer.program_id,
                subject=timer.key,
                after={"obligations": len(listed), "to": list(timer.recipients)},
                detail=WORDS["summarized"].format(n=len(listed), start=start),
            )
        )
        return "fired"

    def _phase_state(self, run: PhaseRun, state: str) -> None:
        self.events.append(
            event_row(
                at=self.now,
                actor=self.actor,
                kind=f"phase.{state}",
                program_id=run.program_id,
                subject=run.phase,
                before={"state": run.state},
                after={"state": state},
            )
        )
        run.state = state
        self.report.transitions += 1


def task_occurrence_of(timer) -> tuple:
    """(program, task, occurrence, opens, due): the key of ``_Latest.group`` and of a batch's members."""
    return (timer.program_id, timer.task, timer.occurrence, timer.opens, timer.due)


def _phase_audience(session: Session, program_id: int, phase: str) -> list[str]:
    """Units that owe something in the phase, and the lead units of those tasks."""
    o = OBLIGATION.c
    where = (o.program_id == program_id, o.phase == phase, o.state != ObligationState.CANCELLED)
    connection = session.connection()
    units = set(connection.execute(select(o.unit).where(*where).distinct()).scalars())
    for lead in connection.execute(select(cast(o.lead, String)).where(*where).distinct()).scalars():
        units.update(json.loads(lead) if lead else ())  # a few distinct lists (one per task)
    return sorted(units)
