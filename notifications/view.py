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
    NoticeKind.REVIEW_PENDING,
    NoticeKind.SUBMISSION_RETURNED,
    NoticeKind.BEFORE_START,
    NoticeKind.OVERDUE,
    NoticeKind.ESCALATION,
    NoticeKind.DUE_TODAY,
    NoticeKind.REMINDER,
    NoticeKind.TASK_OPENED,
    NoticeKind.PHASE_STARTED,
    NoticeKind.PHASE_ENDING,
    NoticeKind.PHASE_CLOSED,
    NoticeKind.SCORECARD,
    NoticeKind.SUBMISSION_APPROVED,
)

DECISION_KINDS = frozenset(
    {NoticeKind.SUBMISSION_APPROVED, NoticeKind.SUBMISSION_RETURNED, NoticeKind.REVIEW_PENDING}
)

SOON_DAYS = 3  # a deadline this close (or closer) is shown amber
LISTED_IN_FULL = 30  # a summary (or a digest) lists at most this many items in full; the rest are counted
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
class Remainder:
    """Items of one kind and task not listed in full (past ``LISTED_IN_FULL``)."""

    heading: str
    task: str
    title: str
    count: int


@dataclass(frozen=True)
class DigestView:
    recipient_name: str
    send_date: str
    intro: str
    counts: str
    groups: tuple[Group, ...]
    reply_hint: bool  # some item carries a reference to quote in replies
    link: str | None = None  # the recipient's personal page (签收、反馈、办结申请、延期申请)
    office_url: str | None = None  # the office's review page, when the digest says 待审核
    rest: int = 0  # items not listed in full: counted in ``remainder``, all in the attachment
    remainder: tuple[Remainder, ...] = ()
    attachment: str | None = None  # the attached list's file name, when some are not listed in full


DIGEST_SHEET = "督办事项清单.xlsx"


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


def by_urgency(items: Iterable[DigestItem]) -> list[DigestItem]:
    """The items most urgent first: by kind (``KIND_ORDER``), then due date, plan, task, unit."""
    rank = {kind: n for n, kind in enumerate(KIND_ORDER)}
    return sorted(items, key=lambda i: (rank.get(i.kind, len(rank)), *_order(i)))


def listed_in_full(digest: Digest) -> tuple[list[DigestItem], list[DigestItem]]:
    """``(shown, rest)``: the ``LISTED_IN_FULL`` most urgent items and the others."""
    ordered = by_urgency(digest.items)
    return ordered[:LISTED_IN_FULL], ordered[LISTED_IN_FULL:]


def _remainder(rest: list[DigestItem]) -> tuple[Remainder, ...]:
    counts: dict[tuple[str, str, str], int] = {}
    for item in rest:
        key = (item.kind, item.task or item.phase or "", item.task_title or item.phase_name or "")
        counts[key] = counts.get(key, 0) + 1
    rank = {kind: n for n, kind in enumerate(KIND_ORDER)}
    return tuple(
        Remainder(NOTICE_HEADINGS.get(kind, kind), task, title, n)
        for (kind, task, title), n in sorted(
            counts.items(), key=lambda kv: (rank.get(kv[0][0], 99), kv[0][1])
        )
    )


def build(digest: Digest, office_url: str | None = None) -> DigestView:
    """Group, order and word the items of a digest; deterministic for a given digest.

    At most ``LISTED_IN_FULL`` items are shown in full, the most urgent; the rest are counted by kind
    and task (``remainder``) and the renderer attaches the whole list.
    """
    several_plans = len({item.workflow for item in digest.items}) > 1
    today = digest.send_date
    shown, rest = listed_in_full(digest)
    totals: dict[str, int] = {}
    late_units: dict[tuple, set] = {}
    for item in digest.items:
        totals[item.kind] = totals.get(item.kind, 0) + 1
        if item.kind == NoticeKind.ESCALATION:
            late_units.setdefault(_escalated(item), set()).add((item.unit, item.ref))
    groups = []
    for kind in KIND_ORDER:
        items = sorted((i for i in shown if i.kind == kind), key=_order)
        if not items:
            continue
        if kind == "escalation":
            rows = _escalation_rows(items, today, several_plans, {k: len(v) for k, v in late_units.items()})
        else:
            rows = tuple(_row(item, digest, several_plans) for item in items)
        groups.append(Group(kind=kind, heading=NOTICE_HEADINGS[kind], rows=rows, count=totals[kind]))
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
        link=digest.link,
        office_url=office_url if any(i.kind == "review_pending" for i in digest.items) else None,
        rest=len(rest),
        remainder=_remainder(rest),
        attachment=DIGEST_SHEET if rest else None,
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
    if item.kind in DECISION_KINDS:
        return Row(
            tone="overdue" if item.kind == "submission_returned" else "normal",
            title="待审核事项"
            if item.kind == "review_pending"
            else (item.task_title or item.task or "督办事项"),
            section=None,
            detail=None,
            workflow_title=plan,
            facts=(("截止日期", zh.day_with_weekday(item.due)),) if item.due else (),
            status=None,
            ref=item.ref,
            summary=item.summary,
        )
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


def _late_count(listed: int, total: int) -> str:
    if total > listed:
        return f"{total}个单位逾期，此处列出{listed}个，其余见附件"
    return f"{total}个单位逾期"


def _escalated(item: DigestItem) -> tuple:
    """The task occurrence an escalation item is about (plan, task, occurrence, due date)."""
    return (item.workflow, item.task, item.occurrence, item.due)


def _escalation_rows(
    items: list[DigestItem], today: date, several_plans: bool, totals: dict[tuple, int] | None = None
) -> tuple[Row, ...]:
    """One row per escalated obligation group (same plan, task, occurrence and due date); ``totals``:
    how many units are late on each in the whole digest (some may not be listed in full)."""
    by_task: dict[tuple, list[DigestItem]] = {}
    for item in items:
        by_task.setdefault(_escalated(item), []).append(item)
    rows = []
    for task_occurrence, group in by_task.items():
        first = group[0]
        once: dict[tuple, DigestItem] = {}  # several steps of one escalation: each late unit once
        for item in group:
            once.setdefault((item.unit, item.ref), item)
        group = list(once.values())
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
                status=_late_count(len(late), (totals or {}).get(task_occurrence, len(late))),
                ref=None,
                late=late,
            )
        )
    return tuple(rows)


# -- the office's summary of what fell due before duban notified anyone -------------------------


@dataclass(frozen=True)
class TaskCount:
    task: str
    title: str
    count: int


@dataclass(frozen=True)
class BeforeStartView:
    recipient_name: str
    send_date: str
    title: str  # the plan's title
    notify_from: str  # 2026年12月2日
    count: int
    intro: str
    by_task: tuple[TaskCount, ...]  # most first
    rows: tuple[LateUnit, ...]  # the first LISTED_IN_FULL, longest overdue first
    row_titles: tuple[str, ...]  # the task title of each row
    rest: int  # how many more are in the attachment only
    attachment: str  # the attached list's file name


BEFORE_START_SHEET = "启用前已到期事项.xlsx"


def is_before_start(digest: Digest) -> bool:
    """A digest that is the office's before-start summary (it is always an email of its own)."""
    return bool(digest.items) and all(item.kind == NoticeKind.BEFORE_START for item in digest.items)


def before_start_items(digest: Digest) -> list[DigestItem]:
    """The summary's obligations, most overdue first (then task, unit)."""
    return sorted(digest.items, key=lambda i: (i.due or date.max, i.task or "", i.unit_name, i.key))


def build_before_start(digest: Digest) -> BeforeStartView:
    items = before_start_items(digest)
    today = digest.send_date
    start = next((i.notify_from for i in items if i.notify_from), today)
    counts: dict[tuple[str, str], int] = {}
    for item in items:
        key = (item.task or "", item.task_title or item.task or "")
        counts[key] = counts.get(key, 0) + 1
    by_task = tuple(
        TaskCount(task, title, n)
        for (task, title), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    shown = items[:LISTED_IN_FULL]
    rows = tuple(
        LateUnit(
            unit_name=i.unit_name,
            since=f"截止{zh.day(i.due)}" if i.due else "",
            status=zh.days_left(i.due, today) if i.due else "",
            ref=i.ref,
            contact=None,
        )
        for i in shown
    )
    title = _plan_title(items)
    intro = (
        f"督办系统自{zh.day(start)}起对“{title}”向各责任单位发送通知。在此之前已到截止日期、"
        f"尚未记录办结的事项共{len(items)}项：系统已按实际日期记为逾期，但未向责任单位发送这些事项的"
        "提醒、逾期通知或催办。请核实各事项的实际办理情况。"
    )
    return BeforeStartView(
        recipient_name=digest.recipient.name,
        send_date=zh.day_with_weekday(today),
        title=title,
        notify_from=zh.day(start),
        count=len(items),
        intro=intro,
        by_task=by_task,
        rows=rows,
        row_titles=tuple(i.task_title or i.task or "" for i in shown),
        rest=max(len(items) - len(shown), 0),
        attachment=BEFORE_START_SHEET,
    )
