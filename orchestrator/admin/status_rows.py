"""One row of ``duban import-status``: the obligation it names and what it asks, checked.

What is wrong with a row is a ``RowProblem``: the column it is about (a key of
``status_file.COLUMNS``, or None) and a zh-CN message for an office clerk, who filled in a
spreadsheet and never typed a command (``列「单位」``, never ``--unit``); the import puts the
column's name as the file writes it in front.

A row that says what is already recorded is ``Asked.already``: skipped and counted, never an error,
never a second audit event — so an office may fill the sheet in batches and import it each time:

- 已办结 for an obligation already done, on the day the row gives or earlier (the record says at
  least as much as the row). A row giving an *earlier* day than the one recorded disagrees with
  the record: refused (reopen the obligation first if the sheet is right), never silently kept;
- 已免除 for an obligation already waived (whatever the reason's words).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, select

from notifications import zh
from orchestrator.admin.operations import MAX_TEXT, earliest_done_on
from orchestrator.admin.refs import row_id, unit_id
from orchestrator.admin.status_dates import BadDay, parse_day
from orchestrator.engine.window import local_day
from orchestrator.store.models import Obligation, Program
from orchestrator.store.states import OPEN_STATES, ObligationState
from workflows.errors import DubanError, control_character

DONE, WAIVED = ObligationState.DONE, ObligationState.WAIVED
STATES = {
    "done": DONE,
    "已办结": DONE,
    "办结": DONE,
    "已完成": DONE,
    "完成": DONE,
    "waived": WAIVED,
    "已免除": WAIVED,
    "免除": WAIVED,
    "免办": WAIVED,
}
LISTED = 8  # candidates named in one message


class RowProblem(DubanError):
    """What is wrong with one row: ``key`` is the column it is about (None: the row as a whole)."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


@dataclass(frozen=True)
class Asked:
    """What one row asks: ``state`` for ``obligation`` (with ``done_on`` for done); ``already``: it
    is in that state already, nothing to do."""

    obligation: Obligation
    state: str
    done_on: date | None
    already: bool = False


def check_row(
    session: Session, values: Mapping[str, str], now: datetime, names: Mapping[str, str]
) -> Asked | None:
    """What the row asks (None: its state is empty, it asks nothing); ``RowProblem`` if it cannot be done."""
    raw_state = values.get("state", "")
    if not raw_state:
        return None
    state = STATES.get(raw_state.strip().lower())
    if state is None:
        raise RowProblem(
            "state", f"「{raw_state[:40]}」不是可选的状态：请填写「已办结」或「已免除」（情况不明的留空）"
        )
    obligation = find_obligation(session, values, names)
    program = session.get(Program, obligation.program_id)
    today = local_day(now, ZoneInfo(program.timezone))
    done_on = None
    if state == DONE:
        text = values.get("done_on", "")
        if text:
            done_on = _day(text, today)
        if obligation.state == DONE:
            return _already_done(obligation, done_on, program)
        _refuse(obligation, state)
        if done_on is None:
            raise RowProblem("done_on", "已办结的事项须填写完成日期，如 2026-06-05 或 2026年6月5日")
        _check_done_on(session, obligation, done_on, today)
        _check_text(values.get("evidence", ""), "evidence", required=False)
    else:
        if obligation.state == WAIVED:
            return Asked(obligation, state, None, already=True)
        _refuse(obligation, state)
        if values.get("done_on"):
            raise RowProblem("done_on", "免除的事项没有完成日期：请留空")
        _check_text(values.get("reason", ""), "reason", required=True)
    return Asked(obligation, state, done_on)


# -- which obligation ----------------------------------------------------------------------------


def find_obligation(session: Session, values: Mapping[str, str], names: Mapping[str, str]) -> Obligation:
    """The obligation a row names: by 事项编号 (its id, or its key), else by 任务编号 with 责任单位
    (and 期次 for a recurring duty)."""
    ref = values.get("ref", "")
    if ref:
        return _by_ref(session, ref)
    task, unit = values.get("task", ""), values.get("unit", "")
    if not task:
        raise RowProblem("ref", "未填写：请填写事项编号（或任务编号与责任单位）")
    if not unit:
        raise RowProblem("unit", f"未填写：任务 {task[:40]} 须同时填写责任单位（单位编号或单位全称）")
    return _by_task(session, task, unit, values.get("occurrence", ""), names)


def _by_ref(session: Session, ref: str) -> Obligation:
    shown = ref[:40]
    if "/" in ref:
        found = session.exec(select(Obligation).where(Obligation.key == ref)).first()
        if found is None:
            raise RowProblem("ref", f"没有键为「{shown}」的事项")
        return found
    number = row_id(ref)
    if number is None:
        if ref.lstrip("#").isdigit():
            raise RowProblem("ref", f"没有编号为 #{ref.lstrip('#')[:40]} 的事项")
        raise RowProblem("ref", f"「{shown}」不是事项编号：请填写数字编号，如 12 或 #12")
    found = session.get(Obligation, number)
    if found is None:
        raise RowProblem("ref", f"没有编号为 #{number} 的事项")
    return found


def _by_task(
    session: Session, task: str, unit_text: str, occurrence: str, names: Mapping[str, str]
) -> Obligation:
    candidates = list(session.exec(select(Obligation).where(func.upper(Obligation.task) == task.upper())))
    if not candidates:
        raise RowProblem("task", f"没有任务「{task[:40]}」的事项")
    unit = unit_id(unit_text, names)
    mine = [o for o in candidates if o.unit == unit]
    if not mine:
        known = unit in names or session.exec(select(Obligation.id).where(Obligation.unit == unit)).first()
        if not known:
            raise RowProblem("unit", f"没有单位「{unit_text[:40]}」：请填写单位编号或单位全称")
        units = [names.get(u, u) for u in sorted({o.unit for o in candidates})]
        raise RowProblem(
            "unit",
            f"任务 {candidates[0].task} 没有「{unit_text[:40]}」的事项（该任务的责任单位：{_listed(units)}）",
        )
    unit_name = names.get(unit, unit)
    if occurrence:
        wanted = [o for o in mine if (o.occurrence or "-") == occurrence]
        if not wanted:
            keys = sorted({o.occurrence or "-" for o in mine})
            raise RowProblem(
                "occurrence",
                f"任务 {mine[0].task} 在{unit_name}没有期次「{occurrence[:40]}」（已有期次：{_listed(keys)}）",
            )
        mine = wanted
    if len(mine) > 1:
        mine.sort(key=lambda o: (o.due, o.occurrence or "", o.id))
        ids = _listed([f"#{o.id}" for o in mine])
        if len({o.occurrence for o in mine}) > 1:
            keys = _listed([o.occurrence or "-" for o in mine])
            raise RowProblem(
                "occurrence",
                f"任务 {mine[0].task} 在{unit_name}有 {len(mine)} 个事项：请填写期次（{keys}），或填写事项编号（{ids}）",
            )
        raise RowProblem(
            "ref",
            f"任务 {mine[0].task} 在{unit_name}有 {len(mine)} 个事项（不同年度）：请填写事项编号（{ids}）",
        )
    return mine[0]


def _listed(values: Sequence[str]) -> str:
    shown = "、".join(values[:LISTED])
    return shown + (f" 等 {len(values)} 个" if len(values) > LISTED else "")


# -- what it asks --------------------------------------------------------------------------------


def _already_done(obligation: Obligation, done_on: date | None, program: Program) -> Asked:
    recorded = (
        obligation.done_at.astimezone(ZoneInfo(program.timezone)).date() if obligation.done_at else None
    )
    if done_on is not None and recorded is not None and done_on < recorded:
        raise RowProblem(
            "done_on",
            f"事项 #{obligation.id} 已记录为{zh.day(recorded)}办结，晚于表中的{zh.day(done_on)}："
            f"如表中日期属实，请先撤销原记录（duban reopen {obligation.id}）再导入",
        )
    return Asked(obligation, DONE, done_on, already=True)


_STATE_WORDS = {DONE: "已办结", WAIVED: "已免除"}


def _refuse(obligation: Obligation, state: str) -> None:
    """``RowProblem`` unless the obligation is still owed (pending, open or overdue)."""
    current = obligation.state
    if current in OPEN_STATES:
        return
    name = f"事项 #{obligation.id} "
    if current == ObligationState.SUBMITTED:
        raise RowProblem("state", f"{name}有单位提交的办结申请待审核：请先在审核页面通过或退回")
    if current == ObligationState.CANCELLED:
        raise RowProblem("state", f"{name}已取消（已不在方案中），不能再记录")
    raise RowProblem(
        "state",
        f"{name}已是「{_STATE_WORDS.get(current, current)}」，不能再记为「{_STATE_WORDS[state]}」："
        f"如需更改，请先撤销原记录（duban reopen {obligation.id}）",
    )


def _day(text: str, today: date) -> date:
    try:
        return parse_day(text, today)
    except BadDay as exc:
        raise RowProblem("done_on", str(exc)) from None


def _check_done_on(session: Session, obligation: Obligation, day: date, today: date) -> None:
    if day > today:
        raise RowProblem("done_on", f"{zh.day(day)}还没有到（今天是{zh.day(today)}）")
    earliest = earliest_done_on(session, obligation)
    if day < earliest:
        raise RowProblem(
            "done_on",
            f"{zh.day(day)}远早于事项 #{obligation.id} 的开始日期（{zh.day(obligation.opens)}）："
            f"请填写{zh.day(earliest)}以后的日期",
        )


def _check_text(text: str, key: str, *, required: bool) -> None:
    if required and not text.strip():
        raise RowProblem(key, "免除须填写理由（如“本单位无此项职能”）")
    if len(text) > MAX_TEXT:
        raise RowProblem(key, f"内容过长（{len(text):,} 字，最多 {MAX_TEXT:,} 字）")
    bad = control_character(text)
    if bad is not None:
        what = "换行" if bad in "\r\n\u2028\u2029" else f"控制字符 {bad!a}"
        raise RowProblem(key, f"含有{what}：请写成一行文字")
