"""Grouping items into digests — the one piece of code ``simulate`` and the dispatcher share.

A recipient's items due in the same send window (the same local day) become one ``Digest``:
one email per unit per day, never a flood.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from notifications import zh
from notifications.model import KINDS, PHASE_KINDS, Digest, DigestItem, NoticeKind, Recipient
from notifications.view import Summary
from orchestrator.engine.programs import notify_day
from orchestrator.engine.window import local_day
from orchestrator.store.db import among, chunks
from orchestrator.store.models import NotificationItem, Obligation, PhaseRun, Program, Submission
from workflows.catalog import Bundle

SUBMISSION_KINDS = ("submission_approved", "submission_returned", "review_pending")


def submission_summary(session: Session, stored: NotificationItem) -> str:
    """The words of a decision (approved, returned with its reason) or of the office's 待审核 count.

    A decision item's key ends ``/<submission id>/<unit>``; the 待审核 count is taken now (what is
    still waiting when the digest is written, in the item's program)."""
    if stored.kind == "review_pending":
        rows = session.exec(
            select(Submission.kind)
            .join(Obligation, Obligation.id == Submission.obligation_id)
            .where(Submission.decision.is_(None), Obligation.program_id == stored.program_id)
            .where(Submission.kind.in_(("completion", "extension")))
        ).all()
        done, extend = rows.count("completion"), rows.count("extension")
        if not rows:
            return "目前没有待审核的申请（已全部处理）。"
        return (
            f"待审核 {len(rows)} 项：办结申请 {done} 项，延期申请 {extend} 项。请在审核页面逐项通过或退回。"
        )
    try:
        submission = session.get(Submission, int(stored.key.rsplit("/", 2)[-2]))
    except ValueError:
        submission = None
    if submission is None:
        return "审核结果见本单位督办事项页面。"
    what = "办结申请" if submission.kind == "completion" else "延期申请"
    tz = ZoneInfo(session.get(Program, stored.program_id).timezone)
    local = zh.day(submission.submitted_at.astimezone(tz).date())
    reason = (submission.reason or "").rstrip("。.；; ")
    if submission.decision == "returned":
        return f"贵单位{local}提交的{what}已被退回。退回理由：{reason}。请补充完善后重新提交。"
    if submission.kind == "extension":
        text = f"贵单位{local}提交的延期申请已同意，截止日期调整为{zh.day(stored.due) if stored.due else '新的日期'}。"
    else:
        text = f"贵单位{local}提交的办结申请已审核通过，该事项已办结。"
    return text + (f"审核意见：{reason}。" if reason else "")


Scorecard = Callable[[Session, Program, Bundle], tuple[str, tuple[str, str, bytes] | None]]


@dataclass(frozen=True)
class Group:
    recipient: str
    send_date: date
    items: tuple[NotificationItem, ...]


def group_items(items: Sequence[NotificationItem], timezones: Mapping[int, ZoneInfo]) -> list[Group]:
    """One group per (recipient, local day of the send slot), in send order — by each group's first
    item's (send slot, recipient, id); the office's summary of what fell due before the start
    (``before_start``) is always an email of its own.

    ``items`` come in (send slot, id) order within each recipient, as ``enqueue`` reads them (by
    recipient, then slot and id): only the groups are sorted (sorting 170k items of a province's day
    by slot and recipient took longer than the rest).
    """
    groups: dict[tuple[str, date, bool], list[NotificationItem]] = {}
    days: dict[tuple[datetime, int], date] = {}  # most items of a run share a few send slots
    for item in items:
        slot = (item.send_at, item.program_id)
        day = days.get(slot)
        if day is None:
            day = days[slot] = local_day(item.send_at, timezones[item.program_id])
        group = (item.recipient, day, item.kind == NoticeKind.BEFORE_START)
        members = groups.get(group)
        if members is None:
            groups[group] = [item]
        else:
            members.append(item)
    ordered = sorted(groups.items(), key=lambda pair: (pair[1][0].send_at, pair[0][0], pair[1][0].id))
    return [Group(r, d, tuple(members)) for (r, d, _), members in ordered]


class DigestBuilder:
    """Turns stored items into ``notifications`` data, using the loaded definitions and units."""

    def __init__(self, session: Session, bundles: Mapping[str, Bundle], scorecard: Scorecard | None = None):
        self.session = session
        self.bundles = {b.definition.workflow.id: b for b in bundles.values()}  # (config may name a file)
        self.scorecard = scorecard
        self._programs: dict[int, Program] = {}
        self._phases: dict[tuple[int, str], PhaseRun] = {}
        self._obligations: dict[int, Obligation] = {}
        self._tasks: dict[str, dict] = {}
        self._contacts: dict[str, str | None] = {}
        self._rows: dict[tuple[str, str], dict[str, str]] = {}  # (workflow, register) → row id → title

    def program(self, program_id: int) -> Program:
        if program_id not in self._programs:
            self._programs[program_id] = self.session.get(Program, program_id)
        return self._programs[program_id]

    def bundle(self, program: Program) -> Bundle | None:
        return self.bundles.get(program.workflow)

    def _phase(self, program_id: int, phase: str | None) -> PhaseRun | None:
        if phase is None:
            return None
        key = (program_id, phase)
        if key not in self._phases:
            self._phases[key] = self.session.exec(
                select(PhaseRun).where(PhaseRun.program_id == program_id, PhaseRun.phase == phase)
            ).first()
        return self._phases[key]

    def _task(self, workflow: str, definition, task_id: str | None):
        if definition is None or task_id is None:
            return None
        if workflow not in self._tasks:
            self._tasks[workflow] = {t.id: t for t in definition.all_tasks}
        return self._tasks[workflow].get(task_id)

    def _contact(self, workflow: str, bundle: Bundle | None) -> str | None:
        """Whom to ask: the workflow's ``contact`` units with their addresses (computed once)."""
        if workflow not in self._contacts:
            contact = None
            if bundle and bundle.definition.workflow.contact:
                directory = bundle.units.directory
                contact = "；".join(
                    f"{directory.name(u)} {', '.join(directory.by_id[u].emails)}"
                    for u in directory.expand(bundle.definition.workflow.contact)
                )
            self._contacts[workflow] = contact
        return self._contacts[workflow]

    def occurrence_label(self, program: Program, bundle: Bundle | None, task, occurrence: str | None):
        """``(label, is_row)``: a register row's title (文号 and name), or the period of a date key."""
        if occurrence is None:
            return None, False
        anchor = task.anchor_register if task is not None else None
        if anchor is not None and bundle is not None:
            key = (program.workflow, anchor[0])
            if key not in self._rows:
                register = bundle.registers.get(anchor[0])
                self._rows[key] = {row.id: row.title for row in register.rows} if register else {}
            return self._rows[key].get(occurrence, occurrence), True
        rule = getattr(task, "rrule", None) or ""
        found = re.search(r"FREQ=([A-Z]+)", rule)
        return zh.period(occurrence, found.group(1) if found else None), False

    def unit_contact(self, bundle: Bundle | None, unit_id: str) -> str | None:
        unit = bundle.units.directory.by_id.get(unit_id) if bundle else None
        if unit is None:
            return None
        return zh.unit_contact(unit.contact, unit.phone, tuple(unit.emails))

    def recipient(self, unit_id: str, bundle: Bundle | None) -> Recipient:
        unit = bundle.units.directory.by_id.get(unit_id) if bundle else None
        if unit is None:
            return Recipient(unit_id, unit_id, ())
        return Recipient(unit.id, unit.name, tuple(unit.emails))

    def prefetch(self, items: Sequence[NotificationItem]) -> None:
        """Load the obligations behind ``items`` in bulk (they stay in the session's identity map)."""
        wanted = {i.obligation_id for i in items if i.obligation_id is not None}
        wanted.update(oid for i in items for oid, _ in (i.late or ()))
        ids = sorted(wanted - set(self._obligations))
        self._load_obligations(ids)

    def _load_obligations(self, ids: list[int]) -> None:
        table = Obligation.__table__
        columns = [table.c[n] for n in ("id", "title", "opens", "lead", "task", "due", "occurrence")]
        connection = self.session.connection()
        for chunk in chunks(ids):
            rows = connection.execute(select(*columns).where(among(table.c.id, chunk, connection.dialect)))
            self._obligations.update({row.id: row for row in rows.all()})

    def obligation(self, obligation_id: int | None):
        """The obligation behind an item (id, title, opens, lead), or None."""
        if obligation_id is None:
            return None
        if obligation_id not in self._obligations:
            self._load_obligations([obligation_id])
        return self._obligations.get(obligation_id)

    def addressee(self, group: Group) -> Recipient:
        return self.recipient(group.recipient, self.bundle(self.program(group.items[0].program_id)))

    def summary(self, group: Group, late: Callable[[Any], list | None] | None = None) -> Summary:
        """What the subject line needs, from the stored rows (a digest can hold 100k items): counts
        by kind, each late unit of an escalation once; programs and phases named once at the end.

        ``late``: an item's list of late units (default: the row's own ``late``); ``enqueue`` reads
        each list when it is needed — a province's office gets a million late units in one day."""
        late_of = late or _own_late
        counts: dict[str, int] = {}
        programs: set[int] = set()
        phases: dict[str, set[tuple[int, str | None]]] = {}
        seen: dict[str, set[int]] = {}
        for stored in group.items:
            kind = stored.kind
            if kind not in KINDS:
                raise ValueError(f"digest item {stored.key!r}: unknown kind {kind!r}")
            pairs = self._late_pairs(kind, late_of(stored), seen)
            if pairs is not None and not pairs:
                continue  # every late unit of it is listed already (another step of the same escalation)
            counts[kind] = counts.get(kind, 0) + (len(pairs) if pairs is not None else 1)
            programs.add(stored.program_id)
            if kind in PHASE_KINDS:
                phases.setdefault(kind, set()).add((stored.program_id, stored.phase))
        plans = frozenset((p.workflow, p.title) for p in map(self.program, programs))
        return Summary(
            counts, plans, {kind: frozenset(map(self._phase_name, where)) for kind, where in phases.items()}
        )

    def _phase_name(self, where: tuple[int, str | None]) -> str:
        run = self._phase(*where)
        return (run.name if run else None) or where[1] or "阶段"

    @staticmethod
    def _late_pairs(kind: str, late: list | None, seen: dict[str, set[int]]) -> list | None:
        """The late units of an escalation (or summary) item not yet listed in this digest (``seen``
        collects their obligation ids by kind): several steps of one task occurrence's escalation
        that reach one recipient together (catch-up, or a recipient holding both roles) list each
        late unit once. None for an item that lists no units."""
        if not late:
            return None
        listed = seen.setdefault(kind, set())
        fresh = []
        for oid, unit in late:  # an obligation id names its task occurrence too
            if oid not in listed:
                listed.add(oid)
                fresh.append((oid, unit))
        return fresh

    def digest(self, group: Group) -> Digest:
        seen: dict[str, set[int]] = {}
        items = []
        for stored in group.items:
            pairs = self._late_pairs(stored.kind, stored.late, seen)
            if pairs is None:
                items.append(self.item(stored))
            else:
                items.extend(self.item(stored, late=pair) for pair in pairs)
        return Digest(self.addressee(group), group.send_date, tuple(items))

    def items(self, stored: NotificationItem) -> list[DigestItem]:
        """The facts of one stored item: itself, or for an escalation one per late unit."""
        if not stored.late:
            return [self.item(stored)]
        return [self.item(stored, late=(oid, unit)) for oid, unit in stored.late]

    def item(self, stored: NotificationItem, *, late: tuple[int, str] | None = None) -> DigestItem:
        program = self.program(stored.program_id)
        bundle = self.bundle(program)
        directory = bundle.units.directory if bundle else None
        definition = bundle.definition if bundle else None
        task = self._task(program.workflow, definition, stored.task)
        run = self._phase(program.id, stored.phase)
        obligation = self.obligation(late[0] if late else stored.obligation_id)
        unit = late[1] if late else (stored.unit or stored.recipient)
        name = directory.name if directory else (lambda u: u)
        contact = self._contact(program.workflow, bundle)
        label, is_row = self.occurrence_label(program, bundle, task, stored.occurrence)
        summary = attachment = None
        if stored.kind == NoticeKind.SCORECARD and self.scorecard and bundle:
            summary, attachment = self.scorecard(self.session, program, bundle)
        elif stored.kind in SUBMISSION_KINDS:
            summary = submission_summary(self.session, stored)
        task_id, due, occurrence, since = stored.task, stored.due, stored.occurrence, None
        if stored.kind == NoticeKind.BEFORE_START and obligation is not None:  # one item lists many tasks
            task_id, due, occurrence = obligation.task, obligation.due, obligation.occurrence
            task = self._task(program.workflow, definition, task_id)
            since = notify_day(program)
        return DigestItem(
            key=stored.key,
            kind=stored.kind,
            workflow=program.workflow,
            workflow_title=program.title,
            phase=stored.phase,
            phase_name=run.name if run else None,
            task=task_id,
            task_title=obligation.title if obligation else (task.title if task else None),
            section=task.section if task else None,
            detail=task.detail if task else None,
            unit=unit,
            unit_name=name(unit),
            occurrence=occurrence,
            due=due,
            opens=obligation.opens if obligation else None,
            lead_names=tuple(name(u) for u in (obligation.lead if obligation else ())),
            deliverable=task.deliverable if task else None,
            contact=contact,
            ref=f"#{obligation.id}" if obligation else None,
            phase_start=run.start if run else None,
            phase_end=run.end if run else None,
            attachment=attachment,
            summary=summary,
            notify_from=since,
            occurrence_label=label,
            occurrence_is_row=is_row,
            unit_contact=self.unit_contact(bundle, unit) if late else None,
            unit_rank=directory.rank(unit) if directory else 0,
        )


def _own_late(stored) -> list | None:
    return stored.late
