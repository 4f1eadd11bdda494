"""Connecting customers: link tokens, the public-token exchange, importing stored tokens."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import IO, Any

from services.kryptos.errors import KryptosError
from services.kryptos.models import TokenExchange, mask_token
from services.operations import validation as v
from services.operations.context import OpsContext
from services.operations.errors import NotFound, OperationError, UpstreamError, ValidationError
from services.operations.models import GrantRow, LinkTokenIssued, user_kind
from services.operations.permissions import Actor, Permission
from services.store.actions import AuditAction
from services.store.audit import NewAuditEvent, new_correlation_id
from services.store.errors import StoreError
from services.store.exchanges import ExchangeBusy, ExchangeRefused
from services.store.vault import ImportReport

log = logging.getLogger(__name__)



class ConnectOps:
    """Use cases of the Connect page."""

    def __init__(self, ctx: OpsContext) -> None:
        self.ctx = ctx

    def __repr__(self) -> str:
        return f"ConnectOps({self.ctx!r})"

    def create_link_token(
        self, actor: Actor, customer_ref: str, grant_id: str | None = None
    ) -> LinkTokenIssued:
        """A link token for the Connect widget; with `grant_id`, resumes that grant's session."""
        self.ctx.check(actor, Permission.MANAGE_TOKENS, AuditAction.LINK_TOKEN_CREATE, "grant",
                       grant_id)
        ref = v.customer_ref(customer_ref)
        gid = v.grant_id(grant_id) if grant_id is not None else None

        def body() -> tuple[LinkTokenIssued, None, dict[str, Any]]:
            token = None
            if gid is not None:
                token = self.ctx.token(gid)
                if token is None:
                    raise NotFound(
                        f"No access token is stored for grant {gid}; cannot resume its session.",
                        code="NO_TOKEN",
                    )
            lt = self.ctx.client.create_link_token(access_token=token)
            issued = LinkTokenIssued(
                link_token=lt.link_token, masked=mask_token(lt.link_token),
                expires_at=lt.expires_at, customer_ref=ref,
                resumed=token is not None or lt.has_existing_grant, grant_id=gid,
            )
            return issued, None, {
                "expires_at": lt.expires_at.isoformat() if lt.expires_at else None,
                "resumed": issued.resumed,
            }

        return self.ctx.run(
            actor, AuditAction.LINK_TOKEN_CREATE, body, what="Creating a link token",
            target_type="grant", target_id=gid, params={"customer_ref": ref},
        )

    def exchange_public_token(
        self, actor: Actor, customer_ref: str, public_token: str
    ) -> GrantRow:
        """Exchange a public token and store the access token in the vault."""
        self.ctx.check(actor, Permission.MANAGE_TOKENS, AuditAction.TOKEN_EXCHANGE)
        ref = v.customer_ref(customer_ref)
        pub = v.public_token(public_token)

        made: list[TokenExchange] = []

        def exchange_new() -> str:
            ex = self.ctx.client.exchange_public_token(pub)
            try:
                self.ctx.vault.put(ex.grant_id, ex.access_token, workspace_id=ex.workspace_id,
                                   customer_ref=ref)
            except StoreError as exc:
                raise OperationError(
                    f"Grant {ex.grant_id} was created but its token could not be stored: "
                    f"{exc.user_message}",
                    code="STORE_ERROR",
                ) from None
            made.append(ex)
            return ex.grant_id

        def body() -> tuple[GrantRow, None, dict[str, Any]]:
            # One exchange per token across threads, processes and the backend; a second
            # click (or another tab) answers the grant the first one created.
            try:
                done = self.ctx.vault.exchanges.run(ref, pub, exchange_new, any_customer=True)
            except ExchangeRefused as exc:
                raise OperationError(exc.refusal.message, code=exc.refusal.code) from None
            except ExchangeBusy as exc:
                raise OperationError(str(exc), code="EXCHANGE_BUSY") from None
            if not done.first:
                row = self._stored_row(done.grant_id, ref)
                return row, None, {"grant_id": done.grant_id, "already_exchanged": True,
                                   "user_kind": row.user_kind}
            ex = made[0]
            self._learn_best_effort(ex.grant_id, ex.access_token)
            entry = self.ctx.entry(ex.grant_id)
            self.ctx.rm_update("an exchange", lambda rm: rm.apply_grant(None, entry))
            row = GrantRow(
                grant_id=ex.grant_id, workspace_id=ex.workspace_id, scopes=ex.scope,
                created_at=None, expires_at=None, status="active", customer_ref=ref,
                user_kind=user_kind(entry.user_kind) if entry is not None else None,
                has_token=True, masked_token=ex.masked_token,
                kryptos_user_id=entry.kryptos_user_id if entry is not None else None,
            )
            return row, None, {"grant_id": ex.grant_id, "workspace_id": ex.workspace_id,
                               "user_kind": row.user_kind, "customer_ref": ref}

        # The grant is known only once Kryptos answers: the succeeded event names it, so the
        # grant's history shows how it was connected (the customer reference is in params).
        return self.ctx.run(
            actor, AuditAction.TOKEN_EXCHANGE, body, what="Exchanging the public token",
            target_type="grant", params={"customer_ref": ref},
            target_of=lambda row: row.grant_id,
        )

    def _stored_row(self, gid: str, ref: str) -> GrantRow:
        entry = self.ctx.entry(gid)
        if entry is None:
            raise OperationError(
                f"This public token was already exchanged (grant {gid}), but that grant's "
                "token is no longer stored.", code="NO_TOKEN")
        return GrantRow(
            grant_id=gid, workspace_id=entry.workspace_id, scopes="", created_at=None,
            expires_at=None, status="active", customer_ref=entry.customer_ref or ref,
            user_kind=user_kind(entry.user_kind),
            has_token=True, masked_token=entry.masked_token,
            kryptos_user_id=entry.kryptos_user_id,
        )

    def _learn_best_effort(self, gid: str, token: str) -> None:
        client = self.ctx.client
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="learn") as pool:
            sf = pool.submit(client.check_session, token)
            uf = pool.submit(client.get_userinfo, token)
            try:
                self.ctx.learn_from_userinfo(gid, uf.result())
            except KryptosError as exc:
                log.info("exchange: user info of %s unreadable: %s", gid, exc)
            try:
                session = sf.result()
                if session.user_id:
                    self.ctx.remember(gid, kryptos_user_id=session.user_id)
            except KryptosError as exc:
                log.info("exchange: session of %s unreadable: %s", gid, exc)

    def import_tokens(self, actor: Actor, file: IO[str]) -> ImportReport:
        """Import a CSV of tokens into the vault (audited with counts only). Grants Kryptos
        does not list are refused, as are fields with control characters."""
        self.ctx.check(actor, Permission.MANAGE_TOKENS, AuditAction.TOKEN_IMPORT)
        if file is None:
            raise ValidationError("file", "Please choose a CSV file.")

        def body() -> tuple[ImportReport, None, dict[str, Any]]:
            try:
                listed = self.ctx.client.listed_grant_ids()
            except KryptosError as exc:
                raise UpstreamError.from_kryptos(
                    exc, "Checking the grants against Kryptos (nothing was imported)") from None
            try:
                report = self.ctx.vault.import_csv(file, listed=listed)
            except StoreError as exc:
                raise OperationError(exc.user_message, code="STORE_ERROR") from None
            # New tokens: the worker joins the vault again at its next step.
            self.ctx.rm_update("an import", lambda rm: rm.request_full_sync())
            return report, None, {
                "added": report.added, "updated": report.updated,
                "rejected": len(report.rejected),
            }

        report = self.ctx.run(actor, AuditAction.TOKEN_IMPORT, body, what="Importing tokens",
                              target_type="vault")
        self._file_under_grants(actor, report)
        return report

    def _file_under_grants(self, actor: Actor, report: ImportReport) -> None:
        """One pair per stored grant (target the grant, customer reference in params), so
        each grant's history says when its token was imported; written in one batch."""
        events: list[NewAuditEvent] = []
        for gid, added, ref in report.stored:
            requested = NewAuditEvent(
                actor_username=actor.username, actor_roles=tuple(sorted(actor.roles)),
                action=AuditAction.TOKEN_IMPORT.value, outcome="requested",
                target_type="grant", target_id=gid, params={"customer_ref": ref},
                correlation_id=new_correlation_id())
            events.append(requested)
            events.append(replace(requested, outcome="succeeded",
                                  after={"stored": "added" if added else "replaced"}))
        if events:
            self.ctx.audit_log.append_many(events)
