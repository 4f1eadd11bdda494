"""Grants and integrations: list, detail, one integration, overview, revoke, resync.

The pages' reads (`page`, `counts`, `overview`, `export_csv`, `grant_detail`'s row) come
from the read model (services/store/readmodel/); every change here updates its rows at
once, and a grant's live reads write what they learned back to it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from services.kryptos.errors import (
    InvalidTokenError,
    KryptosError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
)
from services.kryptos.models import Grant, Holdings, Integration, SessionStatus, UserInfo
from services.operations import validation as v
from services.operations.approval_policy import Change
from services.operations.context import OpsContext
from services.operations.errors import (
    NotFound,
    OperationError,
    StaleChange,
    UpstreamError,
    ValidationError,
)
from services.operations.four_eyes import ApprovalExecution, FourEyes, Held
from services.operations.grant_lists import GrantListReads, grant_row
from services.operations.models import (
    GrantDetail,
    GrantRow,
    Part,
    ResyncOutcome,
    user_kind,
)
from services.operations.permissions import Actor, Permission
from services.store.actions import AuditAction
from services.store.audit import AuditEvent, AuditFilter
from services.store.errors import StoreError
from services.store.readmodel import (
    IntegrationsError,
    RmGrant,
    UserFacts,
)
from services.store.vault import VaultEntry

log = logging.getLogger(__name__)

NO_TOKEN_NOTE = "No access token is stored for this grant, so Kryptos cannot be asked for this."
CSV_LATEST_MESSAGE = (
    "Resync refused: a CSV import has no new transactions to fetch, so \"Latest (new "
    "transactions)\" does not apply. Choose \"From start (full re-import)\" instead, which "
    "wipes and re-reads the uploaded file."
)
#: Answers saying "this grant's integrations cannot be read" (as the sync worker reads them).
UNREADABLE = (InvalidTokenError, PermissionDeniedError, NotFoundError, MalformedResponseError)
T = TypeVar("T")


@dataclass(frozen=True)
class _Parts:
    """A grant's four live reads, each a value, an error or the no-token note."""

    session: Part[SessionStatus]
    holdings: Part[Holdings]
    integrations: Part[tuple[Integration, ...]]
    userinfo: Part[UserInfo]


def _part(future: Future[T] | None, label: str) -> Part[T]:
    """A read's result as a part: None (no token, not read) is the no-token note."""
    if future is None:
        return Part(note=NO_TOKEN_NOTE)
    try:
        return Part(value=future.result())
    except KryptosError as exc:
        return Part(error=UpstreamError.from_kryptos(exc, label))


class GrantOps(GrantListReads):
    """Use cases on grants and their integrations (the lists and counts: grant_lists.py)."""

    def __init__(self, ctx: OpsContext, gate: FourEyes) -> None:
        self.ctx = ctx
        self.gate = gate  # four-eyes: every change asks it

    def __repr__(self) -> str:
        return f"GrantOps({self.ctx!r})"

    # --- reads ---------------------------------------------------------------------------

    def grant_detail(self, actor: Actor, grant_id: str) -> GrantDetail:
        """Session, holdings, integrations and user info of one grant, read concurrently;
        the grant itself from its read-model row (the grants list is read live only for a
        grant the read model does not know yet). What the live reads learned goes back to
        the read model ("opening a grant refreshes its rows")."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW, "grant", grant_id)
        gid = v.grant_id(grant_id)
        entry = self.ctx.entry(gid)
        token = self.ctx.token(gid) if entry is not None else None
        synced = self._rm_grant(gid)
        parts, grants, grants_error = self._read_parts(token, list_grants=synced is None)
        notes: list[str] = []
        match = None
        if synced is not None:
            status = synced.status
        elif grants is not None:
            match = next((g for g in grants if g.grant_id == gid), None)
            if match is None and entry is None:
                raise NotFound(
                    f"Grant {gid} is neither listed by Kryptos nor stored in the vault.",
                    code="GRANT_NOT_FOUND",
                )
            status = "active" if match is not None else "revoked"
        else:
            session = parts.session.value
            invalid = session is not None and not session.has_valid_session
            status = "revoked" if invalid else "active"
            assert grants_error is not None
            notes.append(f"The grants list could not be read: {grants_error.user_message}")
        if entry is None:
            notes.append(
                "No access token is stored for this grant: session, holdings, integrations "
                "and user info cannot be read. Only what the grants list knows is shown."
            )
        info, seen = parts.userinfo.value, parts.session.value
        if parts.userinfo.ok and info is not None:
            self.ctx.learn_from_userinfo(gid, info)
        elif parts.session.ok and seen is not None and seen.user_id:
            self.ctx.remember(gid, kryptos_user_id=seen.user_id)
        entry = self.ctx.entry(gid) if entry is not None else None
        if synced is None and (match is not None or entry is not None):
            self.ctx.rm_update("opening a grant", lambda rm: rm.apply_grant(match, entry))
        self._learned(gid, parts)
        row = (_from_rm(synced, entry) if synced is not None
               else grant_row(gid, match, entry, status))
        return GrantDetail(
            grant=row,
            session=parts.session,
            holdings=parts.holdings,
            integrations=parts.integrations,
            userinfo=parts.userinfo,
            notes=tuple(notes),
            row=self._rm_grant(gid),
        )

    def _rm_grant(self, gid: str) -> RmGrant | None:
        try:
            found = self.ctx.readmodel.grant(gid)
        except StoreError as exc:
            log.warning("read model: grant %s unreadable: %s", gid, exc)
            return None
        return found.grant if found is not None else None

    def _learned(self, gid: str, parts: _Parts) -> None:
        """Write a grant's live integrations and user info back to its read-model rows."""
        integ, info = parts.integrations, parts.userinfo
        if integ.ok:
            items = list(integ.value or ())
            self.ctx.rm_update("reading integrations",
                               lambda rm: rm.apply_integrations(gid, items))
        elif isinstance(integ.error, UpstreamError) and integ.error.kind in _UNREADABLE_NAMES:
            failed = IntegrationsError(integ.error.user_message)
            self.ctx.rm_update("reading integrations",
                               lambda rm: rm.apply_integrations(gid, failed))
        if info.ok and info.value is not None:
            facts = _facts(info.value)
            self.ctx.rm_update("reading user info", lambda rm: rm.apply_userinfo(gid, facts))

    def _read_parts(
        self, token: str | None, *, list_grants: bool = True,
    ) -> tuple[_Parts, list[Grant] | None, OperationError | None]:
        c = self.ctx.client
        with ThreadPoolExecutor(max_workers=5, thread_name_prefix="grant-detail") as pool:
            grants_f = pool.submit(c.list_grants) if list_grants else None

            def read(call: Callable[[str], T]) -> Future[T] | None:
                return pool.submit(call, token) if token is not None else None

            # All four are sent before any answer is awaited.
            session_f, holdings_f = read(c.check_session), read(c.get_holdings)
            integrations_f = read(lambda t: tuple(c.list_integrations(t)))
            userinfo_f = read(c.get_userinfo)
            parts = _Parts(
                session=_part(session_f, "Checking the session"),
                holdings=_part(holdings_f, "Reading holdings"),
                integrations=_part(integrations_f, "Reading integrations"),
                userinfo=_part(userinfo_f, "Reading user info"),
            )
            if grants_f is None:
                return parts, None, None
            try:
                return parts, grants_f.result(), None
            except KryptosError as exc:
                return parts, None, UpstreamError.from_kryptos(exc, "Listing grants")

    def integration(self, actor: Actor, grant_id: str, wallet_id: str) -> Integration:
        """One integration of a grant (for polling a resync's progress)."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW, "grant", grant_id)
        gid, wid = v.grant_id(grant_id), v.wallet_id(wallet_id)
        token = self.ctx.token(gid)
        if token is None:
            raise NotFound(f"No access token is stored for grant {gid}.", code="NO_TOKEN")
        try:
            items = self.ctx.client.list_integrations(token)
        except KryptosError as exc:
            raise UpstreamError.from_kryptos(exc, "Reading integrations") from None
        self.ctx.rm_update("reading integrations",
                           lambda rm: rm.apply_integrations(gid, list(items)))
        for it in items:
            if it.wallet_id == wid:
                return it
        raise NotFound(
            f"Grant {gid} has no integration {wid}.", code="INTEGRATION_NOT_FOUND"
        )

    def grant_history(self, actor: Actor, grant_id: str, limit: int = 200) -> list[AuditEvent]:
        """Audit events whose target is this grant, newest first
        (`Permission.VIEW_GRANT_HISTORY`)."""
        self.ctx.check(actor, Permission.VIEW_GRANT_HISTORY, AuditAction.AUDIT_READ, "grant",
                       grant_id)
        gid = v.grant_id(grant_id)
        page = self.ctx.audit_log.query(AuditFilter(target_id=gid), page=1, page_size=limit)
        return list(page.events)

    # --- changes -------------------------------------------------------------------------

    def revoke_grant(
        self, actor: Actor, grant_id: str, reason: str, ticket: str | None = None,
        *, expected_status: str | None = None, approval: ApprovalExecution | None = None,
        typed_id: str | None = None,
    ) -> str | Held:
        """Revoke a grant (its tokens stop working at once). Returns the API's message, or
        `Held` when the four-eyes policy says it waits for a second person (the request is
        recorded; nothing is sent). `approval`: the proof of an approved request for this
        revoke (only the approvals use case has one); its events carry the approver and the
        request number, and its correlation id.
        `typed_id`: the grant id the person typed again to confirm (a form's confirmation);
        checked after the reason and the ticket, in the order the form asks for them, and
        refused (`ValidationError` on `typed_id`, nothing sent or recorded) unless it is
        this grant's id.
        `expected_status`: the status the person saw ("active"); when the grants list now
        says otherwise, `StaleChange` (audited as failed, `STALE`) and nothing is sent."""
        self.ctx.check(actor, Permission.REVOKE_GRANT, AuditAction.GRANT_REVOKE, "grant",
                       grant_id)
        gid = v.grant_id(grant_id)
        why = v.reason(reason)
        tkt = v.ticket(ticket)
        if typed_id is not None and typed_id.strip() != gid:
            raise ValidationError("typed_id", "The id typed does not match this grant: type "
                                              "it again exactly.")
        if expected_status not in (None, "active", "revoked"):
            raise ValidationError("expected_status", "The status shown must be active or "
                                                     "revoked.")
        held = self.gate.hold(actor, Change.revoke(gid), why, tkt, approval,
                              lambda: self.gate.revoke_preview([gid]))
        if held is not None:
            return held

        def body() -> tuple[str, dict[str, Any], dict[str, Any]]:
            if expected_status is not None:
                self._check_status(gid, expected_status)
            message = self.ctx.client.revoke_grant(gid)
            self.ctx.rm_update("a revoke", lambda rm: rm.mark_revoked(gid))
            return message, {"status": "active"}, {"status": "revoked"}

        return self.ctx.run(
            actor, AuditAction.GRANT_REVOKE, body, what="Revoking the grant",
            target_type="grant", target_id=gid, reason=why, ticket=tkt,
            params=approval.params() if approval is not None else None,
            correlation_id=approval.correlation_id if approval is not None else None,
        )

    def _check_status(self, gid: str, seen: str) -> None:
        """`StaleChange` when the grant's status now is not the one the person saw."""
        now = "active" if self.ctx.client.is_listed(gid) else "revoked"
        if now == seen:
            return
        last = self.ctx.audit_log.last_event(gid, action=AuditAction.GRANT_REVOKE,
                                             outcome="succeeded")
        if last is None or now != "revoked":
            raise StaleChange("the grant", seen, now)
        raise StaleChange("the grant", seen, now, last.actor_username, last.ts)

    def resync_integration(
        self,
        actor: Actor,
        grant_id: str,
        wallet_id: str,
        mode: str,
        reason: str | None = None,
        ticket: str | None = None,
    ) -> ResyncOutcome:
        """Queue a resync of one integration; `from_start` needs a reason. A CSV integration
        with `latest` is refused before the call when its type can be read."""
        perm = Permission.RESYNC_FROM_START if mode == "from_start" else Permission.RESYNC_LATEST
        self.ctx.check(actor, perm, AuditAction.INTEGRATION_RESYNC, "grant", grant_id)
        gid = v.grant_id(grant_id)
        wid = v.wallet_id(wallet_id)
        m = v.mode(mode)
        why = v.reason(reason, required=(m == "from_start"))
        tkt = v.ticket(ticket)

        def body() -> tuple[ResyncOutcome, None, dict[str, Any]]:
            user_id = self._resync_user_id(gid, wid, m)
            res = self.ctx.client.resync_integration(wid, user_id, m)
            out = ResyncOutcome(
                grant_id=gid, wallet_id=res.wallet_id, mode=res.mode,
                integration_type=res.integration_type, status=res.status, job_id=res.job_id,
            )
            return out, None, {
                "status": res.status, "integration_type": res.integration_type,
                "job_id": res.job_id,
            }

        return self.ctx.run(
            actor, AuditAction.INTEGRATION_RESYNC, body, what="Resync", target_type="grant",
            target_id=gid, params={"wallet_id": wid, "mode": m}, reason=why, ticket=tkt,
        )

    def _resync_user_id(self, gid: str, wid: str, mode: str) -> str:
        """The Kryptos user id to resync for; refuses `latest` on a CSV integration."""
        entry = self.ctx.entry(gid)
        token = self.ctx.token(gid) if entry is not None else None
        user_id = entry.kryptos_user_id if entry is not None else None
        if token is not None:
            if mode == "latest":
                self._refuse_csv_latest(gid, wid, token)
            if not user_id:
                user_id = self.ctx.client.check_session(token).user_id
                if user_id:
                    self.ctx.remember(gid, kryptos_user_id=user_id)
        if not user_id:
            raise OperationError(
                f"Cannot resync: the Kryptos user id of grant {gid} is unknown"
                + (" (no access token is stored)." if token is None else "."),
                code="NO_USER_ID",
                hint="Store the grant's access token (import tokens) and try again.",
            )
        return user_id

    def _refuse_csv_latest(self, gid: str, wid: str, token: str) -> None:
        try:
            items = self.ctx.client.list_integrations(token)
        except KryptosError as exc:
            log.info("resync: integrations of %s unreadable: %s", gid, exc)
            items = []
        target = next((i for i in items if i.wallet_id == wid), None)
        if target is not None and target.is_csv:
            raise OperationError(
                CSV_LATEST_MESSAGE,
                code="CSV_RESYNC_LATEST_UNSUPPORTED",
            )


_UNREADABLE_NAMES = frozenset(e.__name__ for e in UNREADABLE)


def _facts(info: UserInfo) -> UserFacts:
    return UserFacts(info.sub, info.is_guest, info.transaction_limit)


def _from_rm(r: RmGrant, e: VaultEntry | None) -> GrantRow:
    """A read-model row as the grant pages show it (the vault entry, when given, is newer)."""
    if e is None:
        return GrantRow(
            grant_id=r.grant_id, workspace_id=r.workspace_id, scopes=r.scopes or "",
            created_at=r.created_at, expires_at=r.expires_at,
            status="revoked" if r.status == "revoked" else "active",
            customer_ref=r.customer_ref, user_kind=user_kind(r.user_kind), has_token=False,
            masked_token=r.masked_token, kryptos_user_id=r.kryptos_user_id)
    return GrantRow(
        grant_id=r.grant_id,
        workspace_id=r.workspace_id or e.workspace_id,
        scopes=r.scopes or "",
        created_at=r.created_at,
        expires_at=r.expires_at,
        status="revoked" if r.status == "revoked" else "active",
        customer_ref=e.customer_ref or r.customer_ref,
        user_kind=user_kind(e.user_kind or r.user_kind),
        has_token=True,
        masked_token=e.masked_token or r.masked_token,
        kryptos_user_id=e.kryptos_user_id or r.kryptos_user_id,
    )
