"""Audit exports (CSV and JSON Lines, hashes included) and reading them back."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any, TextIO

from services.csv_safe import csv_safe, csv_unsafe
from services.store.audit.events import (
    EXPORT_COLUMNS,
    JSON_EXPORT,
    AuditEvent,
    dumps,
    event_from_export,
    export_record,
)


def _cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    return dumps(value) if name in JSON_EXPORT else str(value)


def write_csv(events: Iterable[AuditEvent], out: TextIO) -> int:
    """Write `events` as CSV (cells a spreadsheet would run as formulas are prefixed with
    `'`, see `services.csv_safe`); returns the count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for event in events:
        record = export_record(event)
        writer.writerow([csv_safe(_cell(name, record[name])) for name in EXPORT_COLUMNS])
        count += 1
    return count


def write_jsonl(events: Iterable[AuditEvent], out: TextIO) -> int:
    """Write `events` as JSON Lines; returns the count."""
    count = 0
    for event in events:
        out.write(dumps(export_record(event)) + "\n")
        count += 1
    return count


def parse_csv_export(source: TextIO) -> list[AuditEvent]:
    """Read back a CSV written by `AuditLog.export_csv` (for audits and round-trip checks)."""
    events = []
    for raw in csv.DictReader(source):
        data: dict[str, Any] = {}
        for name in EXPORT_COLUMNS:
            cell = csv_unsafe(raw[name])
            if cell == "":
                data[name] = None
            else:
                data[name] = json.loads(cell) if name in JSON_EXPORT else cell
        events.append(event_from_export(data))
    return events


def parse_jsonl_export(source: TextIO) -> list[AuditEvent]:
    """Read back JSON Lines written by `AuditLog.export_jsonl`."""
    return [event_from_export(json.loads(line)) for line in source if line.strip()]
