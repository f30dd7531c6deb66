"""The robots file: each group robot's platform and secrets, kept apart from config and units.

```toml
[robots.zhengfuban-dingtalk]
kind = "dingtalk"
access_token = "…"
secret = "SEC…"

[robots.sifaju-wecom]
kind = "wecom"
key = "…"
```

Found at ``[im] robots_file`` (which must be readable by its owner only: mode 0600 or 0400), or
else at ``$CREDENTIALS_DIRECTORY/robots.toml`` (systemd ``LoadCredential=robots.toml:…``, which
systemd itself keeps private). Every problem is ``FILE:LINE: message``; no message carries a secret.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from notifications.im import Robot
from orchestrator.service.config import Settings
from workflows.errors import DefinitionError, Problem
from workflows.loader import LoadedUnits, _pydantic_problems, read_toml

CREDENTIAL = "robots.toml"
NEEDED = {"wecom": ("key",), "dingtalk": ("access_token", "secret")}


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    kind: Literal["wecom", "dingtalk"]
    key: str | None = None
    access_token: str | None = None
    secret: str | None = None


class _RobotsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    robots: dict[str, _Entry] = Field(default_factory=dict)


def robots_path(settings: Settings) -> tuple[Path | None, bool]:
    """Where the robots file is, and whether its mode is to be checked (not under systemd's care)."""
    if settings.im.robots_file is not None:
        return settings.im.robots_file, True
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials and (Path(credentials) / CREDENTIAL).is_file():
        return Path(credentials) / CREDENTIAL, False
    return None, False


def load_robots(path: Path, *, check_mode: bool = True) -> dict[str, Robot]:
    """The robots of ``path``; a ``DefinitionError`` with every problem (FILE:LINE) otherwise."""
    shown = str(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise DefinitionError([Problem(shown, 1, f"robots file: {exc.strerror or exc}")]) from None
    if check_mode and mode & (stat.S_IRWXG | stat.S_IRWXO):
        message = (
            f"robots file has mode {stat.S_IMODE(mode):04o}: it holds secrets and must be readable by its "
            f"owner only (chmod 600 {shown})"
        )
        raise DefinitionError([Problem(shown, 1, message)])
    data, source, _ = read_toml(path)
    try:
        parsed = _RobotsFile.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(_pydantic_problems(exc, _RobotsFile, shown, source)) from None
    problems: list[Problem] = []
    robots: dict[str, Robot] = {}
    for name, entry in parsed.robots.items():
        missing = [k for k in NEEDED[entry.kind] if not getattr(entry, k)]
        for key in missing:
            line = source.line_of(("robots", name))
            problems.append(Problem(shown, line, f"robots.{name}: {entry.kind} robot without {key}"))
        foreign = [
            k for k in ("key", "access_token", "secret") if k not in NEEDED[entry.kind] and getattr(entry, k)
        ]
        for key in foreign:
            line = source.line_of(("robots", name, key))
            problems.append(Problem(shown, line, f"robots.{name}.{key}: not used by a {entry.kind} robot"))
        if not _good_name(name):
            line = source.line_of(("robots", name))
            problems.append(
                Problem(shown, line, f'robots.{name}: bad robot name (use letters, digits, "-", "_" or ".")')
            )
        robots[name] = Robot(name, entry.kind, entry.key, entry.access_token, entry.secret)
    if problems:
        raise DefinitionError(problems)
    return robots


def _good_name(name: str) -> bool:
    return (
        bool(name)
        and name[0].isascii()
        and name[0].isalnum()
        and all(ch.isascii() and (ch.isalnum() or ch in "-_.") for ch in name)
    )


def configured_robots(settings: Settings) -> dict[str, Robot]:
    """The configured robots (none without a robots file); ``DefinitionError`` if the file is bad."""
    path, check_mode = robots_path(settings)
    return {} if path is None else load_robots(path, check_mode=check_mode)


def unit_robot_problems(
    units: Iterable[LoadedUnits], robots: Mapping[str, Robot], where: Path | None
) -> list[Problem]:
    """Every unit's ``robots = [...]`` entry that names no robot of the robots file, at its line."""
    problems = []
    for loaded in units:
        for i, unit in enumerate(loaded.directory.units):
            for j, name in enumerate(unit.robots):
                if name in robots:
                    continue
                line = loaded.source.line_of(("units", i, "robots", j))
                if where is None:
                    why = "no robots file ([im] robots_file in config, or $CREDENTIALS_DIRECTORY/robots.toml)"
                else:
                    why = f"not in the robots file {where}"
                problems.append(
                    Problem(loaded.path, line, f'units[{i}].robots: unknown robot "{name}": {why}')
                )
    return problems


def check_robots(settings: Settings, units: Iterable[LoadedUnits]) -> list[Problem]:
    """What ``validate`` says of robots: the robots file itself, and every unit's robot names."""
    units = list(units)
    path, check_mode = robots_path(settings)
    if path is None:
        return unit_robot_problems(units, {}, None)
    try:
        robots = load_robots(path, check_mode=check_mode)
    except DefinitionError as exc:
        return list(exc.problems)
    return unit_robot_problems(units, robots, path)
