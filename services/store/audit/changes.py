"""`limit_changes`: one small row per succeeded per-grant limit change in the audit log,
written by the audit writer in the transaction of the event itself (migration
0015_change_size). The charts read it instead of the events' JSON:

- `size` (|after - before| when both limits are capped, else NULL) in a partial index on
  (day, size, seq), so "the largest changes of a period" is a short index walk per day;
- `tier` (the tier's name for a tier applied, '' for a custom limit), so limit changes per
  day can be counted by tier. An outcome event has no params: the name is its `requested`
  event's (same correlation id).

The row is derived data: the audit log's rows (and their hash chain) are unchanged, and
`change_row` rebuilds it from any stored event (the migration fills it the same way, in
SQL, for the events written before it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Index, Integer, String, Table, select

from services.store.actions import AuditAction
from services.store.schema import audit_log, metadata

DAY_MS = 86_400_000
#: The per-grant limit and tier changes (a bulk run records one per grant too).
LIMIT_ACTIONS: tuple[str, ...] = (AuditAction.LIMIT_UPDATE.value, AuditAction.TIER_APPLY.value)
#: `tier` of a custom limit.
CUSTOM = ""

limit_changes = Table(
    "limit_changes",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),  # the event's seq
    Column("day", Integer, nullable=False),  # whole days since 1970-01-01 UTC
    Column("tier", String(100), nullable=False),
    Column("size", BigInteger),
    Column("before_limit", BigInteger),
    Column("after_limit", BigInteger),
)
Index("ix_limit_changes_size", limit_changes.c.day, limit_changes.c.size,
      limit_changes.c.seq, sqlite_where=limit_changes.c.size.is_not(None),
      postgresql_where=limit_changes.c.size.is_not(None))


def _json(text: Any) -> Any:
    if text is None or isinstance(text, Mapping):
        return text
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _limit(value: Any) -> int | None:
    """The capped limit in a stored before/after value, None for no cap or unknown."""
    value = _json(value)
    if not isinstance(value, Mapping):
        return None
    n = value.get("transaction_limit")
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def _tier(params: Any) -> str | None:
    params = _json(params)
    name = params.get("tier") if isinstance(params, Mapping) else None
    return str(name)[:100] if name else None


def change_row(row: Mapping[str, Any], tier: str | None = None) -> dict[str, Any] | None:
    """The `limit_changes` row of an audit row (column names as in `audit_log`), or None
    when the event is not a succeeded per-grant limit change. A tier applied is named by
    the event's own params, else by `tier` (its `requested` event's, see `change_rows`)."""
    if row["action"] not in LIMIT_ACTIONS or row["outcome"] != "succeeded":
        return None
    if row["action"] == AuditAction.TIER_APPLY.value:
        tier = _tier(row.get("params")) or tier or CUSTOM
    else:
        tier = CUSTOM
    before, after = _limit(row.get("before_value")), _limit(row.get("after_value"))
    size = abs(after - before) if before is not None and after is not None else None
    return {"seq": int(row["seq"]), "day": int(row["ts_ms"]) // DAY_MS, "tier": tier,
            "size": size, "before_limit": before, "after_limit": after}


def change_rows(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The `limit_changes` rows of audit rows about to be stored by `conn`'s transaction.
    An outcome event carries no params: a tier applied takes its name from the `requested`
    event of the same correlation (in `rows` or already stored: one query by the
    correlation index for the whole batch)."""
    wanted = {r["correlation_id"] for r in rows
              if r["action"] == AuditAction.TIER_APPLY.value and r["outcome"] == "succeeded"
              and _tier(r.get("params")) is None}
    tiers: dict[str, str] = {}
    if wanted:
        a = audit_log.c
        for cid, params in conn.execute(
                select(a.correlation_id, a.params).where(
                    a.correlation_id.in_(sorted(wanted)),
                    a.action == AuditAction.TIER_APPLY.value, a.outcome == "requested")):
            if (name := _tier(params)) is not None:
                tiers[cid] = name
        for r in rows:
            if (r["correlation_id"] in wanted and r["action"] == AuditAction.TIER_APPLY.value
                    and r["outcome"] == "requested"
                    and (name := _tier(r.get("params"))) is not None):
                tiers[r["correlation_id"]] = name
    return [c for r in rows
            if (c := change_row(r, tiers.get(r["correlation_id"]))) is not None]
