"""The import rule of ``orchestrator/__init__.py``, checked on the imports of every module (``ast``),
and the module map of docs/architecture.md checked against the folders."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("orchestrator", "workflows", "notifications")

# orchestrator's sub-packages: which other sub-packages each may import.
MAY_IMPORT = {
    "store": set(),
    "engine": {"store"},
    "admin": {"engine", "store"},
    "evaluation": {"engine", "store"},
    "service": {"engine", "store", "evaluation"},
    "cli": {"admin", "evaluation", "service", "engine", "store", "web"},  # `duban web` serves the portal
    "web": {"admin", "evaluation", "service", "engine", "store"},
}
SIDEWAYS = {("service", "orchestrator.admin.links")}  # the service signs the links its digests carry
IMPORT_NOTIFICATIONS = {"engine", "admin", "evaluation", "service"}
WORDS = "notifications.labels"  # the zh-CN labels: the edges print them, so they may read them


def modules() -> list[Path]:
    """Every production module (migration scripts are generated files)."""
    found = [p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))]
    return [p for p in found if "versions" not in p.relative_to(REPO).parts]


def name_of(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = REPO) -> set[str]:
    """The absolute names of every module ``path`` imports, at any depth (functions, TYPE_CHECKING)."""
    name = name_of(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.update([base] + [f"{base}.{alias.name}" for alias in node.names])
    return found


def layer(module: str) -> str | None:
    """``orchestrator.engine.tick`` → ``engine``; ``workflows.x`` → ``workflows``; others None."""
    parts = module.split(".")
    if parts[0] == "orchestrator":
        return (
            parts[1]
            if len(parts) > 1 and parts[1] in MAY_IMPORT
            else ("orchestrator" if len(parts) == 1 else parts[1])
        )
    return parts[0] if parts[0] in PACKAGES else None


def violations(path: Path, root: Path = REPO) -> list[str]:
    source = layer(name_of(path, root))
    wrong = []
    for target in sorted(imports(path, root)):
        to = layer(target)
        if to is None or to == source:
            continue
        if source in ("workflows", "notifications"):
            allowed = to == "workflows" and source == "notifications"
        elif to == "workflows":
            allowed = True
        elif to == "notifications":
            words = target == WORDS or target.startswith(f"{WORDS}.")
            allowed = source in IMPORT_NOTIFICATIONS or (source in ("cli", "web") and words)
        elif source == "orchestrator":  # orchestrator/__init__.py
            allowed = False
        else:
            allowed = to in MAY_IMPORT.get(source, set()) or any(
                source == s and (target == m or target.startswith(f"{m}.")) for s, m in SIDEWAYS
            )
        if not allowed:
            wrong.append(f"{path.relative_to(root)}: {source} imports {target}")
    return wrong


def test_every_orchestrator_subpackage_has_a_place_in_the_rule():
    folders = {p.name for p in (REPO / "orchestrator").iterdir() if (p / "__init__.py").exists()}
    assert folders <= set(MAY_IMPORT), (
        f"add {sorted(folders - set(MAY_IMPORT))} to the rule (orchestrator/__init__.py)"
    )
    top = {p.name for p in (REPO / "orchestrator").glob("*.py")}
    assert top == {"__init__.py"}, "orchestrator/ holds sub-packages only"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_follow_the_rule(path):
    assert violations(path) == []


def test_the_checker_sees_a_wrong_import(tmp_path):
    """The rule test can fail: an upward import, notifications from the store, orchestrator from workflows."""
    cases = {
        "orchestrator/store/x.py": "from orchestrator.engine.tick import tick\n",
        "orchestrator/engine/y.py": "def f():\n    from orchestrator.service import config\n",
        "orchestrator/store/z.py": "import notifications.render\n",
        "orchestrator/cli/w.py": "from notifications.report import render_scorecard_html\n",
        "workflows/v.py": "from orchestrator.store.states import ObligationState\n",
        "notifications/u.py": "from orchestrator.store import models\n",
        "orchestrator/admin/t.py": "from ..service import runtime\n",
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        assert violations(path, tmp_path), name
    allowed = tmp_path / "orchestrator/service/s.py"
    allowed.parent.mkdir(parents=True)
    allowed.write_text(
        "from orchestrator.evaluation.scoring import scorecard_attachment\nimport workflows.plan\n"
    )
    assert violations(allowed, tmp_path) == []


def architecture_tree() -> str:
    """The module map of docs/architecture.md (the README points there)."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## The packages and the import rule", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def test_the_architecture_tree_names_every_module_and_folder():
    tree = architecture_tree()
    named = set(re.findall(r"[\w.]+(?:/|\.py|\.j2)", tree))
    missing = []
    for path in modules():
        relative = path.relative_to(REPO)
        if path.name != "__init__.py" and path.name not in named:
            missing.append(str(relative))
        for folder in relative.parts[:-1]:
            if f"{folder}/" not in named:
                missing.append(f"{folder}/")
    assert sorted(set(missing)) == [], "docs/architecture.md (its module map) does not name these"


def test_no_test_imports_conftest():
    """Shared helpers live in ``tests/support.py``; ``conftest.py`` holds fixtures that pytest injects."""
    importers = []
    for path in sorted((REPO / "tests").glob("*.py")):
        if any(name == "conftest" or name.startswith("conftest.") for name in imports(path)):
            importers.append(path.name)
    assert importers == []
