"""Four-eyes approval, the rules and the request model: which change waits for a second
person (`ApprovalPolicy`), what a request asks for (`Change`) and how the console shows it
(`ApprovalRequest`). The use cases are in `approvals.py`; policy: docs/architecture.md,
"Approvals: the life of a request"."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.operations.permissions import Permission
from services.settings import Settings
from services.store.actions import AuditAction
from services.store.approvals import ApprovalRecord

CHANGED = "CHANGED_SINCE_REQUEST"
REVOKE = AuditAction.GRANT_REVOKE.value
LIMIT = AuditAction.LIMIT_UPDATE.value
TIER_BULK = AuditAction.TIER_APPLY_BULK.value
LIMIT_BULK = AuditAction.LIMIT_UPDATE_BULK.value
ACTIONS = (REVOKE, LIMIT, TIER_BULK, LIMIT_BULK)
LABELS = {REVOKE: "Revoke grant", LIMIT: "Change a Guest's limit",
          TIER_BULK: "Apply a tier", LIMIT_BULK: "Set a limit on many grants"}
#: The kind of change a request holds its grants for: one pending request per grant and kind.
KINDS = {REVOKE: "revoke", LIMIT: "limit", TIER_BULK: "limit", LIMIT_BULK: "limit"}

RolesOf = Callable[[str], Iterable[str] | None]


@dataclass(frozen=True)
class ApprovalPolicy:
    """Which changes wait for a second person (see `why`)."""

    enabled: bool = True
    bulk_over: int = 10
    limit_over: int = 100_000
    ttl_hours: float = 24.0
    bulk_window: float = 3600.0  # seconds: a person's recent changes count with this one

    @classmethod
    def from_settings(cls, s: Settings) -> ApprovalPolicy:
        return cls(s.approvals_enabled, s.approval_bulk_over, s.approval_limit_over,
                   s.approval_ttl_hours, s.approval_bulk_window)

    @classmethod
    def off(cls) -> ApprovalPolicy:
        return cls(enabled=False)

    def window_words(self) -> str:
        """The bulk window in words: "the last hour", "the last 30 minutes"."""
        w = self.bulk_window
        if w == 3600:
            return "the last hour"
        if w % 3600 == 0:
            return f"the last {int(w // 3600)} hours"
        if w % 60 == 0:
            return f"the last {int(w // 60)} minutes"
        return f"the last {w:g} seconds"

    def why(self, action: str, grants: int, limit: int | None,
            limiter: bool | None, recent: int = 0) -> str | None:
        """Why this change needs approval, or None when it does not. `recent`: grants the
        same person changed directly within `bulk_window` (they count with this change)."""
        if not self.enabled:
            return None
        if action == REVOKE:
            return "A revoke cannot be undone."
        if recent and recent + grants > self.bulk_over:
            this = "this one" if grants == 1 else f"these {grants}"
            return (f"You changed {recent} grant{'s' if recent != 1 else ''} in "
                    f"{self.window_words()}; with {this} {recent + grants}, more than "
                    f"{self.bulk_over}.")
        if grants > self.bulk_over:
            return f"It changes {grants} grants (more than {self.bulk_over})."
        if limiter is False:
            return "It switches a limiter off."
        if limit is not None and limit > self.limit_over:
            return f"It sets a limit above {self.limit_over:,}."
        return None


@dataclass(frozen=True)
class Change:
    """What a request asks for: one of `ACTIONS` over grants, with its values."""

    action: str
    grant_ids: tuple[str, ...]
    tier: str | None = None
    limit: int | None = None
    limiter: bool | None = None

    @classmethod
    def revoke(cls, grant_id: str) -> Change:
        return cls(REVOKE, (grant_id,))

    @classmethod
    def guest_limit(cls, grant_id: str, limit: int | None, limiter: bool | None) -> Change:
        return cls(LIMIT, (grant_id,), limit=limit, limiter=limiter)

    @classmethod
    def apply_tier(cls, grant_ids: Iterable[str], tier: str) -> Change:
        return cls(TIER_BULK, tuple(grant_ids), tier=tier)

    @classmethod
    def apply_limit(cls, grant_ids: Iterable[str], limit: int | None,
                    limiter: bool | None) -> Change:
        return cls(LIMIT_BULK, tuple(grant_ids), limit=limit, limiter=limiter)

    @classmethod
    def of(cls, rec: ApprovalRecord) -> Change:
        p = rec.params
        return cls(rec.action, tuple(p["grant_ids"]), p.get("tier"), p.get("limit"),
                   p.get("limiter"))

    @property
    def kind(self) -> str:
        return KINDS[self.action]

    @property
    def permission(self) -> Permission:
        return Permission.REVOKE_GRANT if self.action == REVOKE else Permission.MANAGE_LIMITS

    def values(self) -> dict[str, Any]:
        return {"grant_ids": list(self.grant_ids), "tier": self.tier, "limit": self.limit,
                "limiter": self.limiter}


@dataclass(frozen=True)
class ApprovalRequest:
    """A request as the console shows it."""

    record: ApprovalRecord
    change: Change

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def state(self) -> str:
        return self.record.state

    @property
    def label(self) -> str:
        return LABELS.get(self.change.action, self.change.action)

    @property
    def items(self) -> list[Mapping[str, Any]]:
        """The dry run's items at request time: grant_id, customer_ref, before, after."""
        return list(self.record.params.get("items", []))

    @property
    def result_items(self) -> list[Mapping[str, Any]]:
        return list((self.record.result or {}).get("items", []))

    def outcome(self) -> str:
        """The request's state in words, with what its execution really did: "approved
        and executed" only when every grant was changed as asked."""
        state = self.record.state
        if state != "executed":
            return {"pending": "pending", "approved": "approved (running)"}.get(state, state)
        result = self.record.result or {}
        if not result.get("items"):
            if result.get("error_code"):
                return f"approved; execution failed ({result['error_code']})"
            return "approved; nothing executed"
        counts: Mapping[str, int] = result.get("counts") or {}
        total = sum(counts.values())
        done = counts.get("succeeded", 0) + counts.get("unchanged", 0)
        if done == total:
            return "approved and executed"
        others = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(counts.items())
                           if k not in ("succeeded", "unchanged"))
        if done == 0:
            return f"approved; nothing executed ({others})"
        return f"approved; executed for {done} of {total} grants ({others})"

    def describe(self) -> str:
        c = self.change
        n = len(c.grant_ids)
        what = c.grant_ids[0] if n == 1 else f"{n} grants"
        if c.action == REVOKE:
            return f"Revoke {what}"
        if c.tier is not None:
            return f"Tier {c.tier} on {what}"
        parts = []
        if c.limit is not None:
            parts.append(f"limit {c.limit:,}")
        if c.limiter is not None:
            parts.append("limiter " + ("on" if c.limiter else "off"))
        return f"{', '.join(parts) or 'limit'} on {what}"


__all__ = ["ACTIONS", "CHANGED", "KINDS", "LABELS", "LIMIT", "LIMIT_BULK", "REVOKE", "TIER_BULK",
           "ApprovalPolicy", "ApprovalRequest", "Change", "RolesOf"]
