"""A digest turned into what the templates show: ordered groups of rows of ready-made text.

Every decision about wording, order and urgency is made here, in plain Python, so the text and
HTML templates only lay the rows out and can never disagree with each other. The rows' shapes are
in rows.py, the escalation rows in escalations.py, the before-start summary in before_start.py;
their names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from notifications import zh
from notifications.before_start import (
    BEFORE_START_SHEET,
    BeforeStartView,
    TaskCount,
    before_start_items,
    build_before_start,
    is_before_start,
)
from notifications.escalations import _escalated, _escalation_rows
from notifications.labels import (
    NOTICE_COUNTS,
    NOTICE_HEADINGS,
    NOTICE_SENTENCES,
    PHASE_NOTICES,
    REVIEW_PENDING_SENTENCE,
)
from notifications.model import DEADLINE_KINDS, PHASE_KINDS, Digest, DigestItem, NoticeKind
from notifications.rows import (
    LISTED_IN_FULL,
    DigestView,
    Group,
    LateUnit,
    Remainder,
    Row,
    _occurrence_fact,
    _plan_title,
    _title_of,
)

__all__ = [
    "BEFORE_START_SHEET",
    "DECISION_KINDS",
    "DIGEST_SHEET",
    "KIND_ORDER",
    "LISTED_IN_FULL",
    "SOON_DAYS",
    "SUBJECT_MAX",
    "BeforeStartView",
    "DigestView",
    "Group",
    "LateUnit",
    "Remainder",
    "Row",
    "Summary",
    "TaskCount",
    "before_start_items",
    "build",
    "build_before_start",
    "by_urgency",
    "count_sentence",
    "is_before_start",
    "listed_in_full",
    "report_line",
    "subject",
    "subject_line",
    "summarize",
]

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
SUBJECT_MAX = 78


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


def report_line(link: str | None, office: str | None = None) -> str:
    """The one line of every digest on how to report completion."""
    if link:
        return "事项办结后，请通过本单位督办事项页面（链接见本邮件）提交办结申请并上传佐证材料。"
    who = office or "督办办公室"
    return f"事项办结后，请直接回复本邮件，注明事项编号并附完成依据（文号或材料），由{who}登记办结。"


def build(digest: Digest, office_url: str | None = None, *, signature=None) -> DigestView:
    """Group, order and word the items of a digest; deterministic for a given digest.

    At most ``LISTED_IN_FULL`` items are shown in full, the most urgent; the rest are counted by kind
    and task (``remainder``) and the renderer attaches the whole list. ``digest.link``: the unit's
    own page (None until the portal is configured: the digest then says how the office records
    completion); ``signature``: the office's ``Signature``.
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
    source = "" if several_plans else f"根据《{title}》工作安排，"
    intro = f"{source}现将截至{zh.day_with_weekday(today)}贵单位的督办事项通知如下。"
    return DigestView(
        recipient_name=digest.recipient.name,
        send_date=zh.day_with_weekday(today),
        intro=intro,
        counts=_join_counts(_count_parts(summarize(digest.items))),
        count_sentence=count_sentence(summarize(digest.items)),
        groups=tuple(groups),
        reply_hint=any(item.ref for item in digest.items),
        link=digest.link,
        office_url=office_url if any(i.kind == "review_pending" for i in digest.items) else None,
        rest=len(rest),
        remainder=_remainder(rest),
        attachment=DIGEST_SHEET if rest else None,
        report_line=report_line(digest.link, signature.name if signature else None),
        signature=signature.lines() if signature else (),
    )


def count_sentence(summary: Summary) -> str:
    """``本期共有逾期事项2项、新开始的任务28项；「建章立制、组织实施阶段」开始。`` — or ``""`` when
    the digest holds nothing to count (the template then leaves the line out: never a lone 。)."""
    counted = [
        NOTICE_SENTENCES[kind].format(n=summary.counts[kind])
        for kind in KIND_ORDER
        if kind in NOTICE_SENTENCES and summary.counts.get(kind)
    ]
    pending = NOTICE_COUNTS[NoticeKind.REVIEW_PENDING]
    notices = [
        "随附本年度综合考评结果" if p == "综合考评结果" else REVIEW_PENDING_SENTENCE if p == pending else p
        for p in _count_parts(summary)
        if not p[0].isdigit()
    ]
    sentence = "本期共有" + "、".join(counted) if counted else ""
    parts = [p for p in (sentence, *notices) if p]
    if parts and not sentence:
        parts[0] = "本期" + parts[0] if parts[0] == REVIEW_PENDING_SENTENCE else parts[0]
    return "；".join(parts) + "。" if parts else ""


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


def _join_counts(parts: list[str]) -> str:
    """Counts joined with 、 (``2项逾期、1项催办``); a phase notice (its name may hold a 、) after ，."""
    joined = ""
    for part in parts:
        sep = "、" if joined and part[0].isdigit() and joined[-1] != "」" else "，"
        joined = f"{joined}{sep}{part}" if joined else part
    return joined


def _join_subject(prefix: str, title: str, parts: list[str]) -> str:
    joined = _join_counts(parts)
    text = f"{prefix}{title}：{joined}" if parts else f"{prefix}{title}"
    return " ".join(text.split())  # a header line: no line breaks from the data


def _order(item: DigestItem) -> tuple:
    return (
        item.due or item.phase_start or date.max,
        item.workflow,
        item.task or item.phase or "",
        item.occurrence or "",
        item.unit_rank,
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
        facts.append(_occurrence_fact(item))
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
