"""``duban status``'s word on the units file: the units that owe nothing in any running program.

The same check as ``duban validate`` and the daemon's start (``workflows.roles.check_units``), on
the plans of the running programs with the configured units file, worded for the office.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.service.config import Settings
from orchestrator.service.runtime import check_configured_units, program_bundle
from orchestrator.store.models import Program
from workflows.catalog import Bundle
from workflows.errors import DubanError


def idle_unit_warnings(settings: Settings, programs: Sequence[Program]) -> list[str]:
    """One line per unit of the units file that owes nothing and is sent nothing in any of
    ``programs``; one more when the units file does not fit those plans (``duban validate`` says how).
    A program whose files do not load is left out (the calendar warning names it)."""
    bundles: dict[str, Bundle] = {}
    for program in programs:
        try:
            bundles.setdefault(
                program.workflow, program_bundle(settings, program, on_assumed=lambda *_: None)
            )
        except DubanError:
            continue
    if not bundles:
        return []
    findings = check_configured_units(bundles)
    directory = next(iter(bundles.values())).units.directory
    running = "、".join(sorted(bundles))
    found = [
        f"单位“{directory.name(unit)}”（{unit}）在运行中的方案（{running}）里没有任何督办事项，也不会收到通知："
        f"请检查 {problem.file}:{problem.line} 的 roles"
        for unit, problem in sorted(findings.idle.items(), key=lambda kv: directory.rank(kv[0]))
    ]
    if findings.problems:
        found.append(
            f"单位文件与运行中的方案不符（{len(findings.problems)} 个问题），请运行 duban validate 查看"
        )
    return found
