"""A digest turned into what the templates show: ordered groups of rows of ready-made text.

Every decision about wording, order and urgency is made here, in plain Python, so the text and
HTML templates only lay the rows out and can never disagree with each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from notifications import zh
from notifications.labels import NOTICE_COUNTS, NOTICE_HEADINGS, PHASE_NOTICES
from notifications.model import DEADLINE_KINDS, PHASE_KINDS, Digest, DigestItem, NoticeKind

# Most urgent first: the order of the groups in the body and of the counts in the subject.
KIND_ORDER = (
    NoticeKind.OVERDUE,
    NoticeKind.ESCALATION,
    NoticeKind.DUE_TODAY,
    NoticeKind.REMINDER,
    NoticeKind.TASK_OPENED,
    NoticeKind.PHASE_STARTED,
    NoticeKind.PHASE_ENDING,
    NoticeKind.PHASE_CLOSED,
    NoticeKind.SCORECARD,
)

SOON_DAYS = 3  # a deadline this close (or closer) is shown amber
SUBJECT_MAX = 78


@dataclass(frozen=True)
class LateUnit:
    """One responsible unit that is late on an escalated obligation."""

    unit_name: str
    since: str  # 逾期自…起
    status: str  # 已逾期N天
    ref: str | None
    contact: str | None


@dataclass(frozen=True)
class Row:
    """One entry of a group: a task, a phase, an escalated obligation, or the scorecard."""

    tone: str  # "overdue" (red), "soon" (amber) or "normal"
    title: str
    section: str | None
    detail: str | None
    workflow_title: str | None  # set only when the digest spans several plans
    facts: tuple[tuple[str, str], ...]  # (label, value), in display order
    status: str | None  # 还有N天 / 今日到期 / 已逾期N天 / …
    ref: str | None
    late: tuple[LateUnit, ...] = ()
    summary: str | None = None


@dataclass(frozen=True)
class Group:
    kind: str
    heading: str
    rows: tuple[Row, ...]
    count: int  # items in the group (an escalation row may hold several)


@dataclass(frozen=True)
class DigestView:
    recipient_name: str
    send_date: str
    intro: str
    counts: str
    groups: tuple[Group, ...]
    reply_hint: bool  # some item carries a reference to quote in replies


@dataclass(frozen=True)
class Summary:
    """What a subject line says of a digest: facts by kind, the plans, the phases noticed."""

    counts: dict[str, int]  # kind → number of facts
    plans: frozenset[tuple[str, str]]  # (workflow id, title)
    phase_names: dict[str, frozenset[str]]  # phase notice kind → phase names


def summarize(items: Iterable[DigestItem]) -> Summary:
    counts: dict[str, int] = {}
    plans: set[tuple[str, str]] = set()
    phases: dict[str, set[str]] = {}
    for item in items:
        counts[item.kind] = counts.get(item.kind, 0) + 1
        plans.add((item.workflow, item.workflow_title))
        if item.kind in PHASE_NOTICES:
            phases.setdefault(item.kind, set()).add(item.phase_name or item.phase or "阶段")
    return Summary(counts, frozenset(plans), {k: frozenset(v) for k, v in phases.items()})


def subject(digest: Digest) -> str:
    """``【督办提醒】法治政府建设指标体系试点：3项逾期、2项今日到期``, at most 78 characters."""
    return subject_line(summarize(digest.items))


def subject_line(summary: Summary) -> str:
    """The subject of a digest from its summary (the dispatcher queues subjects this way, without
    building every item of a large digest)."""
    kinds = set(summary.counts)
    if "escalation" in kinds:
        prefix = "【督办催办】"
    elif kinds & DEADLINE_KINDS:
        prefix = "【督办提醒】"
    else:
        prefix = "【督办通知】"
    title = _title_of(summary.plans)
    parts = _count_parts(summary)
    for keep in range(len(parts), 0, -1):
        shown = parts[:keep] if keep == len(parts) else [*parts[: keep - 1], parts[keep - 1] + "等"]
        text = _join_subject(prefix, title, shown)
        if len(text) <= SUBJECT_MAX:
            return text
    shown = parts[:1] if len(parts) == 1 else [parts[0] + "等"]
    room = SUBJECT_MAX - len(_join_subject(prefix, "", shown)) - 1
    return _join_subject(prefix, title[: max(room, 0)] + "…", shown)


def build(digest: Digest) -> DigestView:
    """Group, order and word the items of a digest; deterministic for a given digest."""
    several_plans = len({item.workflow for item in digest.items}) > 1
    today = digest.send_date
    groups = []
    for kind in KIND_ORDER:
        items = sorted((i for i in digest.items if i.kind == kind), key=_order)
        if not items:
            continue
        if kind == "escalation":
            rows = _escalation_rows(items, today, several_plans)
        else:
            rows = tuple(_row(item, digest, several_plans) for item in items)
        groups.append(Group(kind=kind, heading=NOTICE_HEADINGS[kind], rows=rows, count=len(items)))
    title = _plan_title(digest.items)
    intro = f"以下是截至{zh.day_with_weekday(today)}需要贵单位关注的督办事项" + (
        "。" if several_plans else f"（{title}）。"
    )
    return DigestView(
        recipient_name=digest.recipient.name,
        send_date=zh.day_with_weekday(today),
        intro=intro,
        counts="、".join(_count_parts(summarize(digest.items))),
        groups=tuple(groups),
        reply_hint=any(item.ref for item in digest.items),
    )


def _plan_title(items: Iterable[DigestItem]) -> str:
    return _title_of({(i.workflow, i.workflow_title) for i in items})


def _title_of(plans: Iterable[tuple[str, str]]) -> str:
    titles = sorted(plans)
    if not titles:
        return "督办事项"
    return titles[0][1] + ("等" if len(titles) > 1 else "")


def _count_parts(summary: Summary) -> list[str]:
    parts = []
    for kind in KIND_ORDER:
        count = summary.counts.get(kind)
        if not count:
            continue
        if kind in NOTICE_COUNTS:
            parts.append(NOTICE_COUNTS[kind].format(n=count))
        elif kind in PHASE_NOTICES:
            names = sorted(summary.phase_names.get(kind, ()))
            name = names[0] if len(names) == 1 else f"{len(names)}个阶段"
            parts.append(PHASE_NOTICES[kind].format(name=name))
        else:
            parts.append("综合考评结果")
    return parts


def _join_subject(prefix: str, title: str, parts: list[str]) -> str:
    text = f"{prefix}{title}：{'、'.join(parts)}" if parts else f"{prefix}{title}"
    return " ".join(text.split())  # a header line: no line breaks from the data


def _order(item: DigestItem) -> tuple:
    return (
        item.due or item.phase_start or date.max,
        item.workflow,
        item.task or item.phase or "",
        item.occurrence or "",
        item.unit_name,
        item.key,
    )


def _tone(due: date | None, today: date) -> str:
    if due is None:
        return "normal"
    left = (due - today).days
    if left < 0:
        return "overdue"
    return "soon" if left <= SOON_DAYS else "normal"


def _row(item: DigestItem, digest: Digest, several_plans: bool) -> Row:
    plan = item.workflow_title if several_plans else None
    if item.kind in PHASE_KINDS:
        return _phase_row(item, digest.send_date, plan)
    if item.kind == "scorecard":
        facts = (("附件", item.attachment[0]),) if item.attachment else ()
        return Row(
            tone="normal",
            title=item.task_title or "综合考评",
            section=item.section,
            detail=item.detail,
            workflow_title=plan,
            facts=facts,
            status=None,
            ref=item.ref,
            summary=item.summary,
        )
    facts: list[tuple[str, str]] = []
    if item.unit != digest.recipient.unit_id:
        facts.append(("责任单位", item.unit_name))
    if item.occurrence:
        facts.append(("期次", item.occurrence))
    if item.kind == "task_opened" and item.opens:
        facts.append(("开始日期", zh.day_with_weekday(item.opens)))
    if item.due:
        facts.append(("截止日期", zh.day_with_weekday(item.due)))
    facts.extend(_task_facts(item))
    tone = "overdue" if item.kind == "overdue" else _tone(item.due, digest.send_date)
    return Row(
        tone=tone,
        title=item.task_title or item.task or "（未命名任务）",
        section=item.section,
        detail=item.detail,
        workflow_title=plan,
        facts=tuple(facts),
        status=zh.days_left(item.due, digest.send_date) if item.due else None,
        ref=item.ref,
    )


def _task_facts(item: DigestItem) -> list[tuple[str, str]]:
    facts = []
    if item.lead_names:
        facts.append(("牵头单位", zh.names(item.lead_names)))
    if item.deliverable:
        facts.append(("应提交", item.deliverable))
    if item.contact:
        facts.append(("联系", item.contact))
    return facts


def _phase_row(item: DigestItem, today: date, plan: str | None) -> Row:
    facts = []
    if item.phase_start and item.phase_end:
        span = f"{zh.day_with_weekday(item.phase_start)} 至 {zh.day_with_weekday(item.phase_end)}"
        facts.append(("起止日期", span))
    status = None
    if item.kind == "phase_started":
        status = "已开始"
    elif item.kind == "phase_ending" and item.phase_end:
        left = (item.phase_end - today).days
        status = f"还有{left}天结束" if left > 0 else "今日结束"
    elif item.kind == "phase_closed":
        status = "已结束"
    return Row(
        tone="normal",
        title=item.phase_name or item.phase or "阶段",
        section=None,
        detail=item.detail,
        workflow_title=plan,
        facts=tuple(facts),
        status=status,
        ref=item.ref,
    )


def _escalation_rows(items: list[DigestItem], today: date, several_plans: bool) -> tuple[Row, ...]:
    """One row per escalated obligation group (same plan, task, occurrence and due date)."""
    by_task: dict[tuple, list[DigestItem]] = {}
    for item in items:
        by_task.setdefault((item.workflow, item.task, item.occurrence, item.due), []).append(item)
    rows = []
    for group in by_task.values():
        first = group[0]
        late = tuple(
            LateUnit(
                unit_name=i.unit_name,
                since=f"逾期自{zh.day(i.due + timedelta(days=1))}起" if i.due else "已逾期",
                status=zh.days_left(i.due, today) if i.due else "",
                ref=i.ref,
                contact=i.contact,
            )
            for i in sorted(group, key=lambda i: (i.unit_name, i.key))
        )
        facts: list[tuple[str, str]] = []
        if first.occurrence:
            facts.append(("期次", first.occurrence))
        if first.due:
            facts.append(("截止日期", zh.day_with_weekday(first.due)))
        if first.lead_names:
            facts.append(("牵头单位", zh.names(first.lead_names)))
        if first.deliverable:
            facts.append(("应提交", first.deliverable))
        rows.append(
            Row(
                tone="overdue",
                title=first.task_title or first.task or "（未命名任务）",
                section=first.section,
                detail=first.detail,
                workflow_title=first.workflow_title if several_plans else None,
                facts=tuple(facts),
                status=f"{len(late)}个单位逾期",
                ref=None,
                late=late,
            )
        )
    return tuple(rows)
