"""The read model's queries (see services/store/readmodel/__init__.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    and_,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy import (
    text as sql_text,
)

from services.store.approvals import approval_grants
from services.store.errors import StoreError
from services.store.readmodel.models import (
    Counts,
    Freshness,
    GrantDetailRow,
    GrantFilter,
    GrantPage,
    PageCursor,
    RmGrant,
    RmIntegration,
)
from services.store.readmodel.rows import _CSV_CONVERTERS, _GRANT_COLUMNS, _aware, _grant
from services.store.readmodel.tables import (
    COUNT_CAP,
    CSV_CHUNK,
    CSV_COLUMNS,
    FILTER_FIRST_MAX,
    MAX_PAGE_SIZE,
    QUEUES,
    SORTS,
    rm_grants,
    rm_integrations,
    rm_sync_state,
)
from services.store.readmodel.writes import ReadModelWrites

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

_EARLIEST = datetime.min.replace(tzinfo=UTC)


class ReadModelQueries(ReadModelWrites):
    """The reads: the worker's queues, counts, pages, one grant, the CSV export, freshness.
    Every one is SQL with indexes: no Python loop over all rows."""

    # --- the worker's queues --------------------------------------------------------------

    def due_for_integrations(self, limit: int, *, older_than: datetime,
                             hot_older_than: datetime, hot_share: float = 0.5,
                             stale_share: float = 0.2) -> list[str]:
        """Active grants with a token whose integrations are due, in the order they
        matter: failing/syncing ones read before `hot_older_than` (up to `hot_share` of
        `limit`), then grants a webhook marked (`mark_changed`, oldest mark first), then
        the stalest (never read, then the oldest read before `older_than`). At least
        `stale_share` of `limit` is kept for the stalest, so a flood of webhooks cannot
        stop the pass over every grant. Each part is one seek of its own index."""
        c = rm_grants.c
        base = and_(c.status == "active", c.has_token.is_(True))
        out: list[str] = []
        with self._db.read() as conn:
            hot_n = max(0, min(limit, int(round(limit * hot_share))))
            if hot_n:
                hot: list[tuple[Any, str]] = []
                for state in ("failing", "syncing"):  # one ordered index range each
                    hot += conn.execute(select(c.integrations_refreshed_at, c.grant_id).where(
                        base, c.sync_state == state,
                        c.integrations_refreshed_at < hot_older_than)
                        .order_by(c.integrations_refreshed_at).limit(hot_n)).all()
                # `<` leaves NULL out; the fallback only keeps the key total for the types.
                out += [g for _, g in sorted(hot, key=lambda r: _aware(r[0]) or _EARLIEST)
                        ][:hot_n]
            marked_n = max(0, limit - len(out) - int(round(limit * stale_share)))
            if marked_n:
                out += [g for g in conn.execute(select(c.grant_id).where(
                    c.changed_at.is_not(None), base)
                    .order_by(c.changed_at).limit(marked_n + len(out))).scalars()
                    if g not in out][:marked_n]
            rest = limit - len(out)
            if rest > 0:
                seen = set(out)
                more = list(conn.execute(select(c.grant_id).where(
                    base, c.integrations_refreshed_at.is_(None))
                    .limit(rest + len(seen))).scalars())
                if len(more) < rest + len(seen):
                    more += conn.execute(select(c.grant_id).where(
                        base, c.integrations_refreshed_at < older_than)
                        .order_by(c.integrations_refreshed_at)
                        .limit(rest + len(seen))).scalars()
                out += [g for g in dict.fromkeys(more) if g not in seen][:rest]
        return out

    def due_for_userinfo(self, limit: int, *, older_than: datetime) -> list[str]:
        """Active grants with a token whose kind or limit is unknown and whose user info
        was not asked for since `older_than` (never asked first)."""
        c = rm_grants.c
        unknown = or_(c.user_kind.is_(None),
                      and_(c.user_kind == "guest", c.limit_source.is_(None)))
        due = or_(c.userinfo_refreshed_at.is_(None), c.userinfo_refreshed_at < older_than)
        with self._db.read() as conn:
            return list(conn.execute(
                select(c.grant_id).where(c.status == "active", c.has_token.is_(True),
                                         unknown, due)
                .order_by(c.userinfo_refreshed_at.is_not(None), c.userinfo_refreshed_at,
                          c.grant_id)
                .limit(limit)).scalars())

    def active_with_token(self) -> list[str]:
        with self._db.read() as conn:
            return list(conn.execute(select(rm_grants.c.grant_id).where(
                rm_grants.c.status == "active", rm_grants.c.has_token.is_(True))
                .order_by(rm_grants.c.grant_id)).scalars())

    def guests_with_token(self) -> list[str]:
        c = rm_grants.c
        with self._db.read() as conn:
            return list(conn.execute(select(c.grant_id).where(
                c.status == "active", c.has_token.is_(True),
                or_(c.user_kind.is_(None), c.user_kind == "guest"))
                .order_by(c.grant_id)).scalars())

    # --- queries -------------------------------------------------------------------------

    def counts(self) -> Counts:
        """Overview counts and work queues: one SQL scan, cached per `version()` (a
        primary-key read), so reruns and other sessions of this process share it until
        something is written (by any process)."""
        version = self.version()
        cached = self._counts_cache
        if cached is not None and cached[0] == version:
            return cached[1]
        counts = self._count()
        with self._cache_lock:
            self._counts_cache = (version, counts)
        return counts

    def row_count(self) -> int:
        """How many rows (grants) the read model holds: an index-only count (7 ms at
        300,000 rows where `counts()` scans every row, 200 ms), cached per `version()`
        like `counts()`, whose total it reuses when that is current."""
        version = self.version()
        for cached in (self._counts_cache, self._rows_cache):
            if cached is not None and cached[0] == version:
                value = cached[1]
                return value.total if isinstance(value, Counts) else int(value)
        with self._db.read() as conn:
            rows = int(conn.execute(select(func.count()).select_from(rm_grants)).scalar_one())
        with self._cache_lock:
            self._rows_cache = (version, rows)
        return rows

    def _count(self) -> Counts:
        c = rm_grants.c
        active = c.status == "active"

        def n(cond: Any) -> Any:
            return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

        def total(col: Any) -> Any:
            return func.coalesce(func.sum(case((active, col), else_=0)), 0)

        q = select(
            func.count(), n(active), n(c.user_kind == "guest"), n(c.user_kind == "linked"),
            n(c.user_kind.is_(None)), n(c.has_token.is_(True)),
            n(and_(active, c.n_failing > 0)), n(and_(active, c.n_syncing > 0)),
            n(and_(active, c.n_never_synced > 0)), n(and_(active, c.unreadable.is_(True))),
            n(and_(active, c.has_token.is_(False))), total(c.n_integrations),
            total(c.n_failing), total(c.n_syncing),
            n(and_(active, c.has_token.is_(True), c.integrations_refreshed_at.is_(None))),
        )
        with self._db.read() as conn:
            r = [int(x) for x in conn.execute(q).one()]
        queues: dict[str, int] = dict(zip(QUEUES, r[6:11], strict=True))
        return Counts(total=r[0], active=r[1], revoked=r[0] - r[1], guest=r[2], linked=r[3],
                      unknown_kind=r[4], with_token=r[5], without_token=r[0] - r[5],
                      queues=queues, integrations=r[11], integrations_failing=r[12],
                      integrations_syncing=r[13], never_refreshed=r[14])

    def _tier_limit(self, name: str) -> int | None:
        for t in self._tiers:
            if t.name.lower() == name.strip().lower():
                return t.limit
        raise StoreError(f"Unknown tier '{name}'.")

    def _limit_cond(self, limit: Any) -> Any:
        c = rm_grants.c
        if limit == "off":
            return c.limiter_enabled.is_(False)
        if limit == "unknown":
            return c.limit_source.is_(None)
        if limit == "custom":
            known = [t.limit for t in self._tiers if t.limit is not None]
            cond = and_(c.limiter_enabled.is_(True), c.transaction_limit.is_not(None))
            return and_(cond, c.transaction_limit.not_in(known)) if known else cond
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise StoreError("limit must be a whole number, 'off', 'unknown' or 'custom'.")
        return and_(c.limiter_enabled.is_(True), c.transaction_limit == limit)

    def _where(self, f: GrantFilter, conn: Connection | None = None) -> list[Any]:
        """The filter as SQL conditions. `conn`: where a substring search may first count
        its trigram matches (SQLite), to choose between the trigram table and a walk."""
        c = rm_grants.c
        conds: list[Any] = []
        if f.search and f.search.strip():
            needle = f.search.strip().lower()
            if f.search_mode == "prefix":
                conds.append(or_(*(self._prefix(func.lower(col), needle)
                                   for col in (c.grant_id, c.customer_ref, c.kryptos_user_id))))
            else:
                conds.append(self._substring(needle, conn))
        if f.status:
            conds.append(c.status == f.status)
        if f.kind:
            conds.append(c.user_kind.is_(None) if f.kind == "unknown" else c.user_kind == f.kind)
        if f.has_token is not None:
            conds.append(c.has_token.is_(bool(f.has_token)))
        if f.integration_status == "never":
            conds.append(c.sync_state.is_(None))
        elif f.integration_status:
            conds.append(c.sync_state == f.integration_status)
        if f.queue:
            # Written as the partial indexes of 0013_rm_million are (literal values), so
            # that the planners match a queue to its own small index; on SQLite `+status`
            # keeps the wide status indexes out of the choice (it has no statistics).
            sqlite = self._db.is_sqlite
            conds.append(sql_text(("+" if sqlite else "") + "rm_grants.status = 'active'"))
            conds.append(_queue_cond(f.queue, sqlite))
        if f.limit is not None:
            conds.append(self._limit_cond(f.limit))
        if f.tier:
            tier_limit = self._tier_limit(f.tier)
            conds.append(self._limit_cond("off" if tier_limit is None else tier_limit))
        if f.awaiting_approval:
            conds.append(c.grant_id.in_(select(approval_grants.c.grant_id)))
        if f.customer_ref:
            conds.append(func.lower(c.customer_ref) == f.customer_ref.strip().lower())
        if f.kryptos_user_id:
            conds.append(func.lower(c.kryptos_user_id) == f.kryptos_user_id.strip().lower())
        if f.workspace_id:
            conds.append(c.workspace_id == f.workspace_id.strip())
        return conds

    def _substring(self, needle: str, conn: Connection | None) -> Any:
        """`needle` in the grant id, customer reference or Kryptos user id. PostgreSQL: a
        LIKE its trigram index (pg_trgm) serves; a needle longer than `_TRIGRAM_TAIL`
        gives the index only its last `_TRIGRAM_TAIL` characters and is rechecked whole
        on the rows found (see `_like_tail`). SQLite: the FTS5 trigram table's matches
        (needles of 3 characters or more) when there are at most `COUNT_CAP` of them (read
        once, then the rows by rowid); more matches are dense enough that walking the
        page's sort index with LIKE finds a page sooner than collecting them all."""
        c = rm_grants.c
        like = c.search_text.like(f"%{_like_escape(needle)}%", escape="\\")
        if not self._db.is_sqlite:
            return like if len(needle) <= _TRIGRAM_TAIL else _like_tail(needle)
        if len(needle) < 3:
            return like
        phrase = '"' + needle.replace('"', '""') + '"'
        matches = select(literal_column("rowid", Integer)).select_from(
            sql_text("rm_grants_fts")).where(sql_text("rm_grants_fts MATCH :phrase")
                                         .bindparams(phrase=phrase))
        rowid = literal_column("rm_grants.rowid", Integer)
        if conn is None:
            return rowid.in_(matches)
        found = list(conn.execute(matches.limit(COUNT_CAP + 1)).scalars())
        return like if len(found) > COUNT_CAP else rowid.in_(found)

    def exact_matches(self, text: str, limit: int = 2) -> dict[str, tuple[str, ...]]:
        """The grants whose id, customer reference, Kryptos user id or workspace is exactly
        `text` (ids and references case-insensitively), at most `limit` of each, in that
        order of fields. Each is an index lookup: the id, reference and user id on the primary
        key and the lower-case expression indexes, the workspace on
        `ix_rm_grants_workspace` (workspace, grant id)."""
        needle = text.strip()
        low = needle.lower()
        c = rm_grants.c
        wheres = {
            "grant_id": or_(c.grant_id == needle, func.lower(c.grant_id) == low),
            "customer_ref": func.lower(c.customer_ref) == low,
            "kryptos_user_id": func.lower(c.kryptos_user_id) == low,
            "workspace_id": c.workspace_id == needle,
        }
        out: dict[str, tuple[str, ...]] = {}
        with self._db.read() as conn:
            for field, cond in wheres.items():
                out[field] = tuple(conn.execute(
                    select(c.grant_id).where(cond).order_by(c.grant_id).limit(limit)).scalars())
        return out

    def _prefix(self, expr: Any, needle: str) -> Any:
        """`expr` starts with `needle`, in a form the lower(...) indexes serve: a range on
        SQLite (binary order), LIKE on PostgreSQL (text_pattern_ops indexes)."""
        if not self._db.is_sqlite:
            return expr.startswith(needle, autoescape=True)
        return and_(expr >= needle, expr < needle + "\U0010ffff")

    def _ordered(self, query: Any, sort: str, descending: bool, *,
                 filter_first: bool = False) -> Any:
        """`query` ordered by `sort`, then grant id. `filter_first` (SQLite): sort the
        matching rows instead of walking the sort's index (SQLite keeps no statistics on
        the filter columns, and walking 100,000 rows in order to find a few matches is
        slower than sorting the few: `+col` keeps the sort off the index)."""
        if sort not in SORTS:
            raise StoreError(f"Cannot sort by '{sort}'; choose one of {', '.join(SORTS)}.")
        cols: list[ColumnElement[Any]] = (
            [SORTS[sort]] if sort == "grant_id" else [SORTS[sort], rm_grants.c.grant_id])
        if filter_first and self._db.is_sqlite:
            cols = [literal_column(f"+rm_grants.{c.name}") for c in cols]
        return query.order_by(*(c.desc() if descending else c.asc() for c in cols))

    def page(self, filters: GrantFilter | None = None, sort: str = "created_at",
             page: int = 1, page_size: int = 100, *, descending: bool = False,
             cursor: PageCursor | None = None) -> GrantPage:
        """One page of grants, filtered, sorted and counted in SQL. Without `cursor`, page
        number `page` (an OFFSET: for the first pages); with one, the page after or before
        it by keyset (an index seek however deep; `page` is then only the number shown).
        The total is counted up to `COUNT_CAP` matches (`total_exact`)."""
        f = filters or GrantFilter()
        if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise StoreError(f"page must be >= 1 and page_size 1-{MAX_PAGE_SIZE}.")
        if sort not in SORTS:
            raise StoreError(f"Cannot sort by '{sort}'; choose one of {', '.join(SORTS)}.")
        with self._db.read() as conn:
            conds = self._where(f, conn)
            total, exact = self._total(conn, conds)
            small = exact and total <= FILTER_FIRST_MAX
            if cursor is None:
                # Deferred join: the page's ids from an index walk, then only those rows.
                ids_q = self._ordered(select(rm_grants.c.grant_id).where(*conds), sort,
                                      descending, filter_first=small)
                ids = list(conn.execute(
                    ids_q.limit(page_size).offset((page - 1) * page_size)).scalars())
            else:
                size = page_size
                if cursor.before and cursor.grant_id is None and exact and total:
                    # The last page as page numbers count it: what is left after the
                    # full pages, so the pages before it line up with the first one.
                    page = -(-total // page_size)
                    size = total - (page - 1) * page_size
                ids = self._walk(conn, conds, sort, descending, cursor, size, small)
                if cursor.before and cursor.grant_id is not None and len(ids) < page_size:
                    page = 1  # back at the start: the first page, full
                    ids = self._walk(conn, conds, sort, descending, None, page_size, small)
            rows = conn.execute(select(*_GRANT_COLUMNS)
                                .where(rm_grants.c.grant_id.in_(ids))).all() if ids else []
            last = self._last_full_sync(conn)
        by_id = {r.grant_id: r for r in rows}
        return GrantPage(tuple(_grant(by_id[g], last) for g in ids if g in by_id), total,
                         page, page_size, total_exact=exact, sort=sort)

    def grant_ids(self, filters: GrantFilter | None, limit: int) -> list[str]:
        """Up to `limit` ids of the grants matching `filters`, by grant id, stopped at
        `limit`; never the rows themselves. A status and kind filter is one range of
        `ix_rm_grants_pick` (status, user_kind, grant_id), already in grant id order."""
        if limit < 1:
            raise StoreError("limit must be at least 1.")
        with self._db.read() as conn:
            conds = self._where(filters or GrantFilter(), conn)
            return list(conn.execute(select(rm_grants.c.grant_id).where(*conds)
                                     .order_by(rm_grants.c.grant_id).limit(limit)).scalars())

    def _total(self, conn: Connection, conds: Sequence[Any]) -> tuple[int, bool]:
        """How many rows match: every row (`row_count`, cached per version), or the
        matches counted up to `COUNT_CAP` (a walk that stops there) and whether that is
        all of them."""
        if not conds:
            return self.row_count(), True
        found = int(conn.execute(select(func.count()).select_from(
            select(literal_column("1")).select_from(rm_grants).where(*conds)
            .limit(COUNT_CAP + 1).subquery())).scalar_one())
        return (found, True) if found <= COUNT_CAP else (COUNT_CAP, False)

    def _walk(self, conn: Connection, conds: Sequence[Any], sort: str, descending: bool,
              cursor: PageCursor | None, limit: int, filter_first: bool) -> list[str]:
        """Up to `limit` grant ids in page order after `cursor` (before it, read
        backwards and returned in page order, when `cursor.before`), by keyset: each
        part a range of the sort's index. NULL sort values are a block of their own
        (first on SQLite in ascending order, last on PostgreSQL), walked by grant id."""
        backwards = cursor is not None and cursor.before
        desc = descending != backwards
        col, gid = SORTS[sort], rm_grants.c.grant_id
        after = cursor if cursor is not None and cursor.grant_id is not None else None

        def beyond(left: Any, right: Any) -> Any:
            return left < right if desc else left > right

        def run(where: list[Any], order: list[Any], n: int) -> list[str]:
            if filter_first and self._db.is_sqlite:
                order = [literal_column(f"+rm_grants.{o.name}") for o in order]
            q = select(gid).where(*conds, *where).order_by(
                *(o.desc() if desc else o.asc() for o in order)).limit(n)
            return list(conn.execute(q).scalars())

        if sort == "grant_id":
            ids = run([beyond(gid, after.grant_id)] if after else [], [gid], limit)
        else:
            nulls_first = self._db.is_sqlite != desc
            # The two blocks in walk order, and where the cursor stands.
            blocks = ["null", "value"] if nulls_first else ["value", "null"]
            if after is not None:
                here = "null" if after.value is None else "value"
                blocks = blocks[blocks.index(here):]
            ids = []
            for block in blocks:
                keyed = after is not None and block == ("null" if after.value is None
                                                         else "value")
                if block == "null":
                    where = [col.is_(None)]
                    if keyed:
                        where.append(beyond(gid, after.grant_id))  # type: ignore[union-attr]
                    ids += run(where, [gid], limit - len(ids))
                else:
                    where = [col.is_not(None)]
                    if keyed:
                        value = literal(after.value, col.type)  # type: ignore[union-attr]
                        where.append(beyond(tuple_(col, gid),
                                            tuple_(value, literal(after.grant_id))))  # type: ignore[union-attr]
                    ids += run(where, [col, gid], limit - len(ids))
                if len(ids) >= limit:
                    break
        return ids[::-1] if backwards else ids

    def grants_by_id(self, grant_ids: Sequence[str]) -> dict[str, RmGrant]:
        """The rows of these grants (primary-key lookups, 500 at a time); unknown ids are
        left out."""
        ids = list(dict.fromkeys(grant_ids))
        out: dict[str, RmGrant] = {}
        with self._db.read() as conn:
            last = self._last_full_sync(conn)
            for i in range(0, len(ids), 500):
                for r in conn.execute(select(*_GRANT_COLUMNS).where(
                        rm_grants.c.grant_id.in_(ids[i:i + 500]))):
                    out[r.grant_id] = _grant(r, last)
        return out

    def grant(self, grant_id: str) -> GrantDetailRow | None:
        """One grant's row and its integrations (two primary-key lookups)."""
        with self._db.read() as conn:
            row = conn.execute(select(*_GRANT_COLUMNS)
                               .where(rm_grants.c.grant_id == grant_id)).first()
            if row is None:
                return None
            items = conn.execute(select(rm_integrations)
                                 .where(rm_integrations.c.grant_id == grant_id)
                                 .order_by(rm_integrations.c.wallet_id)).all()
            last = self._last_full_sync(conn)
        return GrantDetailRow(_grant(row, last), tuple(
            RmIntegration(**{k: getattr(r, k) for k in RmIntegration.__dataclass_fields__})
            for r in items))

    def csv_chunks(self, filters: GrantFilter | None = None, sort: str = "grant_id", *,
                   descending: bool = False, chunk: int = CSV_CHUNK) -> Iterator[str]:
        """The filtered grants as CSV text, one piece per `chunk` rows (header first)."""
        for text, _ in self._csv_pieces(filters, sort, descending, chunk):
            yield text

    def _csv_pieces(self, filters: GrantFilter | None, sort: str, descending: bool,
                    chunk: int) -> Iterator[tuple[str, int]]:
        """CSV pieces with their row counts, read by keyset paging on the grant id (offset
        paging on another sort key), each chunk in its own short read transaction."""
        conds = self._where(filters or GrantFilter())
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        yield buf.getvalue(), 0
        cols = [rm_grants.c[name] for name in CSV_COLUMNS]
        base = self._ordered(select(*cols).where(*conds), sort, descending)
        after: str | None = None
        offset = 0
        while True:
            q = base
            if sort == "grant_id":
                if after is not None:
                    gid = rm_grants.c.grant_id
                    q = q.where(gid < after if descending else gid > after)
                q = q.limit(chunk)
            else:
                q = q.limit(chunk).offset(offset)
            with self._db.read() as conn:
                rows = conn.execute(q).all()
            buf.seek(0)
            buf.truncate()
            writer.writerows([conv(v) for conv, v in zip(_CSV_CONVERTERS, r, strict=True)]
                             for r in rows)
            if rows:
                yield buf.getvalue(), len(rows)
            if len(rows) < chunk:
                return
            offset += len(rows)
            after = rows[-1][0]

    def iter_csv(self, filters: GrantFilter | None, out: SupportsWrite[str],
                 sort: str = "grant_id", *,
                 descending: bool = False, chunk: int = CSV_CHUNK) -> int:
        """Write `csv_chunks(...)` to `out`; returns the number of grant rows written."""
        written = 0
        for text, rows in self._csv_pieces(filters, sort, descending, chunk):
            out.write(text)
            written += rows
        return written

    def _last_full_sync(self, conn: Connection) -> datetime | None:
        value = conn.execute(select(rm_sync_state.c.value).where(
            rm_sync_state.c.name == "last_full_sync")).scalar()
        return datetime.fromisoformat(value) if value else None

    def freshness(self) -> Freshness:
        """How fresh the rows are, from indexes alone (no scan of the rows): the row
        count (`row_count`), the oldest and newest `refreshed_at` and the oldest
        integrations read (one seek each), and the never-read grants counted up to
        `COUNT_CAP` (a walk of the worker's queue index that stops there: right after a
        load most grants were never read, and counting them all read every row on
        PostgreSQL; `never_refreshed_exact` False means "more than `COUNT_CAP`")."""
        c = rm_grants.c
        ready = (c.status == "active", c.has_token.is_(True))

        def first(col: Any, *where: Any, desc: bool = False) -> Any:
            return select(col).where(col.is_not(None), *where).order_by(
                col.desc() if desc else col).limit(1).scalar_subquery()

        q = select(first(c.refreshed_at), first(c.refreshed_at, desc=True),
                   first(c.integrations_refreshed_at, *ready),
                   _capped_count(*ready, c.integrations_refreshed_at.is_(None)))
        rows = self.row_count()
        with self._db.read() as conn:
            r = conn.execute(q).one()
            last = self._last_full_sync(conn)
        never = int(r[3] or 0)
        return Freshness(rows, _aware(r[0]), _aware(r[1]), _aware(r[2]),
                         min(never, COUNT_CAP), last, never_refreshed_exact=never <= COUNT_CAP)

    def stale_rows(self, older_than: datetime) -> tuple[int, bool]:
        """Active grants with a token whose integrations were read before `older_than`
        or never, counted up to `COUNT_CAP` (two ranges of the worker's queue index, each
        walk stopped there), and whether that is all of them."""
        c = rm_grants.c
        ready = (c.status == "active", c.has_token.is_(True))
        with self._db.read() as conn:
            found = sum(int(conn.execute(select(_capped_count(*ready, cond))).scalar_one())
                        for cond in (c.integrations_refreshed_at.is_(None),
                                     c.integrations_refreshed_at < older_than))
        return (found, True) if found <= COUNT_CAP else (COUNT_CAP, False)


#: How many of a substring needle's last characters PostgreSQL's trigram index is given.
_TRIGRAM_TAIL = 8


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_tail(needle: str) -> Any:
    """`needle` in `search_text` on PostgreSQL, the trigram index given only the needle's
    last `_TRIGRAM_TAIL` characters. The index intersects the posting lists of every
    trigram of its pattern, and an identifier's first characters are shared by every row
    ("cgrant_", "cust-", "anon_": lists as long as the table), while its last ones are
    what tells rows apart: a grant id's 26 trigrams took 19.5 ms at a million rows, its
    last 8 characters' 6 trigrams 1.7 ms. The whole needle is then tested on the rows
    found, as `search_text || ''` (an expression the index cannot serve, so the planner
    does not hand it the whole pattern again)."""
    c = rm_grants.c
    tail = c.search_text.like(f"%{_like_escape(needle[-_TRIGRAM_TAIL:])}%", escape="\\")
    whole = (c.search_text.op("||")(literal("")))
    return and_(tail, whole.like(f"%{_like_escape(needle)}%", escape="\\"))


def _capped_count(*conds: Any) -> Any:
    """How many rows of rm_grants match `conds`, counted up to `COUNT_CAP` + 1: a scalar
    subquery over a LIMITed walk, so the count stops there whatever the plan."""
    return select(func.count()).select_from(
        select(literal_column("1")).select_from(rm_grants).where(*conds)
        .limit(COUNT_CAP + 1).subquery()).scalar_subquery()


def _queue_cond(queue: str, sqlite: bool) -> Any:
    """A work queue's condition with literal values, as its partial index states it."""
    if queue == "not_readable":
        return sql_text("rm_grants.unreadable IS " + ("1" if sqlite else "true"))
    if queue == "no_token":
        return sql_text("rm_grants.has_token IS " + ("0" if sqlite else "false"))
    column = {"failing": "n_failing", "syncing": "n_syncing",
              "never_synced": "n_never_synced"}[queue]
    return sql_text(f"rm_grants.{column} > 0")
