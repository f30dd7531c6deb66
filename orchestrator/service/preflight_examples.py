"""What is left of the shipped examples: ``example.gov.cn`` addresses (RFC 2606 example domains,
where no email arrives) and the ``XX`` placeholders of ``deploy/config.production.toml``, in
config.toml and in the units file — one finding per value, at its line.

The units file is read as TOML, not as units: its own problems are ``validate``'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from orchestrator.service.config import Settings
from orchestrator.service.findings import Finding, Locator
from workflows.errors import DefinitionError
from workflows.source import read_toml

EXAMPLE_DOMAIN = re.compile(
    r"(?:^|[.@])example\.(?:gov\.cn|com\.cn|cn|com|org|net)(?![\w-])|\.example\b", re.I
)
PLACEHOLDER = re.compile(r"XX|ＸＸ|××|某某")

_CONFIG_VALUES: tuple[tuple[str, ...], ...] = (
    ("mail", "sender"),
    ("mail", "reply_to"),
    ("mail", "admin"),
    ("mail", "domain"),
    ("mail", "signature", "name"),
    ("mail", "signature", "phone"),
    ("mail", "signature", "address"),
    ("mail", "smtp", "host"),
    ("mail", "smtp", "username"),
    ("web", "base_url"),
)


def leftover(value: str) -> str | None:
    """What makes ``value`` a leftover of an example (``"example.gov.cn"``, ``"XX"``), or None."""
    found = EXAMPLE_DOMAIN.search(value) or PLACEHOLDER.search(value)
    if found is None:
        return None
    return found.group().lstrip(".@")


def example_findings(settings: Settings, at: Locator) -> Iterator[Finding]:
    yield from _config_leftovers(settings, at)
    if settings.definitions.units is not None:
        yield from units_leftovers(str(settings.definitions.units))


def _config_leftovers(settings: Settings, at: Locator) -> Iterator[Finding]:
    for loc in _CONFIG_VALUES:
        value = _value_at(settings, loc)
        if isinstance(value, str):
            what = f"[{'.'.join(loc[:-1])}] {loc[-1]}" + ("" if at.has(loc) else "（未写，默认值）")
            yield from _leftover(value, at.where(loc), what)
    for i, email in enumerate(settings.web.office_emails):
        yield from _leftover(email, at.where(("web", "office_emails", i)), "[web] office_emails")


def units_leftovers(path: str) -> Iterator[Finding]:
    """Each unit's example addresses and placeholder names, at their lines."""
    try:
        data, source, _ = read_toml(path)
    except DefinitionError:
        return
    units = data.get("units")
    for i, unit in enumerate(units if isinstance(units, list) else []):
        if not isinstance(unit, dict):
            continue
        who = f"单位 {unit.get('id')!s}（{unit.get('name')!s}）"
        name = unit.get("name")
        if isinstance(name, str):
            yield from _leftover(name, (path, source.line_of(("units", i, "name"))), f"{who}的 name")
        emails = unit.get("emails")
        for j, email in enumerate(emails if isinstance(emails, list) else []):
            if isinstance(email, str):
                where = (path, source.line_of(("units", i, "emails", j)))
                yield from _leftover(email, where, f"{who}的 emails")


def _leftover(value: str, where: tuple[str, int], what: str) -> Iterator[Finding]:
    found = leftover(value)
    if found is None:
        return
    if PLACEHOLDER.fullmatch(found):
        why = f"还有示例的占位符 “{found}”"
    else:
        why = f"是示例域名 {found}（保留给示例，不属于任何单位）"
    yield Finding(*where, f'{what} = "{value}" {why}：换成本县的', "examples")


def _value_at(settings: Settings, loc: tuple[str, ...]) -> object:
    value: object = settings
    for key in loc:
        value = getattr(value, key, None)
        if value is None:
            return None
    return value
