"""The audit log's stored form does not drift: the canonical form and its hashes are pinned
(fixed rows and hashes: rows already stored must keep verifying), a chain of those rows
still verifies and grows, and every field list follows the `AuditEvent` dataclass."""

from __future__ import annotations

import io
from dataclasses import fields

from sqlalchemy import insert

from services.store import AuditLog, Database, NewAuditEvent, parse_csv_export, parse_jsonl_export
from services.store.audit import (
    EXPORT_COLUMNS,
    ZERO_HASH,
    AuditEvent,
    canonical_content,
    chain_hash,
    event_hash_matches,
)
from services.store.audit.events import FIELDS, event_from_row, row_from_event
from services.store.schema import audit_log

# Two rows as the pre-split code stored them (services/store/audit.py at c78be06).
OLD_ROWS = [
    dict(seq=1, event_id="00000000-0000-4000-8000-000000000001", ts_ms=1717243200123,
         actor_username="alice", actor_roles='["admin","finance"]', action="guest.limit.update",
         outcome="requested", target_type="grant", target_id="grant_1",
         params='{"limit":1000,"limiter":true,"mode":null}', before_value='{"limit":500}',
         after_value='{"limit":1000}', reason="upgrade é ✓", ticket="T-1", error_code=None,
         error_message=None, request_id=None, correlation_id="corr-1", prev_hash=ZERO_HASH,
         hash="ab04043c7b436c5f2a8965675dfb27809714b8ccf6ae074e811b2a3123637565"),
    dict(seq=2, event_id="00000000-0000-4000-8000-000000000002", ts_ms=1717243260000,
         actor_username="bob", actor_roles="[]", action="grant.revoke", outcome="failed",
         target_type=None, target_id=None, params=None, before_value=None, after_value=None,
         reason=None, ticket=None, error_code="GRANT_NOT_FOUND", error_message="no such grant",
         request_id="req-9", correlation_id="corr-2",
         prev_hash="ab04043c7b436c5f2a8965675dfb27809714b8ccf6ae074e811b2a3123637565",
         hash="a25db3192267b1f661daa89a4d2c93c6cd72c9c762c7e1c14e4209ff07383099"),
]
OLD_CANONICAL_2 = (
    '{"action":"grant.revoke","actor_roles":"[]","actor_username":"bob","after_value":null,'
    '"before_value":null,"correlation_id":"corr-2","error_code":"GRANT_NOT_FOUND",'
    '"error_message":"no such grant","event_id":"00000000-0000-4000-8000-000000000002",'
    '"outcome":"failed","params":null,"reason":null,"request_id":"req-9","seq":2,'
    '"target_id":null,"target_type":null,"ticket":null,"ts":"2024-06-01T12:01:00.000Z"}'
)


def test_canonical_form_and_hashes_are_pinned() -> None:
    assert canonical_content(OLD_ROWS[1]) == OLD_CANONICAL_2
    for row in OLD_ROWS:
        assert chain_hash(row["prev_hash"], row) == row["hash"]


def test_a_chain_written_by_the_old_code_verifies_and_grows(db: Database) -> None:
    with db.write() as conn:
        conn.execute(insert(audit_log), OLD_ROWS)
    log = AuditLog(db)
    report = log.verify_chain()
    assert report.ok and (report.checked, report.head_hash) == (2, OLD_ROWS[1]["hash"])
    events = list(log.iter_events())
    assert events[0].params == {"limit": 1000, "limiter": True, "mode": None}
    assert events[0].reason == "upgrade é ✓" and events[1].actor_roles == ()
    assert all(event_hash_matches(e) for e in events)
    for write, parse in ((log.export_csv, parse_csv_export),
                         (log.export_jsonl, parse_jsonl_export)):
        out = io.StringIO()
        assert write(None, out) == 2
        assert parse(io.StringIO(out.getvalue())) == events
    third = log.append(NewAuditEvent("carol", ["viewer"], "audit.verify", "succeeded"))
    assert third.seq == 3 and third.prev_hash == OLD_ROWS[1]["hash"]
    assert log.verify_chain().ok


def test_field_lists_follow_the_dataclass() -> None:
    assert EXPORT_COLUMNS == tuple(f.name for f in fields(AuditEvent))
    assert {f.column for f in FIELDS} == set(audit_log.c.keys())
    for row in OLD_ROWS:
        assert row_from_event(event_from_row(row)) == row
