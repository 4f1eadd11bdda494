"""`Operations`: every use case of the console, each taking the acting user first.

Order of every use case:

1. **Permission.** The actor's roles are checked against `PERMISSIONS` before anything else.
   A refusal writes one `denied` audit event and raises `PermissionDenied`.
2. **Validation.** Inputs are checked before any call. A bad input raises
   `ValidationError(field, reason)` and is *not* audited: nothing was attempted, nothing was
   sent, and the page shows the message next to the field. (A refusal for permissions is
   always audited as `denied`.)
3. **Audit `requested`**, then the pre-reads and the call, then **`succeeded`** or
   **`failed`** (with the API's error code, or our own code for a refusal made before the
   call, e.g. `CSV_RESYNC_LATEST_UNSUPPORTED`, `NOT_ANON_USER`, `NO_USER_ID`). The pair share
   one correlation id (uuid4). No token ever goes into `params`, `before` or `after`.

`Operations` holds no per-user state and is safe to share between Streamlit sessions: the
client's session is thread-safe, the store serialises its own writes, and each call that
fans out makes its own bounded thread pool.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

from services.kryptos.errors import (
    KryptosError,
    MalformedResponseError,
    RateLimitedError,
    ServerError,
)
from services.kryptos.models import Grant, Integration, UserInfo, mask_token
from services.operations import validation as v
from services.operations.errors import (
    NotFound,
    OperationError,
    PermissionDenied,
    UpstreamError,
    ValidationError,
)
from services.operations.models import (
    BulkItem,
    BulkResult,
    GrantDetail,
    GrantRow,
    LimitChange,
    LinkTokenIssued,
    Overview,
    Part,
    ResyncOutcome,
)
from services.operations.permissions import Actor, Permission, can
from services.settings import Tier
from services.store.errors import StoreError

log = logging.getLogger(__name__)

def _safe_target(value: object) -> str | None:
    """A refused request's target as typed, for the audit row, only when it looks like a
    grant or wallet id: whatever else was pasted there (a token, say) is not recorded."""
    if isinstance(value, str) and _TARGET_RE.match(value) and not value.startswith(
            _TOKEN_PREFIXES):
        return value
    return None


_TOKEN_PREFIXES = ("cat_", "public_", "link_")


_TARGET_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")

#: Added to a failed change whose request reached Kryptos: it may have acted all the same.
UNCERTAIN_OUTCOME = (
    " Kryptos may have made the change before failing: refresh and check before trying again."
)

T = TypeVar("T")

# Audit actions.
A_REVOKE = "grant.revoke"
A_RESYNC = "integration.resync"
A_LIMIT = "guest.limit.update"
A_TIER = "guest.tier.apply"
A_TIER_BULK = "guest.tier.apply.bulk"
A_LIMIT_BULK = "guest.limit.update.bulk"
A_LINK = "link_token.create"
A_EXCHANGE = "token.exchange"
A_IMPORT = "token.import"
A_EXPORT = "audit.export"
A_VERIFY = "audit.verify"
A_VIEW = "grant.view"
A_AUDIT_READ = "audit.read"
A_LOGIN = "auth.login"
A_LOGIN_FAILED = "auth.login_failed"
A_LOGOUT = "auth.logout"

NO_TOKEN_NOTE = "No access token is stored for this grant, so Kryptos cannot be asked for this."
CSV_LATEST_MESSAGE = (
    'Resync refused: mode "latest" is not valid for CSV imports (CSVs have no incremental '
    'concept); use "from_start" instead, which wipes and re-ingests the uploaded file.'
)
NOT_ANON_MESSAGE = (
    "Limit not changed: this user is not a Guest account. Transaction limits only apply to "
    "Guest users; Linked users manage their own volume."
)
LATEST_EVENTS = 10
CUSTOM_LIMIT = "custom limit"  # BulkResult.tier of an apply_limit run


_UNREAD: Any = object()  # "the caller did not read the vault entry": read it


def audit_anchor_file(settings: Any) -> Any:
    """The settings' audit anchor file (`effective_audit_anchor_file`); the default one's
    folder (the console's data folder) is created if missing. Shared by `from_settings`
    and the command-line tools (`services/operations/cli_audit.py`)."""
    anchor = settings.effective_audit_anchor_file
    if settings.audit_anchor_file is None:  # the default, in the console's own folder
        try:
            anchor.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # appends still work; the log warns (once a minute)
            log.warning("cannot create %s for the audit anchor: %s", anchor.parent, exc)
    return anchor


def _store():  # imported lazily so that `services.operations` imports without the store
    import services.store as store

    return store


@dataclass
class _Pace:
    """Shared state of one bulk run's workers: the pause after a 429 that survived the
    client's retries (all workers wait), and whether the API's PATCH answers carry the
    `previous_*` values (then the user-info pre-read is not needed)."""

    until: float = 0.0
    api_reports_previous: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self) -> None:
        with self.lock:
            delay = self.until - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def pause(self, seconds: float) -> None:
        with self.lock:
            self.until = max(self.until, time.monotonic() + seconds)


@dataclass(frozen=True)
class _Before:
    """A grant's limit before a change: raw limit and limiter (user info gives the effective
    limit, so limiter = limit is not None), Guest or not, whether anything was known, and the
    vault entry as it now is."""

    limit: int | None
    limiter: bool | None
    is_guest: bool | None
    known: bool
    entry: Any = None


@dataclass(frozen=True)
class _BulkPlan:
    """What one bulk run sends to every grant and how it is audited."""

    label: str  # BulkResult.tier: the tier's name or CUSTOM_LIMIT
    limit: int | None
    limiter: bool | None
    action: str  # per-grant audit action
    bulk_action: str  # summary audit action
    what: str  # for error messages
    params: Mapping[str, Any]


class Operations:
    """The console's use cases over a Kryptos client, an audit log and a token vault."""

    def __init__(
        self,
        client: Any,
        audit: Any,
        vault: Any,
        tiers: Iterable[Tier],
        *,
        max_workers: int = 8,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.client = client
        self.audit = audit
        self.vault = vault
        self._tiers = tuple(tiers)
        self.max_workers = max_workers

    @classmethod
    def from_settings(cls, settings: Any, client: Any = None) -> Operations:
        """Open the database (migrations applied), load the vault key, build the client."""
        store = _store()
        db = store.open_database(settings.effective_database_url)
        vault = store.TokenVault(db, store.load_vault_key(settings))
        if client is None:
            from services.kryptos.client import KryptosClient

            client = KryptosClient.from_settings(settings)
        anchor = audit_anchor_file(settings)
        return cls(client, store.AuditLog(db, anchor_file=anchor), vault, settings.tiers)

    def __repr__(self) -> str:
        return f"Operations(max_workers={self.max_workers}, tiers={len(self._tiers)})"

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self._tiers

    # --- audit and permission helpers -------------------------------------------------

    def _event(
        self,
        actor_username: str,
        actor_roles: Iterable[str],
        action: str,
        outcome: str,
        correlation_id: str,
        **fields: Any,
    ) -> Any:
        store = _store()
        if fields.get("target_id") is not None:
            fields["target_id"] = str(fields["target_id"])[:200]
        return self.audit.append(
            store.NewAuditEvent(
                actor_username=actor_username,
                actor_roles=tuple(sorted(actor_roles)),
                action=action,
                outcome=outcome,
                correlation_id=correlation_id,
                **fields,
            )
        )

    def require(
        self,
        actor: Actor,
        permission: Permission | str,
        action: str,
        target_type: str | None = None,
        target_id: str | None = None,
    ) -> None:
        """Raise `PermissionDenied` (after one `denied` audit event for `action`) unless the
        actor's roles allow `permission`. For a caller that refuses before any operation
        runs, e.g. a page reached by a user who may not use it."""
        try:
            perm = Permission(permission)
        except ValueError:
            raise ValueError(f"unknown permission {permission!r}") from None
        if not isinstance(action, str) or not action.strip():
            raise ValueError("action is required")
        self._require(actor, perm, action.strip(), target_type, target_id)

    def _require(
        self,
        actor: Actor,
        permission: Permission,
        action: str,
        target_type: str | None = None,
        target_id: object = None,
    ) -> None:
        if can(actor, permission):
            return
        self._event(
            actor.username,
            actor.roles,
            action,
            "denied",
            str(uuid.uuid4()),
            target_type=target_type,
            target_id=_safe_target(target_id),
            error_code="PERMISSION_DENIED",
            error_message=f"missing permission {permission.value}",
        )
        raise PermissionDenied(actor.username, permission.value)

    def _run_audited(
        self,
        actor: Actor,
        action: str,
        body: Callable[[], tuple[T, Mapping[str, Any] | None, Mapping[str, Any] | None]],
        *,
        what: str,
        target_type: str | None = None,
        target_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        reason: str | None = None,
        ticket: str | None = None,
        correlation_id: str | None = None,
    ) -> T:
        """requested -> body() -> succeeded(before, after) | failed(code). Returns body's value.

        `body` returns (value, before, after). A `KryptosError` becomes an `UpstreamError`.
        """
        cid = correlation_id or str(uuid.uuid4())
        common = dict(target_type=target_type, target_id=target_id, reason=reason, ticket=ticket)
        self._event(
            actor.username, actor.roles, action, "requested", cid,
            params=dict(params) if params else None, **common,
        )
        try:
            value, before, after = body()
        except KryptosError as exc:
            err = UpstreamError.from_kryptos(exc, what)
            if isinstance(exc, (ServerError, MalformedResponseError)):
                # The server got the request; whether it acted is unknown (timeouts and dropped
                # connections already say so in the client's own message).
                err.user_message += UNCERTAIN_OUTCOME
                err.args = (err.user_message,)
            self._failed(actor, action, cid, err, common)
            raise err from None
        except OperationError as err:
            self._failed(actor, action, cid, err, common)
            raise
        except StoreError as exc:  # e.g. a vault row that no longer decrypts
            err = OperationError(f"{what} failed: {exc.user_message}", code="STORE_ERROR")
            self._failed(actor, action, cid, err, common)
            raise err from None
        except Exception:
            # Whatever it was, the audit log must not be left with a lone `requested`.
            self._failed(actor, action, cid, OperationError(
                f"{what} failed: an unexpected error in the console (see its log).",
                code="INTERNAL"), common)
            raise
        self._event(
            actor.username, actor.roles, action, "succeeded", cid,
            before=dict(before) if before is not None else None,
            after=dict(after) if after is not None else None,
            **common,
        )
        return value

    def _failed(
        self, actor: Actor, action: str, cid: str, err: OperationError, common: Mapping[str, Any]
    ) -> None:
        self._event(
            actor.username, actor.roles, action, "failed", cid,
            error_code=err.code, error_message=err.user_message, request_id=err.request_id,
            **common,
        )

    # --- vault helpers -----------------------------------------------------------------

    def _entry(self, grant_id: str) -> Any:
        return self.vault.get(grant_id)

    def _token(self, grant_id: str, entry: Any = _UNREAD) -> str | None:
        """The plaintext token, or None when none is stored. Never logged or returned.

        `entry`: the grant's vault entry when the caller already read it (None: not stored).
        """
        store = _store()
        if entry is _UNREAD:
            entry = self.vault.get(grant_id)
        if entry is None:
            return None
        try:
            return self.vault.reveal(grant_id)
        except store.VaultEntryNotFound:
            return None

    def _remember(self, grant_id: str, entry: Any = _UNREAD, **fields: Any) -> Any:
        """Best effort: record what we learned (user id, Guest/Linked) in the vault.

        Compares with `entry` when given (else reads it) and writes only what differs.
        Returns the entry as it now is (None when the grant is not in the vault).
        """
        store = _store()
        if entry is _UNREAD:
            entry = self.vault.get(grant_id)
        if entry is None:
            return None
        changes = {k: val for k, val in fields.items() if val and getattr(entry, k, None) != val}
        if not changes:
            return entry
        try:
            return self.vault.update(grant_id, **changes)
        except store.StoreError as exc:
            log.warning("could not record %s for %s: %s", sorted(changes), grant_id, exc)
            return entry

    def _learn_from_userinfo(self, grant_id: str, info: UserInfo, entry: Any = _UNREAD) -> Any:
        return self._remember(
            grant_id,
            entry,
            user_kind="guest" if info.is_guest else "linked",
            kryptos_user_id=info.sub,
        )

    # --- reads -------------------------------------------------------------------------

    def _grant_rows(self) -> list[GrantRow]:
        try:
            grants: list[Grant] = self.client.list_grants()
        except KryptosError as exc:
            raise UpstreamError.from_kryptos(exc, "Listing grants") from None
        entries = {e.grant_id: e for e in self.vault.list()}
        rows: list[GrantRow] = []
        listed: set[str] = set()
        for g in grants:
            listed.add(g.grant_id)
            rows.append(_row(g.grant_id, g, entries.get(g.grant_id), "active"))
        for gid, e in entries.items():
            if gid not in listed:
                rows.append(_row(gid, None, e, "revoked"))
        return rows

    def list_grants(
        self,
        actor: Actor,
        search: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        has_token: bool | None = None,
    ) -> list[GrantRow]:
        """The API's grants joined with the vault, searched and filtered.

        `search` matches (case-insensitive substring) grant id, customer reference and
        workspace id; `status` is 'active'|'revoked'; `kind` is 'guest'|'linked'|'unknown';
        `has_token` filters on a stored token. Grants in the vault that the API no longer
        lists show as revoked.
        """
        self._require(actor, Permission.VIEW_GRANTS, A_VIEW)
        if status not in (None, "active", "revoked"):
            raise ValidationError("status", "must be 'active' or 'revoked'.")
        if kind not in (None, "guest", "linked", "unknown"):
            raise ValidationError("kind", "must be 'guest', 'linked' or 'unknown'.")
        needle = (search or "").strip().lower()
        out = []
        for r in self._grant_rows():
            if status and r.status != status:
                continue
            if kind and (r.user_kind or "unknown") != kind:
                continue
            if has_token is not None and r.has_token != has_token:
                continue
            if needle and not any(
                needle in (x or "").lower() for x in (r.grant_id, r.customer_ref, r.workspace_id)
            ):
                continue
            out.append(r)
        return out

    def grant_detail(self, actor: Actor, grant_id: str) -> GrantDetail:
        """Session, holdings, integrations and user info of one grant, read concurrently.

        The grants list is read at the same time. Each part fails on its own (its `error`
        set); a grant with no stored token gets a `note` on each part instead.
        """
        self._require(actor, Permission.VIEW_GRANTS, A_VIEW, "grant", grant_id)
        gid = v.grant_id(grant_id)
        entry = self._entry(gid)
        token = self._token(gid) if entry is not None else None
        c = self.client
        with ThreadPoolExecutor(max_workers=5, thread_name_prefix="grant-detail") as pool:
            grants_f = pool.submit(c.list_grants)
            if token is not None:
                futs: dict[str, Future[Any]] = {
                    "session": pool.submit(c.check_session, token),
                    "holdings": pool.submit(c.get_holdings, token),
                    "integrations": pool.submit(c.list_integrations, token),
                    "userinfo": pool.submit(c.get_userinfo, token),
                }
            else:
                futs = {}
            labels = {
                "session": "Checking the session",
                "holdings": "Reading holdings",
                "integrations": "Reading integrations",
                "userinfo": "Reading user info",
            }
            parts: dict[str, Part[Any]] = {}
            for name, label in labels.items():
                if name not in futs:
                    parts[name] = Part(note=NO_TOKEN_NOTE)
                    continue
                try:
                    value = futs[name].result()
                except KryptosError as exc:
                    parts[name] = Part(error=UpstreamError.from_kryptos(exc, label))
                    continue
                if name == "integrations":
                    value = tuple(value)
                parts[name] = Part(value=value)
            try:
                grants = grants_f.result()
                grants_error: OperationError | None = None
            except KryptosError as exc:
                grants, grants_error = None, UpstreamError.from_kryptos(exc, "Listing grants")
        notes: list[str] = []
        if grants is not None:
            match = next((g for g in grants if g.grant_id == gid), None)
            if match is None and entry is None:
                raise NotFound(
                    f"Grant {gid} is neither listed by Kryptos nor stored in the vault.",
                    code="GRANT_NOT_FOUND",
                )
            status = "active" if match is not None else "revoked"
        else:
            match = None
            session = parts["session"].value
            invalid = session is not None and not session.has_valid_session
            status = "revoked" if invalid else "active"
            notes.append(f"The grants list could not be read: {grants_error.user_message}")
        if entry is None:
            notes.append(
                "No access token is stored for this grant: session, holdings, integrations "
                "and user info cannot be read. Only what the grants list knows is shown."
            )
        if parts["userinfo"].ok:
            self._learn_from_userinfo(gid, parts["userinfo"].value)
        elif parts["session"].ok and parts["session"].value.user_id:
            self._remember(gid, kryptos_user_id=parts["session"].value.user_id)
        row = _row(gid, match, self._entry(gid) if entry is not None else None, status)
        return GrantDetail(
            grant=row,
            session=parts["session"],
            holdings=parts["holdings"],
            integrations=parts["integrations"],
            userinfo=parts["userinfo"],
            notes=tuple(notes),
        )

    def integration(self, actor: Actor, grant_id: str, wallet_id: str) -> Integration:
        """One integration of a grant (for polling a resync's progress)."""
        self._require(actor, Permission.VIEW_GRANTS, A_VIEW, "grant", grant_id)
        gid, wid = v.grant_id(grant_id), v.wallet_id(wallet_id)
        token = self._token(gid)
        if token is None:
            raise NotFound(f"No access token is stored for grant {gid}.", code="NO_TOKEN")
        try:
            items = self.client.list_integrations(token)
        except KryptosError as exc:
            raise UpstreamError.from_kryptos(exc, "Reading integrations") from None
        for it in items:
            if it.wallet_id == wid:
                return it
        raise NotFound(
            f"Grant {gid} has no integration {wid}.", code="INTEGRATION_NOT_FOUND"
        )

    def grant_history(self, actor: Actor, grant_id: str, limit: int = 200) -> list[Any]:
        """Audit events whose target is this grant, newest first (support, finance, admin:
        see `Permission.VIEW_GRANT_HISTORY`)."""
        self._require(actor, Permission.VIEW_GRANT_HISTORY, A_AUDIT_READ, "grant", grant_id)
        gid = v.grant_id(grant_id)
        store = _store()
        page = self.audit.query(store.AuditFilter(target_id=gid), page=1, page_size=limit)
        return list(page.events)

    def overview(self, actor: Actor) -> Overview:
        """Counts over all grants, integrations failing/syncing, and the latest audit events."""
        self._require(actor, Permission.VIEW_GRANTS, A_VIEW)
        rows = self._grant_rows()
        active = [r for r in rows if r.status == "active"]
        with_token = [r for r in active if r.has_token]
        failing = syncing = unread = 0
        if with_token:
            def read(row: GrantRow) -> list[Integration] | None:
                token = self._token(row.grant_id)
                if token is None:
                    return None
                try:
                    return self.client.list_integrations(token)
                except KryptosError as exc:
                    log.info("overview: integrations of %s unreadable: %s", row.grant_id, exc)
                    return None

            workers = min(self.max_workers, len(with_token))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="overview") as pool:
                for items in pool.map(read, with_token):
                    if items is None:
                        unread += 1
                        continue
                    failing += sum(1 for i in items if i.is_failing)
                    syncing += sum(1 for i in items if i.is_syncing)
        events: tuple[Any, ...] = ()
        if can(actor, Permission.READ_AUDIT):
            store = _store()
            page = self.audit.query(store.AuditFilter(), page=1, page_size=LATEST_EVENTS)
            events = tuple(page.events)
        return Overview(
            active=len(active),
            revoked=sum(1 for r in rows if r.status == "revoked"),
            guest=sum(1 for r in rows if r.user_kind == "guest"),
            linked=sum(1 for r in rows if r.user_kind == "linked"),
            unknown_kind=sum(1 for r in rows if r.user_kind is None),
            with_token=sum(1 for r in rows if r.has_token),
            without_token=sum(1 for r in rows if not r.has_token),
            integrations_failing=failing,
            integrations_syncing=syncing,
            integrations_unread=unread,
            latest_events=events,
        )

    # --- audit log -----------------------------------------------------------------------

    def audit_page(
        self, actor: Actor, filters: Any = None, page: int = 1, page_size: int = 50
    ) -> Any:
        """One page of the audit log (newest first)."""
        self._require(actor, Permission.READ_AUDIT, A_AUDIT_READ)
        if not isinstance(page, int) or page < 1:
            raise ValidationError("page", "must be a positive whole number.")
        if not isinstance(page_size, int) or not 1 <= page_size <= 1000:
            raise ValidationError("page_size", "must be between 1 and 1000.")
        store = _store()
        return self.audit.query(filters or store.AuditFilter(), page=page, page_size=page_size)

    def export_audit(self, actor: Actor, filters: Any = None, fmt: str = "csv") -> str:
        """The filtered audit log as CSV or JSON lines text. Audited (counts only)."""
        import io

        self._require(actor, Permission.READ_AUDIT, A_EXPORT)
        if fmt not in ("csv", "jsonl"):
            raise ValidationError("fmt", "must be 'csv' or 'jsonl'.")
        store = _store()
        flt = filters or store.AuditFilter()

        def body() -> tuple[str, None, dict[str, Any]]:
            out = io.StringIO()
            try:
                if fmt == "csv":
                    n = self.audit.export_csv(flt, out)
                else:
                    n = self.audit.export_jsonl(flt, out)
            except store.StoreError as exc:
                raise OperationError(exc.user_message, code="STORE_ERROR") from None
            return out.getvalue(), None, {"rows": n, "format": fmt}

        return self._run_audited(
            actor, A_EXPORT, body, what="Exporting the audit log", target_type="audit",
            params={"format": fmt, "filters": _filter_params(flt)},
        )

    def verify_audit(self, actor: Actor, expected_head: tuple[Any, Any] | None = None) -> Any:
        """Check the audit log's hash chain, its anchor file, and optionally a head an
        auditor noted earlier (`expected_head=(row number, hash)`); the result is audited."""
        self._require(actor, Permission.READ_AUDIT, A_VERIFY)
        expected = v.audit_head(expected_head) if expected_head is not None else None

        def body() -> tuple[Any, None, dict[str, Any]]:
            if expected is None:  # the call as before, for any audit log object
                report = self.audit.verify_chain()
            else:
                report = self.audit.verify_chain(expected_head=expected)
            return report, None, {
                "ok": report.ok, "checked": report.checked, "first_bad_seq": report.first_bad_seq,
                "head_seq": report.head_seq, "head_hash": report.head_hash,
                "anchor_checked": report.anchor_checked, "anchor_seq": report.anchor_seq,
                "expected_checked": report.expected_checked,
            }

        params = None
        if expected is not None:
            params = {"expected_head": {"seq": expected[0], "hash": expected[1]}}
        return self._run_audited(
            actor, A_VERIFY, body, what="Verifying the audit log", target_type="audit",
            params=params,
        )

    # --- mutations -----------------------------------------------------------------------

    def revoke_grant(
        self, actor: Actor, grant_id: str, reason: str, ticket: str | None = None
    ) -> str:
        """Revoke a grant (its tokens stop working at once). Returns the API's message."""
        self._require(actor, Permission.REVOKE_GRANT, A_REVOKE, "grant", grant_id)
        gid = v.grant_id(grant_id)
        why = v.reason(reason)
        tkt = v.ticket(ticket)

        def body() -> tuple[str, dict[str, Any], dict[str, Any]]:
            message = self.client.revoke_grant(gid)
            return message, {"status": "active"}, {"status": "revoked"}

        return self._run_audited(
            actor, A_REVOKE, body, what="Revoking the grant", target_type="grant",
            target_id=gid, reason=why, ticket=tkt,
        )

    def resync_integration(
        self,
        actor: Actor,
        grant_id: str,
        wallet_id: str,
        mode: str,
        reason: str | None = None,
        ticket: str | None = None,
    ) -> ResyncOutcome:
        """Queue a resync of one integration. `from_start` needs a reason.

        A CSV integration with `latest` is refused before the call, with the API's own
        explanation, when the integration's type can be read (a token is stored).
        """
        perm = Permission.RESYNC_FROM_START if mode == "from_start" else Permission.RESYNC_LATEST
        self._require(actor, perm, A_RESYNC, "grant", grant_id)
        gid = v.grant_id(grant_id)
        wid = v.wallet_id(wallet_id)
        m = v.mode(mode)
        why = v.reason(reason, required=(m == "from_start"))
        tkt = v.ticket(ticket)

        def body() -> tuple[ResyncOutcome, None, dict[str, Any]]:
            entry = self._entry(gid)
            token = self._token(gid) if entry is not None else None
            user_id = entry.kryptos_user_id if entry is not None else None
            if token is not None:
                if m == "latest":
                    try:
                        items = self.client.list_integrations(token)
                    except KryptosError as exc:
                        log.info("resync: integrations of %s unreadable: %s", gid, exc)
                        items = []
                    target = next((i for i in items if i.wallet_id == wid), None)
                    if target is not None and target.is_csv:
                        raise OperationError(
                            CSV_LATEST_MESSAGE,
                            code="CSV_RESYNC_LATEST_UNSUPPORTED",
                            hint='Use mode "from_start" for CSV imports.',
                        )
                if not user_id:
                    session = self.client.check_session(token)
                    user_id = session.user_id
                    if user_id:
                        self._remember(gid, kryptos_user_id=user_id)
            if not user_id:
                raise OperationError(
                    f"Cannot resync: the Kryptos user id of grant {gid} is unknown"
                    + (" (no access token is stored)." if token is None else "."),
                    code="NO_USER_ID",
                    hint="Store the grant's access token (import tokens) and try again.",
                )
            res = self.client.resync_integration(wid, user_id, m)
            out = ResyncOutcome(
                grant_id=gid, wallet_id=res.wallet_id, mode=res.mode,
                integration_type=res.integration_type, status=res.status, job_id=res.job_id,
            )
            return out, None, {
                "status": res.status, "integration_type": res.integration_type,
                "job_id": res.job_id,
            }

        return self._run_audited(
            actor, A_RESYNC, body, what="Resync", target_type="grant", target_id=gid,
            params={"wallet_id": wid, "mode": m}, reason=why, ticket=tkt,
        )

    def set_guest_limit(
        self,
        actor: Actor,
        grant_id: str,
        transaction_limit: int | None = None,
        enable_limiter: bool | None = None,
        reason: str | None = None,
        ticket: str | None = None,
    ) -> LimitChange:
        """Set a Guest's transaction limit and/or switch its limiter.

        Refused before the call when the grant is known to be Linked (`NOT_ANON_USER`).
        Before values: the user info's effective limit when a token is stored, else the last
        succeeded limit change in the audit log; the PATCH's `previous_*` fields win.
        """
        self._require(actor, Permission.MANAGE_LIMITS, A_LIMIT, "grant", grant_id)
        gid, limit, limiter, why, tkt = self._validate_limit(
            grant_id, transaction_limit, enable_limiter, reason, ticket
        )

        def body() -> tuple[LimitChange, dict[str, Any], dict[str, Any]]:
            change = self._change_limit(gid, limit, limiter)
            return change, _before(change), _after(change)

        return self._run_audited(
            actor, A_LIMIT, body, what="Changing the limit", target_type="grant",
            target_id=gid, params={"transaction_limit": limit, "enable_limiter": limiter},
            reason=why, ticket=tkt,
        )

    @staticmethod
    def _validate_limit(
        grant_id: object, limit: object, limiter: object, reason: object, ticket: object
    ) -> tuple[str, int | None, bool | None, str, str | None]:
        gid = v.grant_id(grant_id)
        lim = v.transaction_limit(limit) if limit is not None else None
        on = v.enable_limiter(limiter) if limiter is not None else None
        if lim is None and on is None:
            raise ValidationError(
                "transaction_limit", "set a limit, switch the limiter, or both."
            )
        why = v.reason(reason)
        assert why is not None
        return gid, lim, on, why, v.ticket(ticket)

    def _known_before(self, gid: str, entry: Any = _UNREAD) -> _Before:
        """The limit before a change, from user info or else the audit log.

        `known` is False when neither source says anything about the limit. `entry`: the
        grant's vault entry when the caller already read it.
        """
        if entry is _UNREAD:
            entry = self._entry(gid)
        token = self._token(gid, entry)
        if token is not None:
            try:
                info = self.client.get_userinfo(token)
            except KryptosError as exc:
                log.info("limit: user info of %s unreadable: %s", gid, exc)
            else:
                entry = self._learn_from_userinfo(gid, info, entry)
                lim = info.transaction_limit
                return _Before(lim, lim is not None, info.is_guest, True, entry)
        is_guest = None if entry is None or entry.user_kind is None else entry.user_kind == "guest"
        last = None
        for action in (A_LIMIT, A_TIER):
            ev = self.audit.last_event(gid, action=action, outcome="succeeded")
            if ev is not None and isinstance(ev.after, Mapping):
                if last is None or ev.seq > last.seq:
                    last = ev
        if last is not None:
            after = last.after
            return _Before(after.get("transaction_limit"), after.get("enable_limiter"), is_guest,
                           True, entry)
        return _Before(None, None, is_guest, False, entry)

    def _change_limit(
        self,
        gid: str,
        limit: int | None,
        limiter: bool | None,
        entry: Any = _UNREAD,
        *,
        read_before: bool = True,
    ) -> LimitChange:
        """PATCH one grant's limit, refusing a grant known to be Linked before the call.

        With `read_before=False` the user info is not read first: the caller knows that the
        API's answer carries the `previous_*` values (the vault still refuses known Linked).
        """
        if entry is _UNREAD:
            entry = self._entry(gid)
        if read_before:
            before = self._known_before(gid, entry)
        else:
            kind = getattr(entry, "user_kind", None)
            before = _Before(None, None, None if kind is None else kind == "guest", False, entry)
        if before.is_guest is False:
            raise OperationError(NOT_ANON_MESSAGE, code="NOT_ANON_USER")
        entry = before.entry
        try:
            res = self.client.update_transaction_limit(
                gid, transaction_limit=limit, enable_limiter=limiter
            )
        except KryptosError as exc:
            if exc.code == "NOT_ANON_USER":
                self._remember(gid, entry, user_kind="linked")
            raise
        self._remember(gid, entry, user_kind="guest", kryptos_user_id=res.user_id)
        before_limit, before_limiter = before.limit, before.limiter
        reported = (res.previous_transaction_limit is not None
                    or res.previous_enable_limiter is not None)
        if reported:
            before_limit = res.previous_transaction_limit
            before_limiter = res.previous_enable_limiter
        return LimitChange(
            grant_id=gid,
            before_limit=before_limit,
            before_limiter=before_limiter,
            after_limit=res.transaction_limit,
            after_limiter=res.enable_limiter,
            resync=res.resync,
            before_reported=reported,
        )

    def tier(self, name: str | Tier) -> Tier:
        """The configured tier with this name (case-insensitive)."""
        wanted = name.name if isinstance(name, Tier) else name
        if not isinstance(wanted, str):
            raise ValidationError("tier", "must be a tier name.")
        for t in self._tiers:
            if t.name.lower() == wanted.strip().lower():
                return t
        names = ", ".join(t.name for t in self._tiers)
        raise ValidationError("tier", f"unknown tier '{wanted}'; configured tiers: {names}.")

    def apply_tier(
        self,
        actor: Actor,
        grant_ids: Iterable[str],
        tier: str | Tier,
        reason: str | None = None,
        *,
        dry_run: bool = False,
        ticket: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> BulkResult:
        """Apply a configured tier to many grants (see `_bulk_limit` for how a run goes).

        Audited as `guest.tier.apply` (one pair per grant, params carry the tier) and
        `guest.tier.apply.bulk` (summary pair). Reason optional for a dry run.
        """
        self._require(actor, Permission.MANAGE_LIMITS, A_TIER)
        gids = v.grant_ids(grant_ids)
        t = self.tier(tier)
        why = v.reason(reason, required=not dry_run)
        tkt = v.ticket(ticket)
        limit, limiter = (t.limit, True) if t.limit is not None else (None, False)
        plan = _BulkPlan(
            label=t.name, limit=limit, limiter=limiter, action=A_TIER,
            bulk_action=A_TIER_BULK, what=f"Applying tier {t.name}",
            params={"tier": t.name, "transaction_limit": limit, "enable_limiter": limiter},
        )
        return self._bulk_limit(actor, gids, plan, why, tkt, dry_run=dry_run,
                                progress=progress)

    def apply_limit(
        self,
        actor: Actor,
        grant_ids: Iterable[str],
        transaction_limit: int | None = None,
        enable_limiter: bool | None = None,
        reason: str | None = None,
        *,
        dry_run: bool = False,
        ticket: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> BulkResult:
        """Set one custom limit and/or switch the limiter on many grants.

        Validated like `set_guest_limit` (reason optional for a dry run); runs like
        `apply_tier` (see `_bulk_limit`). Audited as `guest.limit.update` (one pair per grant,
        the same action as a single change, params carry the `bulk_id`) and
        `guest.limit.update.bulk` (summary pair). `BulkResult.tier` is `CUSTOM_LIMIT`.
        """
        self._require(actor, Permission.MANAGE_LIMITS, A_LIMIT)
        gids = v.grant_ids(grant_ids)
        limit = v.transaction_limit(transaction_limit) if transaction_limit is not None else None
        limiter = v.enable_limiter(enable_limiter) if enable_limiter is not None else None
        if limit is None and limiter is None:
            raise ValidationError("transaction_limit", "set a limit, switch the limiter, or both.")
        why = v.reason(reason, required=not dry_run)
        tkt = v.ticket(ticket)
        plan = _BulkPlan(
            label=CUSTOM_LIMIT, limit=limit, limiter=limiter, action=A_LIMIT,
            bulk_action=A_LIMIT_BULK, what="Changing the limit",
            params={"transaction_limit": limit, "enable_limiter": limiter},
        )
        return self._bulk_limit(actor, gids, plan, why, tkt, dry_run=dry_run,
                                progress=progress)

    def _bulk_limit(
        self,
        actor: Actor,
        gids: tuple[str, ...],
        plan: _BulkPlan,
        why: str | None,
        tkt: str | None,
        *,
        dry_run: bool,
        progress: Callable[[int, int], None] | None,
    ) -> BulkResult:
        """The one engine behind `apply_tier` and `apply_limit` (inputs already checked).

        At most `max_workers` grants in flight. Dry run: reads each grant's effective limit
        (user info where a token is stored, else the audit log) and reports `would_change` /
        `unchanged` / `skipped` (Linked); nothing is written. Real run: every grant not known
        to be Linked gets the values (an explicit per-user override, even where the effective
        limit already matches); one requested/succeeded|failed pair per grant plus a bulk
        summary pair. A failure on one grant does not stop the rest; a 429 that outlives the
        client's retries fails that item and pauses all workers for its Retry-After. Once a
        PATCH answer carries the `previous_*` values (newer API), later grants of the run skip
        the user-info pre-read. `progress(done, total)` is called from the caller's thread.
        """
        entries = {e.grant_id: e for e in self.vault.list()}  # one read for the whole run
        bulk_id = str(uuid.uuid4())
        pace = _Pace()
        limit, limiter = plan.limit, plan.limiter

        def dry(gid: str) -> BulkItem:
            pace.wait()
            entry = entries.get(gid)
            b = self._known_before(gid, entry)
            before = _effective(b.limit, b.limiter) if b.known else "unknown"
            after = _projected(before, limit, limiter)
            base = dict(grant_id=gid, customer_ref=getattr(entry, "customer_ref", None),
                        after=after)
            if b.is_guest is False:
                return BulkItem(**base, outcome="skipped", before=before,
                                error_code="NOT_ANON_USER",
                                message="Linked user: limits do not apply.")
            if before == "unknown":
                return BulkItem(**base, outcome="would_change", before=before,
                                message="Current limit unknown (no token stored, no history).")
            if after == "unknown":
                return BulkItem(**base, outcome="would_change", before=before,
                                message="The resulting limit depends on a stored limit that "
                                        "the user info does not show (limiter off).")
            return BulkItem(**base, outcome="unchanged" if before == after else "would_change",
                            before=before)

        def real(gid: str) -> BulkItem:
            pace.wait()
            entry = entries.get(gid)
            ref = getattr(entry, "customer_ref", None)
            read_before = not pace.api_reports_previous

            def body() -> tuple[LimitChange, dict[str, Any], dict[str, Any]]:
                change = self._change_limit(gid, limit, limiter, entry, read_before=read_before)
                return change, _before(change), _after(change)

            try:
                change = self._run_audited(
                    actor, plan.action, body, what=plan.what, target_type="grant",
                    target_id=gid, reason=why, ticket=tkt,
                    params={**plan.params, "bulk_id": bulk_id},
                )
            except OperationError as err:
                if isinstance(err, UpstreamError) and err.kind == RateLimitedError.__name__:
                    pace.pause(err.retry_after if err.retry_after is not None else 1.0)
                outcome = "skipped" if err.code == "NOT_ANON_USER" else "failed"
                return BulkItem(gid, ref, outcome, None, None, err.code, err.user_message)
            if change.before_reported and not pace.api_reports_previous:
                pace.api_reports_previous = True  # later grants skip the user-info pre-read
            return BulkItem(gid, ref, "succeeded", _effective(change.before_limit,
                            change.before_limiter), _effective(change.after_limit,
                            change.after_limiter))

        summary_cid = str(uuid.uuid4())
        if not dry_run:
            self._event(
                actor.username, actor.roles, plan.bulk_action, "requested", summary_cid,
                target_type="bulk", target_id=bulk_id, reason=why, ticket=tkt,
                params={**plan.params, "grants": len(gids)},
            )
        work = dry if dry_run else real
        results: dict[str, BulkItem] = {}
        total = len(gids)
        workers = min(self.max_workers, total)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bulk-limit") as pool:
            futs = {pool.submit(work, gid): gid for gid in gids}
            for done, fut in enumerate(as_completed(futs), start=1):
                gid = futs[fut]
                try:
                    results[gid] = fut.result()
                except Exception:  # one grant's surprise must not lose the others' report
                    log.exception("bulk %s: grant %s failed unexpectedly", bulk_id, gid)
                    entry = entries.get(gid)
                    results[gid] = BulkItem(
                        gid, getattr(entry, "customer_ref", None), "failed", None, None,
                        "INTERNAL", "An unexpected error in the console (see its log).")
                if progress is not None:
                    progress(done, total)
        result = BulkResult(items=tuple(results[g] for g in gids), dry_run=dry_run,
                            tier=plan.label)
        if not dry_run:
            counts = dict(result.counts)
            self._event(
                actor.username, actor.roles, plan.bulk_action,
                "failed" if counts["failed"] else "succeeded", summary_cid,
                target_type="bulk", target_id=bulk_id, reason=why, ticket=tkt,
                after={k: n for k, n in counts.items() if n},
                error_code="PARTIAL_FAILURE" if counts["failed"] else None,
            )
        return result

    def create_link_token(
        self, actor: Actor, customer_ref: str, grant_id: str | None = None
    ) -> LinkTokenIssued:
        """A link token for the Connect widget; with `grant_id`, resumes that grant's session."""
        self._require(actor, Permission.MANAGE_TOKENS, A_LINK, "grant", grant_id)
        ref = v.customer_ref(customer_ref)
        gid = v.grant_id(grant_id) if grant_id is not None else None

        def body() -> tuple[LinkTokenIssued, None, dict[str, Any]]:
            token = None
            if gid is not None:
                token = self._token(gid)
                if token is None:
                    raise NotFound(
                        f"No access token is stored for grant {gid}; cannot resume its session.",
                        code="NO_TOKEN",
                    )
            lt = self.client.create_link_token(access_token=token)
            issued = LinkTokenIssued(
                link_token=lt.link_token, masked=mask_token(lt.link_token),
                expires_at=lt.expires_at, customer_ref=ref,
                resumed=token is not None or lt.has_existing_grant, grant_id=gid,
            )
            return issued, None, {
                "expires_at": lt.expires_at.isoformat() if lt.expires_at else None,
                "resumed": issued.resumed,
            }

        return self._run_audited(
            actor, A_LINK, body, what="Creating a link token", target_type="grant",
            target_id=gid, params={"customer_ref": ref},
        )

    def exchange_public_token(
        self, actor: Actor, customer_ref: str, public_token: str
    ) -> GrantRow:
        """Exchange a public token and store the access token in the vault."""
        self._require(actor, Permission.MANAGE_TOKENS, A_EXCHANGE)
        ref = v.customer_ref(customer_ref)
        pub = v.public_token(public_token)

        def body() -> tuple[GrantRow, None, dict[str, Any]]:
            ex = self.client.exchange_public_token(pub)
            store = _store()
            try:
                self.vault.put(ex.grant_id, ex.access_token, workspace_id=ex.workspace_id,
                               customer_ref=ref)
            except store.StoreError as exc:
                raise OperationError(
                    f"Grant {ex.grant_id} was created but its token could not be stored: "
                    f"{exc.user_message}",
                    code="STORE_ERROR",
                ) from None
            self._learn_best_effort(ex.grant_id, ex.access_token)
            entry = self._entry(ex.grant_id)
            row = GrantRow(
                grant_id=ex.grant_id, workspace_id=ex.workspace_id, scopes=ex.scope,
                created_at=None, expires_at=None, status="active", customer_ref=ref,
                user_kind=entry.user_kind if entry is not None else None, has_token=True,
                masked_token=ex.masked_token,
                kryptos_user_id=entry.kryptos_user_id if entry is not None else None,
            )
            return row, None, {"grant_id": ex.grant_id, "workspace_id": ex.workspace_id,
                               "user_kind": row.user_kind}

        return self._run_audited(
            actor, A_EXCHANGE, body, what="Exchanging the public token",
            target_type="customer", target_id=ref, params={"customer_ref": ref},
        )

    def _learn_best_effort(self, gid: str, token: str) -> None:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="learn") as pool:
            sf = pool.submit(self.client.check_session, token)
            uf = pool.submit(self.client.get_userinfo, token)
            try:
                self._learn_from_userinfo(gid, uf.result())
            except KryptosError as exc:
                log.info("exchange: user info of %s unreadable: %s", gid, exc)
            try:
                session = sf.result()
                if session.user_id:
                    self._remember(gid, kryptos_user_id=session.user_id)
            except KryptosError as exc:
                log.info("exchange: session of %s unreadable: %s", gid, exc)

    def import_tokens(self, actor: Actor, file: IO[Any]) -> Any:
        """Import a CSV of tokens into the vault (audited with counts only)."""
        self._require(actor, Permission.MANAGE_TOKENS, A_IMPORT)
        if file is None:
            raise ValidationError("file", "choose a CSV file.")
        store = _store()

        def body() -> tuple[Any, None, dict[str, Any]]:
            try:
                report = self.vault.import_csv(file)
            except store.StoreError as exc:
                raise OperationError(exc.user_message, code="STORE_ERROR") from None
            return report, None, {
                "added": _count(report.added), "updated": _count(report.updated),
                "rejected": _count(report.rejected),
            }

        return self._run_audited(actor, A_IMPORT, body, what="Importing tokens",
                                 target_type="vault")

    # --- authentication events -----------------------------------------------------------

    def record_login(self, actor: Actor) -> None:
        self._event(actor.username, actor.roles, A_LOGIN, "succeeded", str(uuid.uuid4()),
                    target_type="user", target_id=actor.username)

    def record_login_failed(self, username: str) -> None:
        name = (username or "").strip()[:200] or "(empty)"
        self._event(name, (), A_LOGIN_FAILED, "failed", str(uuid.uuid4()),
                    target_type="user", target_id=name, error_code="BAD_CREDENTIALS")

    def record_logout(self, actor: Actor) -> None:
        self._event(actor.username, actor.roles, A_LOGOUT, "succeeded", str(uuid.uuid4()),
                    target_type="user", target_id=actor.username)


# --- helpers ---------------------------------------------------------------------------------


def _row(gid: str, g: Grant | None, e: Any, status: str) -> GrantRow:
    kind = getattr(e, "user_kind", None)
    return GrantRow(
        grant_id=gid,
        workspace_id=(g.workspace_id if g is not None else None)
        or getattr(e, "workspace_id", None),
        scopes=g.scopes if g is not None else "",
        created_at=g.created_at if g is not None else None,
        expires_at=g.expires_at if g is not None else None,
        status=status,  # type: ignore[arg-type]
        customer_ref=getattr(e, "customer_ref", None),
        user_kind=kind if kind in ("guest", "linked") else None,
        has_token=e is not None,
        masked_token=getattr(e, "masked_token", None),
        kryptos_user_id=getattr(e, "kryptos_user_id", None),
    )


def _effective(limit: int | None, limiter: bool | None) -> int | None:
    """The limit in force: None when the limiter is off (uncapped)."""
    return None if limiter is False else limit


def _projected(
    before: int | None | str, limit: int | None, limiter: bool | None
) -> int | None | str:
    """The effective limit after sending (limit, limiter) over `before` (effective, or
    "unknown"); "unknown" when it depends on a stored limit nobody can read."""
    if limiter is False:
        return None
    if limit is not None:
        if limiter is True:
            return limit
        if before == "unknown":
            return "unknown"
        return None if before is None else limit  # the limiter stays as it is
    # limiter switched on, limit kept: the stored limit shows only when it was already on
    return before if isinstance(before, int) else "unknown"


def _before(c: LimitChange) -> dict[str, Any]:
    return {"transaction_limit": c.before_limit, "enable_limiter": c.before_limiter}


def _after(c: LimitChange) -> dict[str, Any]:
    return {"transaction_limit": c.after_limit, "enable_limiter": c.after_limiter}


def _count(value: Any) -> int:
    return value if isinstance(value, int) else len(value)


def _filter_params(flt: Any) -> dict[str, Any]:
    out = {}
    for k in ("since", "until", "actor", "action", "target_id", "outcome"):
        val = getattr(flt, k, None)
        if val is not None:
            out[k] = val.isoformat() if hasattr(val, "isoformat") else str(val)
    return out
