"""The pages the dashboard switches to (`st.switch_page`) exist: a module moved to another
folder must not leave a link to a path that is not a page."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard import grants_list, overview_sections, rm_sections
from dashboard.grant_detail import header


@pytest.mark.parametrize(("path", "page"), [
    (header.GRANTS_PAGE, "grants.py"),
    (grants_list.DETAIL_PAGE, "grant_detail.py"),
    (rm_sections.GRANTS_PAGE, "grants.py"),
    (overview_sections.DETAIL_PAGE, "grant_detail.py"),
])
def test_a_page_link_is_a_page_of_pages(path: str, page: str) -> None:
    root = Path(__file__).resolve().parents[2]
    assert Path(path) == root / "pages" / page
    assert Path(path).is_file()
