"""What happened to grants, from the webhooks Kryptos sent (stored by the customer backend)
and the console's audit log: one grant's timeline, recent integration failures, and the
newest webhook news of one integration (the resync watch's cheap check before polling).

Reads only: the webhooks are in the local database, nothing here calls Kryptos."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.kryptos.errors import KryptosError
from services.kryptos.models import Integration
from services.operations import validation as v
from services.operations.context import OpsContext
from services.operations.permissions import Actor, Permission, can
from services.store.actions import AuditAction
from services.store.audit import AuditEvent, AuditFilter
from services.store.webhook_events import WebhookEvent

log = logging.getLogger(__name__)

FAILURE_TYPES = ("integration.failed",)
INTEGRATION_TYPES = ("integration.created", "integration.updated", "integration.failed",
                     "integration.deleted")
FAILURE_WINDOW = timedelta(hours=24)
FAILURE_LIMIT = 10
TIMELINE_LIMIT = 100


@dataclass(frozen=True)
class GrantTimeline:
    """One grant's webhooks and (when the actor may see them) its audit events, each newest
    first. `audit_shown` is False when the actor may not read the grant's history."""

    grant_id: str
    webhooks: tuple[WebhookEvent, ...]
    audit: tuple[AuditEvent, ...]
    audit_shown: bool


@dataclass(frozen=True)
class RecentFailure:
    """An `integration.failed` webhook with the grant it belongs to (None when no stored
    grant names its user) and that grant's customer reference."""

    event: WebhookEvent
    grant_id: str | None
    customer_ref: str | None


@dataclass(frozen=True)
class IntegrationNews:
    """The newest webhook about one integration: the integration as the event carried it."""

    integration: Integration
    event_type: str
    received_at: datetime


def integration_of(event: WebhookEvent) -> Integration | None:
    """The integration an integration event carries (None when it carries none, or a
    malformed one)."""
    if not event.type.startswith("integration.") or not event.data:
        return None
    try:
        return Integration.from_api(event.data)
    except KryptosError:
        return None


def _names_grant(event: AuditEvent, gid: str) -> bool:
    after = event.after
    return isinstance(after, Mapping) and after.get("grant_id") == gid


class TimelineOps:
    """Reads over the received webhooks and the audit log."""

    def __init__(self, ctx: OpsContext) -> None:
        self.ctx = ctx

    def __repr__(self) -> str:
        return f"TimelineOps({self.ctx!r})"

    def _user_of(self, gid: str) -> str | None:
        entry = self.ctx.entry(gid)
        return entry.kryptos_user_id if entry is not None else None

    def grant_timeline(self, actor: Actor, grant_id: str,
                       limit: int = TIMELINE_LIMIT) -> GrantTimeline:
        """The grant's webhooks (also those of its Kryptos user not tied to it yet) and,
        with `Permission.VIEW_GRANT_HISTORY`, its audit events; each newest first."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW, "grant", grant_id)
        gid = v.grant_id(grant_id)
        hooks = self.ctx.webhooks.for_grant(gid, limit, kryptos_user_id=self._user_of(gid))
        shown = can(actor, Permission.VIEW_GRANT_HISTORY)
        audit: tuple[AuditEvent, ...] = ()
        if shown:
            audit = self._audit(gid, limit)
        return GrantTimeline(gid, tuple(hooks), audit, shown)

    def _audit(self, gid: str, limit: int) -> tuple[AuditEvent, ...]:
        """Events aimed at the grant, and the customer backend's events aimed at the grant's
        customer that name this grant in their outcome (the exchange that stored it, a
        session resume), newest first."""
        log_ = self.ctx.audit_log
        events = list(log_.query(AuditFilter(target_id=gid), page=1, page_size=limit).events)
        entry = self.ctx.entry(gid)
        if entry is not None and entry.customer_ref:
            page = log_.query(AuditFilter(target_id=entry.customer_ref[:200]), page=1,
                              page_size=limit)
            events += [e for e in page.events
                       if e.target_type == "customer" and _names_grant(e, gid)]
        events.sort(key=lambda e: e.seq, reverse=True)
        return tuple(events[:limit])

    def recent_failures(self, actor: Actor, window: timedelta = FAILURE_WINDOW,
                        limit: int = FAILURE_LIMIT, *,
                        now: datetime | None = None) -> tuple[RecentFailure, ...]:
        """`integration.failed` webhooks received within `window`, newest first, at most
        `limit`, each with its grant (found through the vault when the event has none)."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW)
        since = (now or datetime.now(UTC)) - window
        out = []
        for event in self.ctx.webhooks.recent(FAILURE_TYPES, limit, since=since):
            entry = None
            if event.grant_id:
                entry = self.ctx.entry(event.grant_id)
            elif event.kryptos_user_id:
                entry = self.ctx.vault.for_user(event.kryptos_user_id)
            gid = event.grant_id or (entry.grant_id if entry is not None else None)
            out.append(RecentFailure(event, gid, entry.customer_ref if entry else None))
        return tuple(out)

    def integration_news(self, actor: Actor, grant_id: str, wallet_id: str,
                         since: datetime) -> IntegrationNews | None:
        """The newest integration webhook for this wallet of the grant received after
        `since`, or None (no webhook yet: the caller polls Kryptos instead)."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW, "grant", grant_id)
        gid, wid = v.grant_id(grant_id), v.wallet_id(wallet_id)
        for event in self.ctx.webhooks.for_grant(gid, TIMELINE_LIMIT, since=since,
                                                 kryptos_user_id=self._user_of(gid)):
            if event.wallet_id != wid or event.type not in INTEGRATION_TYPES:
                continue
            found = integration_of(event)
            if found is not None:
                return IntegrationNews(found, event.type, event.received_at)
        return None


__all__ = ["FAILURE_LIMIT", "FAILURE_TYPES", "FAILURE_WINDOW", "GrantTimeline",
           "IntegrationNews", "RecentFailure", "TimelineOps", "integration_of"]
