"""Pydantic's validation errors as located problems: ``FILE:LINE: key.path: message`` in plain
words, with the allowed keys and a did-you-mean hint for an unknown key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from workflows.errors import Problem
from workflows.source import SourceMap, format_loc

_BLAMED_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*): (.+)$", re.DOTALL)
_PYDANTIC_TAG = re.compile(r"^[a-z-]+\[.*\]$")
_EXPECTED = {
    "string_type": "expected text in quotes",
    "list_type": 'expected a list, e.g. ["a", "b"]',
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
    "dataclass_type": "expected a table",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
}
_BOUNDS = {
    "greater_than_equal": ("ge", ">="),
    "greater_than": ("gt", ">"),
    "less_than_equal": ("le", "<="),
    "less_than": ("lt", "<"),
}


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model that validates the table at ``loc`` (list indexes skipped), or None."""
    current: type[BaseModel] = model
    for part in loc:
        if isinstance(part, int):
            continue
        info = current.model_fields.get(part)
        found = _find_model(info.annotation) if info else None
        if found is None:
            return None
        current = found
    return current


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for inner in getattr(annotation, "__args__", ()):
        found = _find_model(inner)
        if found is not None:
            return found
    return None


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys the table at ``loc`` accepts (for "did you mean" hints); internal fields left out."""
    found = _model_at(model, loc)
    return [k for k in (found.model_fields if found else {}) if k != "kind"]


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return '"' + value.replace("\n", "\\n") + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unknown_key(model: type[BaseModel], loc: tuple) -> tuple[str, str | None]:
    """The message for an unknown key, and the key it is probably a typo of."""
    allowed = _allowed_keys(model, loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
    if close:
        hint = f' (did you mean "{close[0]}"?)'
    else:
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
    return f'unknown key "{loc[-1]}"{hint}', (close[0] if close else None)


def _type_message(error: Mapping[str, Any]) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {_describe(value)}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", '"')
        return f"expected {expected}, got {_describe(value)}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "string_too_long" or (kind == "too_long" and isinstance(value, str)):
        return f"too long ({len(value) if isinstance(value, str) else '?'} characters, at most {ctx.get('max_length')})"
    if kind == "too_long":
        return f"too many entries (at most {ctx.get('max_length')})"
    if kind in _BOUNDS:
        name, op = _BOUNDS[kind]
        return f"must be {op} {ctx.get(name)}, got {_describe(value)}"
    text = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    shown = (str(value), repr(value), _describe(value))
    if (
        isinstance(value, str | int | float)
        and not isinstance(value, bool)
        and not any(s in text for s in shown)
    ):
        text = f"{text} (got {_describe(value)})"
    return text


def _pydantic_problems(
    exc: ValidationError, model: type[BaseModel], path: str, source: SourceMap
) -> list[Problem]:
    """Every error of ``exc`` as ``FILE:LINE: key.path: message``.

    A model validator's ``"KEY: message"`` is reported at KEY. A missing key is not reported when
    an unknown key next to it is probably its misspelling (the unknown key is, with a hint).
    """
    typos: set[tuple] = set()
    located: list[tuple[tuple, tuple, str]] = []  # (where the message says, where the line is, message)
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            message, meant = _unknown_key(model, loc)
            if meant is not None:
                typos.add((*loc[:-1], meant))
            located.append((loc[:-1], loc, message))
            continue
        loc = tuple(p for p in loc if isinstance(p, int) or not (_PYDANTIC_TAG.match(p) or p == "[key]"))
        if error["type"] == "missing":
            located.append((loc, loc, "required key is missing"))
            continue
        message = _type_message(error)
        blamed = _BLAMED_KEY.match(message)
        if error["type"] == "value_error" and blamed and isinstance(error.get("input"), dict):
            loc, message = (*loc, blamed.group(1)), blamed.group(2)
        located.append((loc, loc, message))
    problems = []
    for where, line_loc, message in located:
        if message == "required key is missing" and where in typos:
            continue
        shown = format_loc(where)
        problems.append(Problem(path, source.line_of(line_loc), f"{shown}: {message}" if shown else message))
    return problems
