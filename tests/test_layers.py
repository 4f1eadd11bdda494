"""Each layer imports only the ones below it: the table FORBIDDEN below is the one in
docs/architecture.md, section "Layers" (keep the two the same)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package (folder) -> top-level modules it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "services": ("streamlit", "fastapi", "uvicorn", "dashboard", "pages", "backend", "sandbox"),
    "services/store": ("services.operations", "services.kryptos.client",
                       "services.kryptos.transport", "services.kryptos.stream", "services.sync"),
    "services/kryptos": ("services.store", "services.operations", "services.sync"),
    "services/operations": ("services.sync",),
    "backend": ("dashboard", "pages", "streamlit"),
    "dashboard": ("pages", "backend"),
    "pages": ("services.store", "requests", "sqlalchemy", "backend"),
    "sandbox": ("services", "dashboard", "pages", "backend"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for line, name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                out.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return out


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_upward_import(folder: str) -> None:
    if not (ROOT / folder).is_dir():
        pytest.skip(f"{folder}/ does not exist")
    assert _violations(folder, FORBIDDEN[folder]) == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("import os\nfrom services.operations import Operations\n")
    assert _imports(bad) == [(1, "os"), (2, "services.operations")]


def test_pages_reach_the_use_cases_only_through_reads_and_actions() -> None:
    """A page calls dashboard.reads / dashboard.actions, never `ops.<resource>.<use case>`."""
    import re

    call = re.compile(r"\bops\.(grants|limits|connect|audit|auth|approvals|reconciler|sync|"
                      r"timeline|ctx)\.|\buser_ops\.")
    found = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "pages").glob("*.py"))
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1)
             if call.search(line)]
    assert found == []


def test_the_limit_modules_do_not_import_the_limit_use_cases() -> None:
    """The bulk engine and the per-grant change sit under `limits.py` (which imports them),
    and the limit value under everything: no cycle, no import hidden under TYPE_CHECKING."""
    ops = ROOT / "services" / "operations"
    for name in ("bulk.py", "limit_change.py", "limit_value.py"):
        assert [m for _, m in _imports(ops / name) if m == "services.operations.limits"] == []
    assert [m for _, m in _imports(ops / "limit_value.py")
            if m.startswith("services.")] == []
