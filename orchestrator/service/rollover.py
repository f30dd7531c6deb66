"""A ``year = "current"`` program rolls over on 1 January: ``duban status`` says so in December.

``[[programs]] year = "current"`` means "the plan for this year": on 1 January the daemon starts
the next year's program, and every entry of the plan that is not recurring — a task or duty dated
by its phase or by one ``due`` day, neither ``rrule`` nor an anchor — is owed again by every unit
it names, a year later. For a plan carried out once (a pilot) that repeats its one-off steps (the
mobilization meeting, the implementation plans, the lists of staff); for a yearly plan it is what
was wanted. duban cannot tell which from the plan, so in the last month of the year it says what
will happen, what it repeats, and how to stop it. Nothing here is specific to one plan.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from orchestrator.engine.window import local_day
from orchestrator.service.config import Settings
from workflows.catalog import definition_folders, find_definition
from workflows.errors import DubanError
from workflows.loader import load_definition, read_toml
from workflows.schema import DEFAULT_TIMEZONE, Definition, Task

WARN_DAYS = 31
"""How long before 1 January the warning shows (December)."""


def rollover_warnings(settings: Settings, now: datetime) -> list[str]:
    """One line per ``year = "current"`` program whose year ends within ``WARN_DAYS`` of ``now``
    (the plan's local date). A plan that does not load is left out (``duban validate`` reports it)."""
    found = []
    for entry in settings.programs:
        if entry.year != "current":
            continue
        try:
            path = find_definition(entry.workflow, definition_folders(settings.definitions.paths))
            zone = read_toml(path)[0].get("workflow", {}).get("timezone", DEFAULT_TIMEZONE)
            today = local_day(now, ZoneInfo(zone))
            if (date(today.year + 1, 1, 1) - today).days > WARN_DAYS:
                continue  # (the whole plan is loaded only in December: `status` stays fast)
            definition = load_definition(path).definition
        except (DubanError, ValueError, KeyError, TypeError, AttributeError):
            continue
        found.append(rollover_line(definition, today.year))
    return found


def one_off(definition: Definition) -> list[Task]:
    """The plan's entries dated once in its year (by their phase or a ``due`` day): neither recurring
    (``rrule``) nor anchored to a register's dates. A new program year owes each of them again."""
    return [t for t in definition.all_tasks if t.rrule is None and t.anchor is None]


def rollover_line(definition: Definition, year: int) -> str:
    """The warning for ``definition`` started as ``year = "current"`` in ``year``."""
    workflow = definition.workflow
    entries = one_off(definition)
    duties = [t.id for t in entries if t.kind == "duty"]
    tasks = [t.id for t in entries if t.kind == "task"]
    listed = "，".join(
        part
        for part in (
            f"工作 {id_ranges(duties)}（{len(duties)} 项）" if duties else "",
            f"任务 {id_ranges(tasks)}（{len(tasks)} 项）" if tasks else "",
        )
        if part
    )
    repeats = (
        f"方案中只办理一次的事项（按阶段或固定日期，未规定重复）将在 {year + 1} 年再次下发给各责任单位：{listed}"
        if listed
        else "方案中的事项都有重复规则或按登记表的日期下发，没有只办理一次的事项"
    )
    return (
        f'方案「{workflow.title}」（{workflow.id}）在 config.toml 的 [[programs]] 中为 year = "current"：'
        f"{year + 1} 年 1 月 1 日起，守护进程将启动 {year + 1} 年度，{repeats}；"
        f"如该方案只执行 {year} 年度，请在此之前把该项的 year 改为 {year} 并重新加载（SIGHUP）"
    )


_NUMBERED = re.compile(r"(.*?)(\d+)")


def id_ranges(ids: Iterable[str]) -> str:
    """``D01, D02, D03, D12, D13`` → ``D01—D03、D12—D13``: runs of one prefix and consecutive numbers."""
    runs: list[list[str]] = []
    previous: tuple[str, int, int] | None = None
    for text in ids:
        found = _NUMBERED.fullmatch(text)
        key = (found.group(1), int(found.group(2)), len(found.group(2))) if found else None
        if (
            key is not None
            and previous is not None
            and runs
            and key[0] == previous[0]
            and key[2] == previous[2]
            and key[1] == previous[1] + 1
        ):
            runs[-1].append(text)
        else:
            runs.append([text])
        previous = key
    return "、".join(run[0] if len(run) == 1 else f"{run[0]}—{run[-1]}" for run in runs)
