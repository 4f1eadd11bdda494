"""Every read the pages make, one module per resource, and the cache that keeps them for a
short time (`dashboard.reads.cache`).

Pages never call the operations: they read through `reads.<read>` and change through
`dashboard.actions` (which drops what it changed from the cache). This package's names are
the reads of its modules:

- `grants`: the read model (pages, counts, overview, freshness, CSV export), one grant's
  detail, history and revoke, an integration;
- `limits`: tiers, bulk candidates, each row's limit, the user's kept bulk draft, the
  grant ids a filter matches;
- `webhooks`: the grant timeline, recent failures, integration news;
- `audit`: the audit log page, export and verification;
- `approvals`: the four-eyes requests;
- `sync`: the sync worker's and the reconciler's state;
- `cache`: the cache engine (single flight, the read model's version clock, what a change
  drops).

No Streamlit import here.
"""

from __future__ import annotations

from dashboard.reads.approvals import (
    approvals_find,
    approvals_history,
    approvals_mine,
    approvals_waiting,
    approvals_waiting_count,
    before_now,
    pending_requests,
)
from dashboard.reads.audit import (
    PreparedExport,
    audit_event_links,
    audit_filter_choices,
    audit_page,
    export_audit,
    verify_audit,
)
from dashboard.reads.cache import (
    CACHE,
    FRESH,
    ReadCache,
    VersionClock,
    invalidate_all,
    invalidate_grant,
    invalidate_lists,
    refresh_all,
    refresh_grant,
)
from dashboard.reads.grants import (
    PagePosition,
    counts,
    export_grants_csv,
    find_grant,
    freshness,
    grant_detail,
    grant_history,
    grant_page,
    integration,
    overview,
    page_cursor,
    revoke_event,
)
from dashboard.reads.limits import (
    CANDIDATES_MAX,
    bulk_candidate_count,
    bulk_candidates,
    bulk_draft,
    limits_of,
    match_filter,
    matching_tier,
    tier_label,
    tiers,
)
from dashboard.reads.sync import reconciler_status, sync_status
from dashboard.reads.webhooks import (
    integration_news,
    recent_failures,
    timeline,
    timeline_shows_actions,
)

__all__ = [
    "CACHE", "CANDIDATES_MAX", "FRESH", "PagePosition", "PreparedExport", "ReadCache",
    "VersionClock",
    "approvals_find", "approvals_history", "approvals_mine", "approvals_waiting",
    "approvals_waiting_count",
    "audit_event_links", "audit_filter_choices", "audit_page", "before_now", "bulk_candidate_count",
    "bulk_candidates", "bulk_draft", "counts",
    "export_audit", "export_grants_csv", "find_grant", "freshness", "grant_detail",
    "grant_history",
    "grant_page", "integration", "integration_news", "invalidate_all", "invalidate_grant",
    "invalidate_lists", "limits_of", "match_filter", "matching_tier", "overview",
    "page_cursor", "pending_requests", "recent_failures", "reconciler_status", "refresh_all",
    "refresh_grant", "revoke_event", "sync_status", "tier_label", "tiers", "timeline",
    "timeline_shows_actions", "verify_audit",
]
