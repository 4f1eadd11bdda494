"""Row building shared by the read model's writes and queries: fingerprints, the
rm_grants row of a listed grant, integration aggregates, CSV cell values."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Connection,
    Integer,
    String,
    bindparam,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from services.csv_safe import csv_safe
from services.store.db import Database
from services.store.readmodel.models import IntegrationsError, RmGrant
from services.store.readmodel.tables import CSV_COLUMNS, FAILING, SYNCING, rm_grants, rm_version
from services.store.schema import UTCDateTime


def _csv_safe(value: Any) -> str:
    return "" if value is None else csv_safe(str(value))



# --- helpers ----------------------------------------------------------------------------------

def _fp(*values: Any) -> int:
    digest = hashlib.blake2b(repr(values).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _integrations_fp(items: Any) -> int:
    if isinstance(items, IntegrationsError):
        return _fp("error", items.message)
    return _fp(sorted((i.wallet_id, i.display_name, i.provider, i.type, i.status,
                       i.last_synced_at, i.total_transactions, i.message,
                       bool(i.limit_exceeded)) for i in items))


def _search_text(gid: str, ref: str | None, user: str | None) -> str:
    return "\n".join(x.lower() for x in (gid, ref or "", user or ""))


def _grant_fp(g: Any, v: tuple[Any, ...] | None) -> int:
    """The fingerprint `_grant_row` gives the row of a listed grant (None: not listed)
    with vault fields `v`, without building the row: an unchanged row is skipped on it.

    Encoded as one f-string: the text fields by `repr` (quoted and escaped, so no field
    can run into the next and None differs from "None"), the datetimes as POSIX
    timestamps (the same instant in any zone is the same value). About a third cheaper
    than `repr` of the tuple, whose datetimes' reprs were most of the cost; an unchanged
    re-sync computes one for every listed grant."""
    masked, v_ws, v_user, ref, kind = v if v is not None else (None,) * 5
    if g is None:
        ws = scopes = created = expires = None
    else:
        ws, scopes, c, e = g.workspace_id, g.scopes, g.created_at, g.expires_at
        created = None if c is None else c.timestamp()
        expires = None if e is None else e.timestamp()
    digest = hashlib.blake2b(
        f"{ws!r}{scopes!r}{created}|{expires}|{v is not None}{masked!r}{v_ws!r}{v_user!r}"
        f"{ref!r}{kind!r}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _grant_row(gid: str, g: Any, v: tuple[Any, ...] | None, now: datetime) -> dict[str, Any]:
    """An rm_grants row from a listed grant (None: not listed) and its vault fields
    (masked token, workspace, user id, customer ref, kind; None: no token stored)."""
    status = "active" if g is not None else "revoked"
    masked, v_ws, v_user, ref, kind = v if v is not None else (None,) * 5
    gfields = ((g.workspace_id, g.scopes, g.created_at, g.expires_at)
               if g is not None else (None, None, None, None))
    return {
        "grant_id": gid, "status": status, "workspace_id": gfields[0] or v_ws,
        "scopes": gfields[1], "created_at": gfields[2], "expires_at": gfields[3],
        "status_changed_at": now, "kryptos_user_id": v_user, "customer_ref": ref,
        "has_token": v is not None, "masked_token": masked, "user_kind": kind,
        "grants_seen_at": now if g is not None else None, "refreshed_at": now,
        "unreadable": False, "n_integrations": 0, "n_failing": 0, "n_syncing": 0,
        "n_never_synced": 0, "search_text": _search_text(gid, ref, v_user),
        "fp": _grant_fp(g, v),
    }


def _vault_fields(e: Any) -> tuple[Any, ...]:
    return (e.masked_token, e.workspace_id, e.kryptos_user_id, e.customer_ref, e.user_kind)


def _key_in(db: Database, col: Any, ids: Sequence[str]) -> Any:
    """`col IN ids` as one parameter (SQLite: a JSON array through `json_each`;
    PostgreSQL: `= ANY(array)`), where an expanding IN would bind, name and compile
    one parameter per id (a tenth of an unchanged sync's time at 2,000 ids a batch)."""
    if db.is_sqlite:
        return col.in_(select(literal_column("value")).select_from(
            func.json_each(bindparam("key_ids", json.dumps(list(ids)), type_=String()))))
    return col == func.any(bindparam("key_ids", list(ids), type_=ARRAY(String())))


def _insert(db: Database) -> Any:
    return sqlite.insert if db.is_sqlite else postgresql.insert


def _bump(conn: Connection) -> None:
    conn.execute(update(rm_version).where(rm_version.c.id == 1)
                 .values(version=rm_version.c.version + 1))


class _Tally:
    """What a full sync wrote, batch by batch."""

    def __init__(self) -> None:
        self.written = self.revoked = self.reactivated = 0
        self.listed_with_token = 0  # listed grants with a stored token

    def unchanged(self, gid: str, fp: int, status: str,
                  existing: Mapping[str, tuple[Any, str]]) -> bool:
        """Whether the stored row already has this fingerprint and status (nothing to
        write, and no row to build)."""
        return existing.get(gid) == (fp, status)

    def diff(self, rows: list[dict[str, Any]],
             existing: Mapping[str, tuple[Any, str]]) -> list[dict[str, Any]]:
        """The rows that differ from what is stored, counted."""
        out = []
        for row in rows:
            before = existing.get(row["grant_id"])
            if before == (row["fp"], row["status"]):
                continue
            if before is not None and before[1] != row["status"]:
                if row["status"] == "active":
                    self.reactivated += 1
                else:
                    self.revoked += 1
            out.append(row)
        self.written += len(out)
        return out


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _aggregate(items: Sequence[Any]) -> dict[str, Any]:
    """Integration aggregates of a grant from `services.kryptos.models.Integration`s."""
    return _aggregate_facts([(i.status, i.last_synced_at, i.total_transactions)
                             for i in items])


def _aggregate_facts(items: Sequence[tuple[str, datetime | None, int | None]]
                     ) -> dict[str, Any]:
    """Aggregates from (status, last sync, transactions) of each integration."""
    failing = sum(1 for st, _, _ in items if st.upper() in FAILING)
    syncing = sum(1 for st, _, _ in items if st.upper() in SYNCING)
    never = sum(1 for _, last, _ in items if last is None)
    txs = [n for _, _, n in items if n is not None]
    syncs = [last for _, last, _ in items if last is not None]
    state = ("failing" if failing else "syncing" if syncing else "ok" if items else "empty")
    return {"n_integrations": len(items), "n_failing": failing, "n_syncing": syncing,
            "n_never_synced": never, "total_transactions": sum(txs) if txs else None,
            "last_sync": max(syncs) if syncs else None, "sync_state": state,
            "unreadable": False, "error_message": None}


def _grant(row: Any, last_full_sync: datetime | None = None) -> RmGrant:
    data = {name: getattr(row, name) for name in RmGrant.__dataclass_fields__}
    seen = data["grants_seen_at"]
    # Unchanged active rows are not rewritten by a full sync: the last full sync saw them.
    if data["status"] == "active" and last_full_sync and (seen is None or seen < last_full_sync):
        data["grants_seen_at"] = last_full_sync
    data["has_token"] = bool(data["has_token"])
    data["unreadable"] = bool(data["unreadable"])
    if data["limiter_enabled"] is not None:
        data["limiter_enabled"] = bool(data["limiter_enabled"])
    return RmGrant(**data)


_GRANT_COLUMNS = [rm_grants.c[name] for name in RmGrant.__dataclass_fields__]


def _aware(value: datetime | str | None) -> datetime | None:
    """Aggregates (min/max) bypass the column type on SQLite: parse its text here."""
    if value is None:
        return None
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return value


def _csv_text(value: Any) -> str:
    return _csv_safe(value)


def _csv_plain(value: Any) -> Any:
    return "" if value is None else value


def _csv_time(value: Any) -> str:
    return "" if value is None else _csv_value(value)


# Free text goes through the formula guard; numbers, flags and times cannot start a formula.
_CSV_CONVERTERS = tuple(
    _csv_time if isinstance(rm_grants.c[name].type, UTCDateTime)
    else _csv_plain if isinstance(rm_grants.c[name].type, Boolean | Integer | BigInteger)
    else _csv_text for name in CSV_COLUMNS)


