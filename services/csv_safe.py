"""Spreadsheet formula neutralising for every CSV the console writes (CWE-1236).

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a formula
by Excel, LibreOffice and Google Sheets; `csv_safe` prefixes it with `'`, which they show as
text. A cell that already starts with `'` gets one too, so `csv_unsafe` undoes `csv_safe`
exactly (the audit export is read back and re-hashed)."""

from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def csv_safe(value: str) -> str:
    """`value` with `'` in front when a spreadsheet could read it as a formula."""
    return "'" + value if value.startswith(FORMULA_START) else value


def csv_unsafe(value: str) -> str:
    """The original of a cell written through `csv_safe`."""
    return value[1:] if value.startswith("'") else value
