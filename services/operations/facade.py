"""`Operations`: the console's use cases, one object per resource over one shared context.

    ops.grants   page, counts, freshness, export_csv, overview, grant_detail, integration,
                 grant_history, revoke_grant, resync_integration  (grants.py)
    ops.limits   tiers, tier, set_guest_limit, apply_tier, apply_limit, resume_bulk
                                                             (limits.py, bulk.py)
    ops.bulk_drafts  load, save, clear (a user's Guest limits selection and dry run),
                 match_filter ("select all that match")     (bulk_drafts.py)
    ops.connect  create_link_token, exchange_public_token, import_tokens  (connect.py)
    ops.audit    audit_page, export_audit, verify_audit      (audit.py)
    ops.auth     record_login, record_login_failed, record_logout  (auth.py)
    ops.sso      admit (single sign-on: claims -> user and roles, or a refusal),
                 record_sso_login                            (sso.py)
    ops.timeline grant_timeline, recent_failures, integration_news  (timeline.py; webhooks)
    ops.reconciler  settles `requested` events without an outcome (reconcile.py)
    ops.approvals  four-eyes requests: needs_approval, request, approve, reject, cancel,
                 list_waiting_for, list_mine, history, pending_for_grant   (approvals.py)
    ops.four_eyes  the gate every change use case asks (four_eyes.py)
    ops.sync     status (the read model's sync worker, admins)  (sync.py)
    ops.charts   the charts' counts: grants by status per day, failing by provider,
                 freshness, approvals by age, audit events per day  (charts.py)
    ops.readmodel  the local copy of the grants the pages read (services/store/readmodel/)
    ops.require  the permission guard for a page             (context.py)
"""

from __future__ import annotations

from collections.abc import Iterable

from services.kryptos.client import KryptosClient
from services.operations.approval_policy import ApprovalPolicy
from services.operations.approvals import ApprovalOps
from services.operations.audit import AuditOps
from services.operations.auth import AuthOps
from services.operations.bulk_drafts import BulkDraftOps
from services.operations.charts import ChartOps
from services.operations.connect import ConnectOps
from services.operations.context import OpsContext
from services.operations.four_eyes import FourEyes
from services.operations.grants import GrantOps
from services.operations.limits import LimitOps
from services.operations.permissions import Actor, Permission
from services.operations.reconcile import Reconciler
from services.operations.sso import SsoOps
from services.operations.sync import SyncOps
from services.operations.sync_worker import SyncWorkerHandle
from services.operations.timeline import TimelineOps
from services.settings import Settings, Tier
from services.store.approvals import ApprovalStore
from services.store.audit import AuditLog
from services.store.bulk_drafts import BulkDraftStore
from services.store.cli_audit import audit_anchor_file
from services.store.db import open_database
from services.store.journal import AuditJournal
from services.store.readmodel import ReadModel
from services.store.vault import TokenVault, load_vault_key
from services.store.webhook_events import WebhookEventStore


class Operations:
    """The console's use cases over a Kryptos client, an audit log and a token vault."""

    def __init__(
        self,
        client: KryptosClient,
        audit: AuditLog,
        vault: TokenVault,
        tiers: Iterable[Tier],
        *,
        max_workers: int = 8,
        webhooks: WebhookEventStore | None = None,
        journal: AuditJournal | None = None,
        approval_policy: ApprovalPolicy | None = None,
        readmodel: ReadModel | None = None,
    ) -> None:
        """`approval_policy`: None holds nothing for approval (`from_settings` passes the
        configured one, on by default)."""
        self.ctx = OpsContext(client, audit, vault, tiers, max_workers=max_workers,
                              webhooks=webhooks, journal=journal, readmodel=readmodel)
        # Four-eyes: every change use case asks the gate; the approvals execute through it.
        self.four_eyes = FourEyes(self.ctx, ApprovalStore(audit.db), approval_policy)
        self.grants = GrantOps(self.ctx, self.four_eyes)
        self.limits = LimitOps(self.ctx, self.four_eyes)
        self.connect = ConnectOps(self.ctx)
        self.audit = AuditOps(self.ctx)
        self.auth = AuthOps(self.ctx)
        self.sso = SsoOps(self.ctx)
        self.timeline = TimelineOps(self.ctx)
        self.reconciler = Reconciler(self.ctx)
        # The approvals live in the console's database (the audit log's).
        self.approvals = ApprovalOps(self.ctx, self.four_eyes, self.grants, self.limits)
        self.sync = SyncOps(self.ctx)
        self.charts = ChartOps(self.ctx)
        # Each user's Guest limits selection and dry run, in the console's database.
        self.bulk_drafts = BulkDraftOps(self.ctx, BulkDraftStore(audit.db))

    @classmethod
    def from_settings(cls, settings: Settings, client: KryptosClient | None = None) -> Operations:
        """Open the database (migrations applied), load the vault key, build the client."""
        db = open_database(settings.effective_database_url)
        vault = TokenVault(db, load_vault_key(settings))
        if client is None:
            client = KryptosClient.from_settings(settings)
        log = AuditLog(db, anchor_file=audit_anchor_file(settings))
        journal = AuditJournal(settings.effective_audit_journal_file)
        return cls(client, log, vault, settings.tiers, journal=journal,
                   approval_policy=ApprovalPolicy.from_settings(settings),
                   readmodel=ReadModel(db, settings.tiers))

    def __repr__(self) -> str:
        return f"Operations(max_workers={self.ctx.max_workers}, tiers={len(self.ctx.tiers)})"

    @property
    def readmodel(self) -> ReadModel:
        return self.ctx.readmodel

    def attach_sync_worker(self, worker: SyncWorkerHandle) -> None:
        """The process's sync worker (services.sync.SyncWorker), for `ops.sync.status`."""
        self.ctx.sync_worker = worker

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self.ctx.tiers

    def require(
        self,
        actor: Actor,
        permission: Permission | str,
        action: str,
        target_type: str | None = None,
        target_id: str | None = None,
    ) -> None:
        """`OpsContext.require`: refuse (one `denied` event) unless the actor may."""
        self.ctx.require(actor, permission, action, target_type, target_id)
