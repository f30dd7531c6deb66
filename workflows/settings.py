"""A plan's settings: dates the plan fixes by default and a deployment may set for itself.

A definition declares each setting once, with its default, and a task takes its due date from it::

    [settings.department_report_due]
    name = "各部门报送年度报告的截止日期（县政府确定）"
    value = "02-15"

    [[duties]]
    due = "setting:department_report_due"

A deployment sets its own value in config.toml, beside the program it runs (the plan file stays as
shipped)::

    [[programs]]
    workflow = "rule-of-law-annual-report"
    settings = { department_report_due = "02-10" }

``resolve_settings`` runs on the raw TOML data before the schema sees it: every ``"setting:NAME"``
becomes the setting's value (the deployment's, else the default), and ``[settings]`` keeps the values
in force. A reference to an undeclared setting is a problem at its own line; a deployment value for
a setting the plan does not declare, or one that is not a date, is a problem at the config line
that gives it (``SettingValues.path``/``line``). Settings are month-days (``"MM-DD"``), the one
thing plans have needed a county to choose.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.errors import Problem
from workflows.monthday import parse_month_day
from workflows.refs import TASK_TABLES, did_you_mean, entries

PREFIX = "setting:"
SETTABLE = ("due",)
"""The task keys that may name a setting."""
_PLACEHOLDER = "01-01"  # stands in for a broken reference: the file has a problem and is not used


@dataclass(frozen=True)
class SettingValues:
    """A deployment's values for one plan's settings, and where they were given (for its problems)."""

    values: Mapping[str, str] = field(default_factory=dict)
    path: str = "config.toml"
    line: int = 1
    where: str = "settings"  # the key path shown in a problem, e.g. "programs[1].settings"

    def digest(self) -> str:
        return json.dumps(dict(sorted(self.values.items())), ensure_ascii=False)


def _declared(data: Mapping[str, Any]) -> dict[str, Any]:
    settings = data.get("settings")
    return dict(settings) if isinstance(settings, dict) else {}


def resolve_settings(
    data: Mapping[str, Any], given: SettingValues | None, at
) -> tuple[dict[str, Any], list[Problem]]:
    """``data`` with every ``"setting:NAME"`` replaced by its value in force; and the deployment's
    problems (located at ``given``). ``at(loc, message)`` reports a problem of the definition itself."""
    declared = _declared(data)
    problems: list[Problem] = []
    chosen: dict[str, str] = {}
    for name, value in (given.values if given else {}).items():
        where = f"{given.where}.{name}"
        if name not in declared:
            known = ", ".join(declared) or "none"
            hint = did_you_mean(name, declared) or f"its settings: {known}"
            problems.append(
                Problem(given.path, given.line, f'{where}: the plan has no setting "{name}" ({hint})')
            )
            continue
        try:
            parse_month_day(value if isinstance(value, str) else "")
        except ValueError:
            shown = value if isinstance(value, str) else repr(value)
            problems.append(
                Problem(
                    given.path,
                    given.line,
                    f'{where}: bad date "{shown}": expected "MM-DD" in quotes, e.g. "02-15"',
                )
            )
            continue
        chosen[name] = value
    if not declared and not _references(data):
        return dict(data), problems
    resolved = copy.deepcopy(dict(data))
    settings = _declared(resolved)
    for name, value in chosen.items():
        if isinstance(settings.get(name), dict):
            settings[name] = {**settings[name], "value": value}
    if settings:
        resolved["settings"] = settings
    for table, i, key, name in _references(data):
        entry = resolved[table][i]
        declared_value = settings.get(name)
        if not isinstance(declared_value, dict):
            hint = did_you_mean(name, settings) or "settings: " + (", ".join(settings) or "none declared")
            at((table, i, key), f'unknown setting "{name}" ({hint}; declare it in [settings.{name}])')
            entry[key] = _PLACEHOLDER
            continue
        value = declared_value.get("value")
        entry[key] = value if isinstance(value, str) else _PLACEHOLDER  # (the schema reports a bad value)
    return resolved, problems


def _references(data: Mapping[str, Any]) -> list[tuple[str, int, str, str]]:
    found = []
    for table in TASK_TABLES:
        for i, raw in entries(data, table):
            for key in SETTABLE:
                value = raw.get(key)
                if isinstance(value, str) and value.startswith(PREFIX):
                    found.append((table, i, key, value[len(PREFIX) :].strip()))
    return found


def settings_digest(digest: str, given: SettingValues | None) -> str:
    """The file's digest, changed by the deployment's values (a program records what it ran)."""
    if not given or not given.values:
        return digest
    return hashlib.sha256(f"{digest}\n{given.digest()}".encode()).hexdigest()


__all__ = ["PREFIX", "SettingValues", "resolve_settings", "settings_digest"]
