"""The architecture map stays true to the code: its forbidden-imports table is the one
tests/test_layers.py enforces, every section the code and docs cite exists, and neither
the map nor the code's comments say which issue something came from."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_layers import FORBIDDEN

ROOT = Path(__file__).resolve().parents[1]
MAP = ROOT / "docs" / "architecture.md"
SOURCES = ("services", "dashboard", "pages", "backend", "sandbox", "bench", "tests")
DOCS = ("README.md", "sandbox/README.md", "docs/architecture.md")


def _section(title: str) -> list[str]:
    lines = MAP.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"## {title}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
               len(lines))
    return lines[start + 1:end]


def _headings() -> set[str]:
    """Each heading's title, without the modules it names in parentheses."""
    return {line.lstrip("#").split(" (`")[0].strip()
            for line in MAP.read_text(encoding="utf-8").splitlines() if line.startswith("#")}


def _texts() -> list[tuple[Path, str]]:
    files = [p for folder in SOURCES for p in sorted((ROOT / folder).rglob("*.py"))
             if "migrations" not in p.parts and p != Path(__file__).resolve()]
    files += [ROOT / name for name in DOCS]
    return [(p, p.read_text(encoding="utf-8")) for p in files]


def test_the_maps_layers_table_is_what_test_layers_enforces() -> None:
    row = re.compile(r"^\| `([a-z/]+?)/?` \| (.+) \|$")
    table = {}
    for line in _section("Layers"):
        m = row.match(line)
        if m:
            table[m.group(1)] = tuple(re.findall(r"`([^`]+)`", m.group(2)))
    assert table == FORBIDDEN


def test_every_section_of_the_map_that_is_cited_exists() -> None:
    cite = re.compile(r'docs/architecture\.md`?[,:]?\s*(?:section\s+)?\(?'
                      r'((?:"[^"]+"(?:,\s*|\s+and\s+)?)+)')
    headings = _headings()
    cited, missing = 0, []
    for path, text in _texts():
        flat = re.sub(r"\s*\n\s*#?\s*", " ", text)
        for m in cite.finditer(flat):
            for name in re.findall(r'"([^"]+)"', m.group(1)):
                cited += 1
                if name not in headings:
                    missing.append(f"{path.relative_to(ROOT)}: {name!r}")
    assert cited >= 15, "the citation pattern no longer finds the code's references"
    assert missing == []


def test_the_code_and_docs_do_not_say_which_issue_made_them() -> None:
    said = re.compile(r"\b(issue|session|round) [0-9]+\b", re.IGNORECASE)
    found = [f"{p.relative_to(ROOT)}:{n}" for p, text in _texts()
             for n, line in enumerate(text.splitlines(), start=1) if said.search(line)]
    assert found == []
