"""Actors, roles and the one table that says which role may do what."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    SUPPORT = "support"
    FINANCE = "finance"
    ADMIN = "admin"


ROLES: tuple[str, ...] = tuple(r.value for r in Role)


class Permission(StrEnum):
    VIEW_GRANTS = "view_grants"  # list grants, grant detail, overview
    RESYNC_LATEST = "resync_latest"
    RESYNC_FROM_START = "resync_from_start"
    REVOKE_GRANT = "revoke_grant"
    MANAGE_LIMITS = "manage_limits"  # set a Guest's limit, switch limiter, apply tier, bulk
    MANAGE_TOKENS = "manage_tokens"  # create link token, exchange public token, import tokens
    READ_AUDIT = "read_audit"  # read, export and verify the audit log
    # One grant's own audit history (on its detail page): for those who act on grants or
    # audit them. A viewer reads grants but not who did what to them, nor why.
    VIEW_GRANT_HISTORY = "view_grant_history"
    # Console users: unlock a locked login (admin only).
    MANAGE_USERS = "manage_users"
    # Unsettled outcomes, the audit journal, the Kryptos check; run the reconciler (admin).
    SETTLE_OUTCOMES = "settle_outcomes"
    # The sync worker's state: holder, errors, calls a second (admin only).
    VIEW_SYNC_STATUS = "view_sync_status"


# The table. A user with several roles has the union of their permissions.
PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.VIEW_GRANTS}),
    Role.SUPPORT: frozenset(
        {
            Permission.VIEW_GRANTS,
            Permission.RESYNC_LATEST,
            Permission.RESYNC_FROM_START,
            Permission.REVOKE_GRANT,
            Permission.MANAGE_TOKENS,
            Permission.VIEW_GRANT_HISTORY,
        }
    ),
    Role.FINANCE: frozenset(
        {
            Permission.VIEW_GRANTS,
            Permission.MANAGE_LIMITS,
            Permission.READ_AUDIT,
            Permission.VIEW_GRANT_HISTORY,
        }
    ),
    Role.ADMIN: frozenset(Permission),
}


def canonical_username(name: str) -> str:
    """The one form of a username wherever people are compared: NFKC-normalised, case-folded
    and stripped (`SUPPORT`, `Support` and full-width `ｓｕｐｐｏｒｔ` are all `support`)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return folded.strip()


@dataclass(frozen=True)
class Actor:
    """The person acting. `roles` are role names; unknown names grant nothing. The username
    is kept in its canonical form (`canonical_username`), so that two actors are the same
    person exactly when their usernames are equal."""

    username: str
    display_name: str = ""
    roles: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "username", canonical_username(self.username))
        if not isinstance(self.roles, frozenset):
            object.__setattr__(self, "roles", frozenset(self.roles))

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_for(self.roles)


def permissions_for(roles: frozenset[str] | set[str] | tuple[str, ...]) -> frozenset[Permission]:
    """The union of the permissions of the given roles (unknown role names are ignored)."""
    out: set[Permission] = set()
    for name in roles:
        try:
            out |= PERMISSIONS[Role(name)]
        except ValueError:
            continue
    return frozenset(out)


def can(actor: Actor, permission: Permission) -> bool:
    """Whether the actor's roles allow the permission."""
    return permission in permissions_for(actor.roles)
