"""The promises of docs/portal.md's "Files and servers (issue 26)" name tests that exist, and the
README and docs/operations.md keep the warning about the SQLite ``-wal`` file (issue 26, point 18)."""

from __future__ import annotations

import ast
import re

from support import REPO

SECTION = "### Files and servers (issue 26)"


def test_each_promise_of_the_files_and_servers_section_names_a_test_that_exists():
    text = (REPO / "docs" / "portal.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", section)
    assert len(named) >= 15
    for path, name in named:
        tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
        functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        assert name in functions, f"{path}::{name} is named in docs/portal.md but does not exist"


def test_the_docs_warn_never_to_delete_the_wal_file():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "**Never delete\n`duban.db-wal` after a crash**" in readme and "docs/operations.md" in readme
    operations = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    assert "**Never delete `duban.db-wal` (or `-shm`) after a crash.**" in operations
    warning = operations[operations.index("**Never delete `duban.db-wal`") :][:700]
    assert "rolls the database back" in warning and "sends those emails again" in warning
