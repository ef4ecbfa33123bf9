"""The project's layout as ARCHITECTURE.md describes it: the core never imports the UI or Streamlit,
imports between the core's parts only run downwards, pages/ holds only pages, and no module grows past
a thousand lines. Read from the source (AST), so nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "gpa_core"

#: What each part of gpa_core may import from the others (its own modules always). A new import that
#: runs upwards (say, algorithm using engine) fails here: move the code to the part that owns it.
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "ot": set(),
    "jobs": set(),
    "devices": {"config"},
    "data": {"config"},
    "algorithm": {"config"},
    "engine": {"config", "devices", "algorithm"},
    "estimate": {"config", "engine"},
    "rivals": {"config", "devices", "engine", "ot", "jobs"},
    "studies": {"config", "devices", "algorithm", "engine", "data", "ot", "jobs", "rivals"},
    "genes": {"config", "devices", "engine", "data", "ot"},
    "plots": {"config", "algorithm", "engine", "studies", "genes", "data", "rivals"},
    "cli": {"config", "devices", "algorithm", "engine", "estimate", "data", "genes", "rivals", "ot"},
    "__main__": {"cli"},
    "__init__": {"config", "engine", "estimate"},
}
MAX_LINES = 1000


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    """Absolute module names imported anywhere in ``path`` (function-level imports included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.relative_to(ROOT)}: relative import of {node.module!r}"
            base = node.module or ""
            out.add(base)
            if base == "gpa_core":  # `from gpa_core import ot` imports the module gpa_core.ot
                out.update(f"gpa_core.{alias.name}" for alias in node.names)
    return out


def _part(module: str) -> str:
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else "__init__"


def _part_of(path: Path) -> str:
    rel = path.relative_to(CORE).with_suffix("").parts
    return rel[0]


def test_core_never_imports_streamlit_or_the_ui() -> None:
    bad = [
        f"{p.relative_to(ROOT)} imports {m}"
        for p in _modules(CORE)
        for m in _imports(p)
        if m.split(".")[0] in {"streamlit", "ui", "pages"}
    ]
    assert not bad


def test_imports_between_parts_run_downwards() -> None:
    parts = {_part_of(p) for p in _modules(CORE)}
    assert parts == set(ALLOWED), f"parts without a rule (or rules without a part): {parts ^ set(ALLOWED)}"
    bad = []
    for path in _modules(CORE):
        own = _part_of(path)
        for module in _imports(path):
            if module.startswith("gpa_core.") or module == "gpa_core":
                other = _part(module)
                if other in {"__init__", own} or other not in ALLOWED:
                    continue  # the package itself (FlowConfig, GPAFlow re-exported), or its own part
                if other not in ALLOWED[own]:
                    bad.append(f"{path.relative_to(ROOT)} ({own}) imports {module} ({other})")
    assert not bad, "\n".join(bad)


def test_pages_folder_holds_only_the_apps_pages() -> None:
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    listed = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("pages/")
    }
    on_disk = {f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py")}
    assert on_disk == listed, f"in pages/ but not a page of app.PAGES: {sorted(on_disk - listed)}"


@pytest.mark.parametrize("folder", ["gpa_core", "ui", "pages"])
def test_no_module_past_a_thousand_lines(folder: str) -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules(ROOT / folder)
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split these by what they hold: {long}"
