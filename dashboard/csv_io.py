"""CSV in and out of the pages: grant ids uploaded for a bulk change, the bulk results and
the grids' downloads (cells that a spreadsheet would read as a formula neutralised).

No Streamlit import and no call into the operations here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboard.formats import ABSENT
from services.csv_safe import FORMULA_START, csv_safe
from services.operations import BulkItem, BulkResult
from services.operations.validation import GRANT_ID_RE


@dataclass(frozen=True)
class RejectedLine:
    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class ParsedIds:
    grant_ids: tuple[str, ...]
    rejected: tuple[RejectedLine, ...]
    problem: str | None = None  # the whole file could not be read (said in words)


def _decode(content: bytes | str) -> str | None:
    if isinstance(content, str):
        return content
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _id_column(rows: list[list[str]]) -> tuple[int, int]:
    """(the column holding grant ids, the first data row): a `grant_id` column when a header
    names one, else the first column; any other header row is skipped."""
    if not rows:
        return 0, 0
    header = [c.strip().lower() for c in rows[0]]
    if "grant_id" in header:
        return header.index("grant_id"), 1
    if header and header[0] and not header[0].startswith("cgrant_"):
        return 0, 1  # some other header, e.g. "id"
    return 0, 0


NOT_UTF8 = ("This file is not UTF-8 text, so no grant id was read: save the CSV as UTF-8 "
            "(in Excel: \"CSV UTF-8\") and upload it again.")


def parse_grant_id_csv(content: bytes | str, max_rows: int = 10_000) -> ParsedIds:
    """Read grant ids from an uploaded CSV: the first column, or a column named `grant_id`.

    A header row is skipped. Lines that are not a grant id are reported, duplicates dropped.
    """
    text = _decode(content)
    if text is None:
        return ParsedIds((), (), NOT_UTF8)
    rows = list(csv.reader(io.StringIO(text)))
    column, start = _id_column(rows)
    ids: list[str] = []
    seen: set[str] = set()
    rejected: list[RejectedLine] = []
    for n, row in enumerate(rows[start:], start=start + 1):
        if not row or not any(c.strip() for c in row):
            continue
        value = row[column].strip() if column < len(row) else ""
        shown = value[:80]
        if not value:
            rejected.append(RejectedLine(n, ",".join(row)[:80], "no grant id in this line"))
        elif not GRANT_ID_RE.match(value):
            rejected.append(RejectedLine(n, shown, "not a grant id (cgrant_...)"))
        elif value in seen:
            rejected.append(RejectedLine(n, shown, "duplicate"))
        elif len(ids) >= max_rows:
            rejected.append(RejectedLine(n, shown, f"more than {max_rows:,} grant ids"))
        else:
            seen.add(value)
            ids.append(value)
    return ParsedIds(tuple(ids), tuple(rejected))


BULK_COLUMNS = ("grant_id", "customer_ref", "outcome", "before", "after", "error_code", "message")


def bulk_rows(items: Iterable[BulkItem], *, words: bool = False) -> list[dict[str, Any]]:
    """One plain dict per item (limits as text: "no cap", "unknown" or the number). The
    outcome is its code (`would_change`: what a CSV keeps, stable for a spreadsheet) or,
    with `words`, as a person reads it ("would change", like the summary line)."""
    return [
        {
            "grant_id": i.grant_id,
            "customer_ref": i.customer_ref or "",
            "outcome": i.outcome.replace("_", " ") if words else i.outcome,
            "before": i.before.label(),
            "after": i.after.label() if i.outcome != "failed" else "",
            "error_code": i.error_code or "",
            "message": i.message or "",
        }
        for i in items
    ]


def bulk_csv(result: BulkResult) -> str:
    """The per-grant results as CSV text, for download."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(BULK_COLUMNS))
    writer.writeheader()
    for row in bulk_rows(result.items):
        writer.writerow({k: csv_safe(str(v)) for k, v in row.items()})
    return out.getvalue()


#: What makes a spreadsheet run a cell; the `'` that `csv_safe` also guards is for reading a
#: written file back, which a grid on screen never is.
SCREEN_FORMULA_START = tuple(c for c in FORMULA_START if c != "'")


def screen_text(value: str | None) -> str:
    """A text as a grid on screen shows it: an absent value is an em dash; a text that a
    spreadsheet would run as a formula when copied from the grid (only text from upstream
    starts so) keeps a `'` in front."""
    if value is None:
        return ABSENT
    return "'" + value if value.startswith(SCREEN_FORMULA_START) else value


def screen_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` for a grid on screen: in text columns an absent value (None, NaN)
    is an em dash, and text that starts a formula is guarded (`screen_text`). Columns of
    other kinds (numbers, times, switches) are left to their column's own format."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if not (series.dtype == object or pd.api.types.is_string_dtype(series)):
            continue
        present = series[series.notna()]
        if not all(isinstance(x, str) for x in present):
            continue
        out[col] = series.map(lambda x: screen_text(x if isinstance(x, str) else None))
    return out
