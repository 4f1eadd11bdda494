"""The read model's writes (see services/store/readmodel/__init__.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import text as sql_text

from services.settings import Tier
from services.store.db import Database
from services.store.errors import StoreError
from services.store.readmodel.models import (
    Counts,
    GrantsApplied,
    IntegrationsError,
    UserFacts,
    _now,
)
from services.store.readmodel.rows import (
    _aggregate,
    _aggregate_facts,
    _bump,
    _chunks,
    _grant_fp,
    _grant_row,
    _insert,
    _integrations_fp,
    _key_in,
    _Tally,
    _vault_fields,
)
from services.store.readmodel.tables import (
    BATCH_SIZE,
    rm_grants,
    rm_integrations,
    rm_sync_state,
    rm_version,
)
from services.store.schema import vault_tokens


class _Base:
    """What the read model's parts share: the database, the tiers and the caches."""

    _db: Database
    _tiers: tuple[Tier, ...]
    _counts_cache: tuple[int, Counts] | None
    _rows_cache: tuple[int, int] | None
    _cache_lock: threading.Lock

    def version(self) -> int:
        """Bumped by every write: a cache keyed on it is invalid once it moves."""
        with self._db.read() as conn:
            return int(conn.execute(select(rm_version.c.version)
                                    .where(rm_version.c.id == 1)).scalar_one())


class ReadModelWrites(_Base):
    """The writes: full and partial grants syncs, integrations, user info, the console's
    own changes, the worker's shared state. Each in batches, one transaction each."""

    # --- writes -----------------------------------------------------------------------------

    _VAULT_COLS = (vault_tokens.c.grant_id, vault_tokens.c.masked_token,
                   vault_tokens.c.workspace_id, vault_tokens.c.kryptos_user_id,
                   vault_tokens.c.customer_ref, vault_tokens.c.user_kind)

    def apply_grants(self, grants: Iterable[Any],
                     vault_entries: Iterable[Any] | None = None, *,
                     now: datetime | None = None) -> GrantsApplied:
        """Apply a full `GET /token/grants` answer (services.kryptos.models.Grant), joined
        with the vault (`VaultEntry`s; None: read the vault table here, without decrypting
        anything). Listed grants are active; stored-but-unlisted ones and rows no longer in
        either are revoked. Only rows that differ are written. See `apply_grant_batches`."""
        it = iter(grants)
        return self.apply_grant_batches(iter(lambda: list(islice(it, BATCH_SIZE)), []),
                                        vault_entries, now=now)

    def apply_grant_batches(self, batches: Iterable[Sequence[Any]],
                            vault_entries: Iterable[Any] | None = None, *,
                            now: datetime | None = None) -> GrantsApplied:
        """`apply_grants` over the list in batches (e.g. `KryptosClient.iter_grants()`):
        each batch is read against the stored rows and the vault by primary key and its
        changed rows upserted in one transaction, so memory holds one batch plus the set of
        listed ids (about 90 bytes a grant); an unchanged list writes nothing. Then the
        vault and the active rows are walked by key for what the list did not name. Rows
        the console wrote meanwhile (a grant exchanged during the sync) are left alone."""
        now = now or _now()
        started = max(now, _now())
        vault = ({e.grant_id: _vault_fields(e) for e in vault_entries}
                 if vault_entries is not None else None)
        tally = _Tally()
        seen: set[str] = set()
        for batch in batches:
            listed = {g.grant_id: g for g in batch}
            seen.update(listed)
            self._apply_batch(listed, vault, now, tally)
        self._apply_unlisted_vault(seen, vault, now, started, tally)
        gone = 0
        for ids in self._unlisted_active(seen, started):
            unlisted = [g for g in ids if g not in seen]
            if unlisted:
                with self._db.write() as conn:
                    gone += conn.execute(update(rm_grants).where(
                        rm_grants.c.grant_id.in_(unlisted), rm_grants.c.status == "active",
                        rm_grants.c.refreshed_at <= started).values(
                        status="revoked", status_changed_at=now, refreshed_at=now,
                        fp=None)).rowcount or 0
                    _bump(conn)
        return GrantsApplied(len(seen), tally.written, tally.revoked + gone, tally.reactivated)

    def _unlisted_active(self, seen: set[str], started: datetime) -> Iterator[list[str]]:
        """Active rows written before `started` that may not be in `seen`, a batch at a
        time. Every listed grant has an active row by now, so when there are no more
        active rows than listed grants (one index count) there is nothing to walk."""
        c = rm_grants.c
        with self._db.read() as conn:
            active = int(conn.execute(select(func.count()).select_from(rm_grants)
                                      .where(c.status == "active")).scalar_one())
        if active <= len(seen):
            return iter(())
        return self._keys(c.grant_id, and_(c.status == "active", c.refreshed_at <= started))

    def _keys(self, col: Any, cond: Any) -> Iterator[list[str]]:
        """The values of a primary key column whose rows match `cond`, in key order, a
        batch at a time: keyset paging on the key alone (`cond` is tested here, so that
        each page is a key range and never a scan of an index on `cond`'s columns)."""
        after = ""
        while True:
            with self._db.read() as conn:
                page = conn.execute(select(col, cond).where(col > after)
                                    .order_by(col).limit(BATCH_SIZE)).all()
            ids = [r[0] for r in page if r[1]]
            if ids:
                yield ids
            if len(page) < BATCH_SIZE:
                return
            after = page[-1][0]

    def _apply_batch(self, listed: Mapping[str, Any],
                     vault: Mapping[str, tuple[Any, ...]] | None, now: datetime,
                     tally: _Tally) -> None:
        """One batch of listed grants: upsert the rows that changed."""
        if not listed:
            return
        ids = sorted(listed)
        with self._db.read() as conn:
            if vault is None:
                existing, vault = self._existing_and_vault(conn, ids)
            else:
                existing = self._existing(conn, ids)
        tally.listed_with_token += sum(1 for gid in ids if gid in vault)
        rows = tally.diff([_grant_row(gid, listed[gid], vault.get(gid), now) for gid in ids
                           if not tally.unchanged(gid, _grant_fp(listed[gid], vault.get(gid)),
                                                  "active", existing)], existing)
        if rows:
            self._upsert_grants(rows)

    #: `_existing_and_vault`'s statement: one row per id (the ids one parameter, a JSON
    #: array on SQLite, an array on PostgreSQL), the stored row and the vault entry each
    #: joined by its primary key. Written as SQL text: its rows need no type processing
    #: (strings and integers), and at 2,000 ids a batch the fetch is half an unchanged
    #: sync's own time when every id comes back twice through a typed union.
    _STORED_AND_VAULT = (
        "SELECT k.{key}, r.grant_id IS NOT NULL, r.fp, r.status, v.grant_id IS NOT NULL, "
        "v.masked_token, v.workspace_id, v.kryptos_user_id, v.customer_ref, v.user_kind "
        "FROM {ids} LEFT JOIN rm_grants r ON r.grant_id = k.{key} "
        "LEFT JOIN vault_tokens v ON v.grant_id = k.{key}")

    def _existing_and_vault(self, conn: Connection, ids: Sequence[str]
                            ) -> tuple[dict[str, tuple[Any, str]], dict[str, tuple[Any, ...]]]:
        """`_existing` and `_vault_of` in one statement (one round trip a batch)."""
        if self._db.is_sqlite:
            sql = self._STORED_AND_VAULT.format(key="value", ids="json_each(:ids) AS k")
            param: Any = json.dumps(list(ids))
        else:
            sql = self._STORED_AND_VAULT.format(key="id",
                                                ids="unnest(CAST(:ids AS text[])) AS k(id)")
            param = list(ids)
        existing: dict[str, tuple[Any, str]] = {}
        fields: dict[str, tuple[Any, ...]] = {}
        for row in conn.execute(sql_text(sql), {"ids": param}).all():
            if row[1]:
                existing[row[0]] = (row[2], row[3])
            if row[4]:
                fields[row[0]] = tuple(row[5:])
        return existing, fields

    def _vault_of(self, conn: Connection, ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        return {r[0]: tuple(r[1:]) for r in conn.execute(
            select(*self._VAULT_COLS).where(_key_in(self._db, vault_tokens.c.grant_id, ids)))
            .all()}

    def _apply_unlisted_vault(self, seen: set[str], vault: Mapping[str, tuple[Any, ...]] | None,
                              now: datetime, started: datetime, tally: _Tally) -> None:
        """Tokens stored for grants the list did not name: revoked rows (tokens stored
        after the sync began are left for the next one)."""
        if vault is not None:
            given = vault
            chunks: Iterable[tuple[Sequence[str], Mapping[str, tuple[Any, ...]] | None,
                                   Mapping[str, tuple[Any, ...]]]] = (
                (ids, None, given) for ids in _chunks(
                    sorted(g for g in vault if g not in seen), BATCH_SIZE))
        elif self._stored_tokens() <= tally.listed_with_token:
            return  # every stored token belongs to a listed grant (one index count)
        else:
            chunks = self._tokens_without_active_row(started)
        for ids, stored, fields in chunks:
            ids = [g for g in ids if g not in seen]
            if not ids:
                continue
            if stored is None:
                with self._db.read() as conn:
                    stored = self._existing(conn, ids)
            existing = stored
            rows = tally.diff([_grant_row(g, None, fields[g], now) for g in ids
                               if g in fields and not tally.unchanged(
                                   g, _grant_fp(None, fields[g]), "revoked", existing)],
                              existing)
            if rows:
                self._upsert_grants(rows)

    def _tokens_without_active_row(self, started: datetime) -> Iterator[tuple[
            list[str], dict[str, tuple[Any, str]], dict[str, tuple[Any, ...]]]]:
        """Grants with a token stored before `started` whose row is missing or not active,
        a batch at a time (keyset on the vault's key, the row joined by its key), with
        what `_existing` and `_vault_of` would read of them (read in the same walk, so the
        revoked grants of every sync cost no second round trip). Every listed grant's row
        is active by now, so these are the unlisted tokens the sync must look at; a listed
        grant is never read twice."""
        v, r = vault_tokens.c, rm_grants.c
        after = ""
        while True:
            with self._db.read() as conn:
                page = conn.execute(
                    select(r.grant_id, r.fp, r.status, *self._VAULT_COLS)
                    .select_from(vault_tokens.outerjoin(rm_grants, r.grant_id == v.grant_id))
                    .where(v.grant_id > after, v.created_at <= started,
                           or_(r.grant_id.is_(None), r.status != "active"))
                    .order_by(v.grant_id).limit(BATCH_SIZE)).all()
            if page:
                yield ([p[3] for p in page],
                       {p[3]: (p[1], p[2]) for p in page if p[0] is not None},
                       {p[3]: tuple(p[4:]) for p in page})
            if len(page) < BATCH_SIZE:
                return
            after = page[-1][3]

    def _stored_tokens(self) -> int:
        with self._db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(vault_tokens))
                       .scalar_one())

    def _existing(self, conn: Connection, ids: Sequence[str]) -> dict[str, tuple[Any, str]]:
        return {r[0]: (r[1], r[2]) for r in conn.execute(
            select(rm_grants.c.grant_id, rm_grants.c.fp, rm_grants.c.status)
            .where(_key_in(self._db, rm_grants.c.grant_id, ids))).all()}

    def apply_grant(self, grant: Any, vault_entry: Any | None, *,
                    now: datetime | None = None) -> None:
        """One grant the console just created or changed (e.g. after a token exchange: the
        `Grant` or None when not listed yet, and its `VaultEntry`), shown at once."""
        now = now or _now()
        if grant is not None:
            gid = grant.grant_id
        elif vault_entry is not None:
            gid = vault_entry.grant_id
        else:
            raise StoreError("apply_grant needs the grant or its vault entry.")
        v = _vault_fields(vault_entry) if vault_entry is not None else None
        row = _grant_row(gid, grant, v, now)
        if grant is None:  # not listed yet: a new grant is active until a sync says otherwise
            row.update(status="active", fp=None)
        self._upsert_grants([row])

    def apply_stored_tokens(self, grant_ids: Sequence[str],
                            revoked: Iterable[str] = (), *,
                            now: datetime | None = None) -> int:
        """Tokens just stored in the vault for these grants (e.g. sandbox mode loading what
        the company's backend kept), shown at once as an exchange is: a grant with a stored
        token is active until a sync says otherwise, or revoked when the source said so
        (`revoked`). Rows already showing the same vault fields and status are left alone;
        others are written without a fingerprint, so the next full sync writes them whole.
        Returns how many rows were written."""
        now = now or _now()
        gone = set(revoked)
        ids = sorted(set(grant_ids))
        c = rm_grants.c
        rows = []
        with self._db.read() as conn:
            for batch in _chunks(ids, BATCH_SIZE):
                vault = self._vault_of(conn, batch)
                shown = {r[0]: tuple(r[1:]) for r in conn.execute(
                    select(c.grant_id, c.status, c.has_token, c.masked_token, c.workspace_id,
                           c.kryptos_user_id, c.customer_ref, c.user_kind)
                    .where(c.grant_id.in_(list(batch))))}
                for gid in batch:
                    v = vault.get(gid)
                    if v is None:  # not stored after all (removed meanwhile): nothing to show
                        continue
                    status = "revoked" if gid in gone else "active"
                    if shown.get(gid) == (status, True, *v):
                        continue
                    row = _grant_row(gid, None, v, now)
                    row.update(status=status, fp=None)
                    rows.append(row)
        if rows:  # one transaction (one flush) for the lot
            with self._db.write() as conn:
                for batch in _chunks(rows, BATCH_SIZE):
                    self._upsert_rows(conn, batch)
                _bump(conn)
        return len(rows)

    def request_full_sync(self) -> None:
        """Ask the sync worker (in whichever process holds it) for a full grants sync at
        its next step, e.g. after a vault import."""
        self.set_sync_state({"full_sync_requested": _now().isoformat()})

    def _upsert_grants(self, batch: Sequence[dict[str, Any]]) -> None:
        with self._db.write() as conn:
            self._upsert_rows(conn, batch)
            _bump(conn)

    def _upsert_rows(self, conn: Connection, batch: Sequence[dict[str, Any]]) -> None:
        stmt = _insert(self._db)(rm_grants)
        ex, cur = stmt.excluded, rm_grants.c
        keep = ("workspace_id", "created_at", "expires_at", "kryptos_user_id", "user_kind",
                "grants_seen_at")
        set_: dict[str, Any] = {name: ex[name] for name in (
            "status", "scopes", "customer_ref", "has_token", "masked_token", "refreshed_at",
            "fp")}
        set_.update({name: func.coalesce(ex[name], cur[name]) for name in keep})
        set_["status_changed_at"] = case((cur.status != ex.status, ex.status_changed_at),
                                         else_=cur.status_changed_at)
        user = func.coalesce(ex.kryptos_user_id, cur.kryptos_user_id)
        set_["search_text"] = (func.lower(ex.grant_id) + "\n"
                               + func.lower(func.coalesce(ex.customer_ref, "")) + "\n"
                               + func.lower(func.coalesce(user, "")))
        conn.execute(stmt.on_conflict_do_update(index_elements=["grant_id"], set_=set_),
                     list(batch))

    def _mark(self, grant_ids: Sequence[str], now: datetime) -> None:
        for batch in _chunks(list(grant_ids), BATCH_SIZE):
            with self._db.write() as conn:
                conn.execute(
                    update(rm_grants).where(rm_grants.c.grant_id.in_(batch),
                                            rm_grants.c.status == "active")
                    .values(status="revoked", status_changed_at=now, refreshed_at=now,
                            fp=None))
                _bump(conn)

    def mark_revoked(self, grant_id: str, *, now: datetime | None = None) -> None:
        """The console revoked this grant: show it revoked at once."""
        self._mark([grant_id], now or _now())

    def apply_integrations(self, grant_id: str, result: Sequence[Any] | IntegrationsError,
                           *, now: datetime | None = None) -> None:
        """Replace one grant's integrations (a list of services.kryptos Integration), or
        record that they could not be read (the previous rows are kept, flagged)."""
        self.apply_integrations_many([(grant_id, result)], now=now)

    def apply_integrations_many(
        self, results: Sequence[tuple[str, Sequence[Any] | IntegrationsError]], *,
        now: datetime | None = None, read_since: datetime | None = None,
    ) -> None:
        """`apply_integrations` for several grants in one transaction. Grants whose
        integrations did not change only get their times moved (the version stays);
        grants not in the read model are ignored. A webhook's mark (`mark_changed`) set
        before `read_since` (when the reads began; default `now`) is cleared: this read
        saw what it announced."""
        if not results:
            return
        now = now or _now()
        c = rm_grants.c
        fps = {gid: _integrations_fp(items) for gid, items in results}
        with self._db.write() as conn:
            conn.execute(update(rm_grants).where(
                c.grant_id.in_(list(fps)), c.changed_at.is_not(None),
                c.changed_at <= (read_since or now)).values(changed_at=None))
            before = dict(conn.execute(select(c.grant_id, c.integrations_fp).where(
                c.grant_id.in_(list(fps)))).all())
            same = [gid for gid, fp in fps.items() if gid in before and before[gid] == fp]
            if same:  # nothing new: only the times move, and the version stays
                conn.execute(update(rm_grants).where(c.grant_id.in_(same)).values(
                    integrations_refreshed_at=now, refreshed_at=now))
            changed = [(gid, items) for gid, items in results
                       if gid in before and gid not in same]
            if not changed:
                return
            read_ok = [(gid, items) for gid, items in changed
                       if not isinstance(items, IntegrationsError)]
            if read_ok:
                conn.execute(delete(rm_integrations).where(
                    rm_integrations.c.grant_id.in_([gid for gid, _ in read_ok])))
            rows = [{
                "grant_id": gid, "wallet_id": i.wallet_id, "name": (i.display_name or "")[:300],
                "provider": i.provider, "type": i.type, "status": i.status,
                "last_sync": i.last_synced_at, "transactions": i.total_transactions,
                "message": i.message, "limit_exceeded": bool(i.limit_exceeded),
                "refreshed_at": now,
            } for gid, items in read_ok for i in {x.wallet_id: x for x in items}.values()]
            if rows:
                conn.execute(rm_integrations.insert(), rows)
            for gid, items in changed:
                if isinstance(items, IntegrationsError):
                    values: dict[str, Any] = {"unreadable": True, "sync_state": "unreadable",
                                              "error_message": items.message[:500]}
                else:
                    values = _aggregate(items)
                conn.execute(update(rm_grants).where(c.grant_id == gid).values(
                    integrations_refreshed_at=now, refreshed_at=now,
                    integrations_fp=fps[gid], **values))
            _bump(conn)

    def apply_webhook_integration(self, grant_id: str, item: Any, *, webhook_id: str,
                                  received_at: datetime, deleted: bool = False) -> bool:
        """One integration as a webhook reported it (`integration.created|updated|failed`:
        a services.kryptos Integration; `deleted`: remove it), and the grant's aggregates
        (status, last sync, failures) recomputed. Idempotent on `webhook_id`; an event
        received before the worker last read the row is older news and ignored. False when
        nothing changed (unknown grant, a redelivery, older news)."""
        ri, c = rm_integrations.c, rm_grants.c
        with self._db.write() as conn:
            state = conn.execute(select(c.sync_state).where(c.grant_id == grant_id)).first()
            if state is None:
                return False
            cur = conn.execute(select(ri.webhook_id, ri.refreshed_at).where(
                ri.grant_id == grant_id, ri.wallet_id == item.wallet_id)).first()
            if cur is not None and (cur.webhook_id == webhook_id
                                    or cur.refreshed_at > received_at):
                return False
            conn.execute(delete(rm_integrations).where(ri.grant_id == grant_id,
                                                       ri.wallet_id == item.wallet_id))
            if not deleted:
                conn.execute(rm_integrations.insert().values(
                    grant_id=grant_id, wallet_id=item.wallet_id,
                    name=(item.display_name or "")[:300], provider=item.provider,
                    type=item.type, status=item.status, last_sync=item.last_synced_at,
                    transactions=item.total_transactions, message=item.message,
                    limit_exceeded=bool(item.limit_exceeded), refreshed_at=received_at,
                    webhook_id=webhook_id))
            facts = conn.execute(select(ri.status, ri.last_sync, ri.transactions)
                                 .where(ri.grant_id == grant_id)).all()
            values = _aggregate_facts([tuple(f) for f in facts])
            del values["unreadable"], values["error_message"]
            if state.sync_state == "unreadable":  # our token still cannot read it
                del values["sync_state"]
            # integrations_fp None: the worker's next read is written whatever it holds.
            conn.execute(update(rm_grants).where(c.grant_id == grant_id).values(
                refreshed_at=_now(), integrations_fp=None, **values))
            _bump(conn)
        return True

    def mark_changed(self, grant_id: str, at: datetime | None = None) -> bool:
        """A webhook said something about this grant changed (`at`: now, by this clock,
        the one `apply_integrations_many` clears marks by): the worker reads its
        integrations right after the failing ones (`due_for_integrations`). An earlier
        mark still waiting is kept (first come, first read). Nothing a page shows moves,
        so the version stays. False when the grant is unknown."""
        c = rm_grants.c
        with self._db.write() as conn:
            return bool(conn.execute(update(rm_grants).where(c.grant_id == grant_id).values(
                changed_at=func.coalesce(c.changed_at, at or _now()))).rowcount)

    def apply_userinfo(self, grant_id: str, facts: UserFacts | None, *,
                       now: datetime | None = None) -> None:
        """Record what user info said (None: it could not be read; only the time is kept,
        so the worker does not ask again at once). Guests: the limit in force (None means
        the limiter is off). Linked users have no limit."""
        now = now or _now()
        values: dict[str, Any] = {"userinfo_refreshed_at": now}
        if facts is not None:
            values.update(kryptos_user_id=facts.kryptos_user_id, refreshed_at=now,
                          user_kind="guest" if facts.is_guest else "linked")
            if facts.is_guest:
                values.update(transaction_limit=facts.transaction_limit,
                              limiter_enabled=facts.transaction_limit is not None,
                              limit_source="userinfo", limit_updated_at=now)
            else:
                values.update(transaction_limit=None, limiter_enabled=None, limit_source=None)
            values["search_text"] = (func.lower(rm_grants.c.grant_id) + "\n"
                                     + func.lower(func.coalesce(rm_grants.c.customer_ref, ""))
                                     + "\n" + literal(facts.kryptos_user_id.lower()))
        c = rm_grants.c
        facts_cols = ("kryptos_user_id", "user_kind", "transaction_limit", "limiter_enabled",
                      "limit_source")
        with self._db.write() as conn:
            row = conn.execute(select(*(c[k] for k in facts_cols))
                               .where(c.grant_id == grant_id)).first()
            if row is None:
                return
            current = dict(zip(facts_cols, row, strict=True))
            if current["limiter_enabled"] is not None:
                current["limiter_enabled"] = bool(current["limiter_enabled"])
            if facts is None or all(values[k] == current[k] for k in facts_cols):
                # nothing new: only the time moves, and the version stays
                conn.execute(update(rm_grants).where(c.grant_id == grant_id)
                             .values(userinfo_refreshed_at=now))
                return
            conn.execute(update(rm_grants).where(c.grant_id == grant_id).values(**values))
            _bump(conn)

    def apply_limit_change(self, grant_id: str, limit: int | None, limiter: bool | None, *,
                           now: datetime | None = None) -> None:
        """The console changed this Guest's limit (the API's answer: limit and limiter after
        the change; a None keeps what is stored)."""
        now = now or _now()
        values: dict[str, Any] = {"user_kind": "guest", "limit_source": "console",
                                  "limit_updated_at": now, "refreshed_at": now}
        if limit is not None:
            values["transaction_limit"] = limit
        if limiter is not None:
            values["limiter_enabled"] = limiter
        with self._db.write() as conn:
            conn.execute(update(rm_grants).where(rm_grants.c.grant_id == grant_id)
                         .values(**values))
            _bump(conn)

    def set_sync_state(self, values: Mapping[str, str | None]) -> None:
        """Upsert worker state (`rm_sync_state`); does not bump the version."""
        now = _now()
        stmt = _insert(self._db)(rm_sync_state)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at})
        with self._db.write() as conn:
            conn.execute(stmt, [{"name": k, "value": v, "updated_at": now}
                                for k, v in values.items()])

    def sync_state(self) -> dict[str, str | None]:
        with self._db.read() as conn:
            return {r.name: r.value for r in conn.execute(select(rm_sync_state))}

