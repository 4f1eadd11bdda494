"""One formula neutraliser for every CSV the console writes."""

from __future__ import annotations

import pytest

from services.csv_safe import csv_safe, csv_unsafe


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "'quoted",
                                  "=HYPERLINK(\"http://evil\",\"x\")"])
def test_formula_starts_are_prefixed(cell: str) -> None:
    assert csv_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["", "plain", "1,000", " =padded", "a=b", "grant_1"])
def test_other_cells_are_kept(cell: str) -> None:
    assert csv_safe(cell) == cell


@pytest.mark.parametrize("cell", ["", "=x", "'", "''x", "plain", "-", "'=x"])
def test_csv_unsafe_undoes_csv_safe_exactly(cell: str) -> None:
    assert csv_unsafe(csv_safe(cell)) == cell
