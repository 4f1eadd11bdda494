"""What every use case shares: the client, the audit trail, the vault, the permission guard.

The order of a use case (permission, validation, audited call) is in docs/architecture.md,
"How a use case runs".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

from sqlalchemy.exc import DBAPIError

from services.kryptos.client import KryptosClient
from services.kryptos.errors import KryptosError, MalformedResponseError, ServerError
from services.kryptos.models import UserInfo
from services.operations.errors import (
    OperationError,
    PermissionDenied,
    RecordUnavailable,
    UpstreamError,
)
from services.operations.permissions import Actor, Permission, can
from services.operations.sync_worker import SyncWorkerHandle
from services.settings import Tier
from services.store.audit import AuditEvent, AuditLog
from services.store.errors import StoreError, VaultEntryNotFound
from services.store.journal import AuditJournal
from services.store.readmodel import ReadModel
from services.store.trail import AuditTrail, AuditUnavailable, Failure, Outcome
from services.store.vault import TokenVault, VaultEntry
from services.store.webhook_events import WebhookEventStore

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Added to a failed change whose request reached Kryptos: it may have acted all the same.
UNCERTAIN_OUTCOME = (
    " Kryptos may have made the change before failing: refresh and check before trying again."
)


class Unread:
    def __repr__(self) -> str:
        return "UNREAD"


#: "The caller did not read the vault entry": read it.
UNREAD: Final = Unread()
EntryArg = VaultEntry | None | Unread

_TOKEN_PREFIXES = ("cat_", "public_", "link_")
#: Refusals made before any call, where the change does not apply: recorded as `skipped`.
SKIPPED_CODES = frozenset({"NOT_ANON_USER"})
_TARGET_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")


def safe_target(value: object) -> str | None:
    """A refused request's target as typed, only when it looks like a grant or wallet id:
    whatever else was pasted there (a token, say) is not recorded."""
    if isinstance(value, str) and _TARGET_RE.match(value) and not value.startswith(
            _TOKEN_PREFIXES):
        return value
    return None


def describe(what: str, *, skippable: bool = False) -> Callable[[BaseException], Failure]:
    """How a use case's failure is recorded and raised: a `KryptosError` becomes an
    `UpstreamError`, a `StoreError` an `OperationError`, anything else `INTERNAL`.
    `skippable` (a bulk run): a refusal in `SKIPPED_CODES` is recorded as `skipped`."""

    def failure(exc: BaseException) -> Failure:
        if isinstance(exc, KryptosError):
            upstream = UpstreamError.from_kryptos(exc, what)
            code = upstream.code or "UPSTREAM_ERROR"  # from_kryptos always names one
            if skippable and code in SKIPPED_CODES:
                return Failure(code, upstream.user_message, upstream.request_id,
                               raise_instead=upstream, outcome="skipped")
            if isinstance(exc, (ServerError, MalformedResponseError)):
                # The server got the request; whether it acted is unknown (timeouts and
                # dropped connections already say so in the client's own message).
                upstream.user_message += UNCERTAIN_OUTCOME
                upstream.args = (upstream.user_message,)
            return Failure(code, upstream.user_message, upstream.request_id,
                           raise_instead=upstream)
        if isinstance(exc, OperationError):
            code = exc.code or "OPERATION_FAILED"
            outcome = "skipped" if skippable and code in SKIPPED_CODES else "failed"
            return Failure(code, exc.user_message, exc.request_id, outcome=outcome)
        if isinstance(exc, StoreError):  # e.g. a vault row that no longer decrypts
            store_failure = OperationError(f"{what} failed: {exc.user_message}",
                                           code="STORE_ERROR")
            return Failure("STORE_ERROR", store_failure.user_message,
                           raise_instead=store_failure)
        if not isinstance(exc, Exception):  # interrupted (Ctrl-C, a session stopped)
            return Failure("INTERRUPTED", f"{what} was interrupted before it finished; part "
                                          "of it may have been done.")
        return Failure("INTERNAL",
                       f"{what} failed: an unexpected error in the console (see its log).")

    return failure


class OpsContext:
    """The shared state of the use cases; no per-user state, safe to share between
    sessions. `max_workers` bounds each call's own thread pool."""

    def __init__(
        self,
        client: KryptosClient,
        audit_log: AuditLog,
        vault: TokenVault,
        tiers: Iterable[Tier],
        *,
        max_workers: int = 8,
        webhooks: WebhookEventStore | None = None,
        journal: AuditJournal | None = None,
        readmodel: ReadModel | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.client = client
        self.audit_log = audit_log
        self.journal = journal
        self.trail = AuditTrail(audit_log, journal=journal)
        self.vault = vault
        # Received webhooks (written by the customer backend), in the console's database.
        self.webhooks = webhooks if webhooks is not None else WebhookEventStore(audit_log.db)
        self.tiers: tuple[Tier, ...] = tuple(tiers)
        self.max_workers = max_workers
        # The local copy the pages read (the read model), in the console's database.
        self.readmodel = (readmodel if readmodel is not None
                          else ReadModel(audit_log.db, self.tiers))
        # The process's sync worker (services.sync.SyncWorker), when the console runs one.
        self.sync_worker: SyncWorkerHandle | None = None

    def __repr__(self) -> str:
        return f"OpsContext(max_workers={self.max_workers}, tiers={len(self.tiers)})"

    # --- permission and audit ------------------------------------------------------------

    def event(self, actor_username: str, actor_roles: Iterable[str], action: str,
              outcome: str, correlation_id: str | None = None, *, durable: bool = False,
              **fields: Any) -> AuditEvent | None:
        """One event; `durable`: kept in the journal (None) if the store stays unavailable."""
        return self.trail.event(actor_username, actor_roles, action, outcome, correlation_id,
                                durable=durable, **fields)

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
        self.check(actor, perm, action.strip(), target_type, target_id)

    def check(
        self,
        actor: Actor,
        permission: Permission,
        action: str,
        target_type: str | None = None,
        target_id: object = None,
    ) -> None:
        """`require` for the use cases (arguments already well-formed)."""
        if can(actor, permission):
            return
        self.event(
            actor.username, actor.roles, action, "denied",
            target_type=target_type, target_id=safe_target(target_id),
            error_code="PERMISSION_DENIED",
            error_message=f"missing permission {permission.value}",
        )
        raise PermissionDenied(actor.username, permission.value)

    def run(
        self,
        actor: Actor,
        action: str,
        body: Callable[[], Outcome[T]],
        *,
        what: str,
        target_type: str | None = None,
        target_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        reason: str | None = None,
        ticket: str | None = None,
        correlation_id: str | None = None,
        skippable: bool = False,
        target_of: Callable[[T], str | None] | None = None,
    ) -> T:
        """requested -> body() -> succeeded(before, after) | failed(code); `what` names the
        change in error messages ("Revoking the grant failed: ..."); `skippable`: see
        `describe`; `target_of`: the succeeded event's target id from the value (a grant
        created by the change). A change whose request cannot be recorded is not made, and
        outcomes are durable (retried, else journalled): `RecordUnavailable` says which."""
        try:
            return self.trail.run(
                actor.username, actor.roles, action, body, target_type=target_type,
                target_id=target_id, params=params, reason=reason, ticket=ticket,
                correlation_id=correlation_id, describe=describe(what, skippable=skippable),
                require_record=True, target_of=target_of,
            )
        except AuditUnavailable as exc:
            raise RecordUnavailable(exc.user_message, change_made=exc.change_made) from None

    # --- read model -------------------------------------------------------------------------

    def rm_update(self, what: str, write: Callable[[ReadModel], Any]) -> None:
        """Best effort: show a change (or what a live read learned) in the read model at
        once. The change itself is done: a failed write is logged, and the sync worker
        brings the row up to date at its next pass."""
        try:
            write(self.readmodel)
        except Exception as exc:  # noqa: BLE001 - never fail a done change on its copy
            log.warning("read model not updated after %s: %s", what, type(exc).__name__)

    # --- vault helpers -------------------------------------------------------------------

    def entry(self, grant_id: str) -> VaultEntry | None:
        return self.vault.get(grant_id)

    def token(self, grant_id: str, entry: EntryArg = UNREAD) -> str | None:
        """The plaintext token, or None when none is stored. Never logged or returned.
        `entry`: the grant's vault entry when the caller already read it."""
        if isinstance(entry, Unread):
            entry = self.vault.get(grant_id)
        if entry is None:
            return None
        try:
            return self.vault.reveal(grant_id)
        except VaultEntryNotFound:
            return None

    def remember(self, grant_id: str, entry: EntryArg = UNREAD,
                 **fields: Any) -> VaultEntry | None:
        """Best effort: record what we learned (user id, Guest/Linked) in the vault, writing
        only what differs from `entry`. Returns the entry as it now is."""
        if isinstance(entry, Unread):
            entry = self.vault.get(grant_id)
        if entry is None:
            return None
        changes = {k: val for k, val in fields.items() if val and getattr(entry, k, None) != val}
        if not changes:
            return entry
        try:
            return self.vault.update(grant_id, **changes)
        except (StoreError, DBAPIError) as exc:  # refused, or the store is locked/down
            log.warning("could not record %s for %s: %s", sorted(changes), grant_id,
                        type(exc).__name__)
            return entry

    def learn_from_userinfo(self, grant_id: str, info: UserInfo,
                            entry: EntryArg = UNREAD) -> VaultEntry | None:
        return self.remember(
            grant_id, entry,
            user_kind="guest" if info.is_guest else "linked",
            kryptos_user_id=info.sub,
        )


__all__ = ["SKIPPED_CODES", "UNCERTAIN_OUTCOME", "UNREAD", "EntryArg", "OpsContext", "Unread",
           "describe", "safe_target"]
