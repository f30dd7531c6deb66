"""Bounded fuzzing of every loader (definitions, units, registers, config, calendar overrides):
whatever a file holds — deep nesting, very long values, any Unicode, broken syntax — ``duban``
answers with an exit code (``validate``: 0 or 1, its check failed; ``plan`` and a bad config: 0 or
2), never an exception (a traceback), and within a few seconds.

Runs in-process (``orchestrator.cli.main``) so that hypothesis can try many files; the subprocess
tests in test_hostile_input.py show the same answers from a real ``duban``.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.cli import main

pytestmark = pytest.mark.fuzz

LIMIT = settings(
    max_examples=30,
    deadline=None,  # timed below, per call, with a bound that holds on a busy machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
SECONDS = 5.0

# -- TOML values as text ------------------------------------------------------------------------

_scalar = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f).replace("inf", "inf").lower()),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.text(max_size=40).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.text(max_size=40).map(lambda s: "'" + s.replace("'", "").replace("\n", "") + "'"),
    st.sampled_from(
        ['"06-10"', '"13-45"', '"-7d"', '"role:town"', "2026-06-10", '"FREQ=YEARLY"', '">= 90%"']
    ),
)
_deep = st.integers(min_value=1, max_value=2000).map(lambda n: "[" * n + "]" * n)
_deep_tables = st.integers(min_value=1, max_value=800).map(lambda n: "{a = " * n + "1" + "}" * n)
_long = st.integers(min_value=100, max_value=300_000).map(lambda n: '"' + "长" * n + '"')
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.dictionaries(st.sampled_from(["a", "id", "to", "after"]), inner, max_size=3).map(
            lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=8,
)
VALUES = st.one_of(_value, _deep, _deep_tables, _long, st.text(max_size=60))  # the last: not TOML at all

UNITS = """\
[[units]]
id = "office"
name = {name}
emails = {emails}
roles = {roles}

[[units]]
id = "town-a"
name = "甲镇人民政府"
emails = ["a@example.gov.cn"]
roles = ["town"]
"""

DEFINITION = """\
[workflow]
id = "fuzz"
title = {title}
reminders = {reminders}

[[phases]]
id = "p1"
name = "阶段"
start = "05-10"
end = {end}

[[tasks]]
id = "T1"
title = "报送方案"
phase = "p1"
due = {due}
lead = {lead}
responsible = ["role:town"]
"""

CONFIG = """\
[database]
url = "sqlite:///{db}"

[definitions]
paths = []

[mail]
send_window = {window}
max_attempts = {attempts}

[daemon]
tick_interval = {tick}
"""


def duban(*args: str) -> int:
    """``duban ARGS`` in this process: the exit code; an exception (a traceback) fails the test."""
    started = time.monotonic()
    saved = structlog.get_config()
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(args))
        finally:
            structlog.configure(**saved)
    assert time.monotonic() - started < SECONDS, f"{args} took over {SECONDS}s"
    return code


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def _folder() -> Path:
    path = Path(tempfile.mkdtemp(prefix="duban-fuzz-"))
    atexit.register(shutil.rmtree, path, True)
    return path


@LIMIT
@given(title=VALUES, reminders=VALUES, end=VALUES, due=VALUES, lead=VALUES)
def test_definitions(title, reminders, end, due, lead):
    folder = _folder()
    units = write(
        folder, "units.toml", UNITS.format(name='"县办"', emails='["o@example.gov.cn"]', roles='["office"]')
    )
    definition = write(
        folder, "plan.toml", DEFINITION.format(title=title, reminders=reminders, end=end, due=due, lead=lead)
    )
    config = write(folder, "config.toml", "")
    assert duban("--config", str(config), "validate", str(definition), str(units)) in (0, 1)
    assert duban(
        "--config", str(config), "plan", str(definition), "--units", str(units), "--year", "2026"
    ) in (
        0,
        2,
    )


@LIMIT
@given(name=VALUES, emails=VALUES, roles=VALUES)
def test_units(name, emails, roles):
    folder = _folder()
    units = write(folder, "units.toml", UNITS.format(name=name, emails=emails, roles=roles))
    config = write(folder, "config.toml", "")
    assert duban("--config", str(config), "validate", str(units)) in (0, 1)


@LIMIT
@given(
    cells=st.lists(
        st.one_of(
            st.text(max_size=30), st.integers(1, 200_000).map(lambda n: "x" * n), st.just("2026-13-40")
        ),
        min_size=4,
        max_size=12,
    ),
    quote=st.booleans(),
)
def test_registers(cells, quote):
    folder = _folder()
    rows = ["id,title,unit,expires_on"]
    for i in range(0, len(cells) - 3, 4):
        row = cells[i : i + 4]
        rows.append(",".join(('"' + c.replace('"', '""') + '"') if quote else c for c in row))
    register = write(folder, "docs.csv", "\n".join(rows) + "\n")
    config = write(folder, "config.toml", "")
    assert duban("--config", str(config), "validate", "--register", f"docs={register}", str(register)) in (
        0,
        1,
        2,
    )


@LIMIT
@given(window=VALUES, attempts=VALUES, tick=VALUES)
def test_config(window, attempts, tick):
    folder = _folder()
    config = write(
        folder, "config.toml", CONFIG.format(db=folder / "x.db", window=window, attempts=attempts, tick=tick)
    )
    assert duban("--config", str(config), "validate") in (0, 1, 2)


@LIMIT
@given(year=st.one_of(st.just("2027"), st.text(max_size=8)), holidays=VALUES, workdays=VALUES)
def test_calendar_overrides(year, holidays, workdays):
    folder = _folder()
    key = year if year.isdigit() else '"' + year.replace("\\", "").replace('"', "") + '"'
    path = write(folder, "holidays.toml", f"[{key}]\nholidays = {holidays}\nworkdays = {workdays}\n")
    config = write(folder, "config.toml", "")
    assert duban("--config", str(config), "validate", str(path)) in (0, 1)


@LIMIT
@given(text=st.text(max_size=400))
def test_any_text_as_a_toml_file(text):
    folder = _folder()
    path = write(folder, "any.toml", text)
    config = write(folder, "config.toml", "")
    assert duban("--config", str(config), "validate", str(path)) in (0, 1)
