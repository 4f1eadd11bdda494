"""One grant's limit change, shared by the single path (`LimitOps.set_guest_limit`) and the
bulk engine (`BulkRun`): read the limit as it is, check it against what the person saw,
refuse a Linked user, PATCH, and say what it was before and after."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.kryptos.errors import KryptosError
from services.operations.context import UNREAD, EntryArg, OpsContext, Unread
from services.operations.errors import OperationError, StaleChange
from services.operations.limit_value import UNKNOWN, GuestLimit
from services.operations.models import LimitChange
from services.store.actions import AuditAction
from services.store.audit import AuditEvent
from services.store.vault import VaultEntry

log = logging.getLogger(__name__)

NOT_ANON_MESSAGE = (
    "Limit not changed: this user is not a Guest account. Transaction limits only apply to "
    "Guest users; Linked users manage their own volume."
)


@dataclass(frozen=True)
class LimitRead:
    """A grant's limit read before a change: the stored pair (limit, limiter) as the audit
    log keeps it (None, None when nothing is known), the limit in force, Guest or not,
    and the vault entry as it now is."""

    limit: int | None
    limiter: bool | None
    value: GuestLimit
    is_guest: bool | None
    entry: VaultEntry | None = None

    @property
    def known(self) -> bool:
        return self.value.known


def before_fields(c: LimitChange) -> dict[str, Any]:
    """An audited limit change's `before` (the stored pair)."""
    return {"transaction_limit": c.before_limit, "enable_limiter": c.before_limiter}


def after_fields(c: LimitChange) -> dict[str, Any]:
    """An audited limit change's `after` (the stored pair)."""
    return {"transaction_limit": c.after_limit, "enable_limiter": c.after_limiter}


class GrantLimitChange:
    """The per-grant steps of a limit change, over the operations' context."""

    def __init__(self, ctx: OpsContext) -> None:
        self.ctx = ctx

    def __repr__(self) -> str:
        return f"GrantLimitChange({self.ctx!r})"

    def read(self, gid: str, entry: EntryArg = UNREAD) -> LimitRead:
        """The limit now, from the user info or else the audit log's last succeeded change;
        its value is unknown when neither says anything."""
        if isinstance(entry, Unread):
            entry = self.ctx.entry(gid)
        token = self.ctx.token(gid, entry)
        if token is not None:
            try:
                info = self.ctx.client.get_userinfo(token)
            except KryptosError as exc:
                log.info("limit: user info of %s unreadable: %s", gid, exc)
            else:
                entry = self.ctx.learn_from_userinfo(gid, info, entry)
                lim = info.transaction_limit
                return LimitRead(lim, lim is not None, GuestLimit.from_userinfo(lim),
                                 info.is_guest, entry)
        is_guest = None if entry is None or entry.user_kind is None else entry.user_kind == "guest"
        last = self.last_change(gid)
        if last is not None and isinstance(last.after, Mapping):
            after = last.after
            lim, on = after.get("transaction_limit"), after.get("enable_limiter")
            return LimitRead(lim, on, GuestLimit.from_json(after), is_guest, entry)
        return LimitRead(None, None, UNKNOWN, is_guest, entry)

    def change(
        self,
        gid: str,
        limit: int | None,
        limiter: bool | None,
        entry: EntryArg = UNREAD,
        *,
        read_before: bool = True,
        seen: GuestLimit = UNKNOWN,
    ) -> LimitChange:
        """PATCH one grant's limit, refusing a grant known to be Linked before the call.
        `read_before=False`: skip the user-info pre-read (the API reports `previous_*`).
        `seen`: the limit the person saw; `StaleChange` when it differs now."""
        if isinstance(entry, Unread):
            entry = self.ctx.entry(gid)
        if read_before or seen.known:
            before = self.read(gid, entry)
            self.check_seen(gid, before, seen)
        else:
            kind = getattr(entry, "user_kind", None)
            before = LimitRead(None, None, UNKNOWN,
                               None if kind is None else kind == "guest", entry)
        if before.is_guest is False:
            raise OperationError(NOT_ANON_MESSAGE, code="NOT_ANON_USER")
        entry = before.entry
        try:
            res = self.ctx.client.update_transaction_limit(
                gid, transaction_limit=limit, enable_limiter=limiter
            )
        except KryptosError as exc:
            if exc.code == "NOT_ANON_USER":
                self.ctx.remember(gid, entry, user_kind="linked")
            raise
        self.ctx.remember(gid, entry, user_kind="guest", kryptos_user_id=res.user_id)
        self.ctx.rm_update("a limit change", lambda rm: rm.apply_limit_change(
            gid, res.transaction_limit, res.enable_limiter))
        before_limit, before_limiter, before_known = before.limit, before.limiter, before.known
        reported = (res.previous_transaction_limit is not None
                    or res.previous_enable_limiter is not None)
        if reported:
            before_limit = res.previous_transaction_limit
            before_limiter = res.previous_enable_limiter
            before_known = True
        return LimitChange(
            grant_id=gid,
            before_limit=before_limit,
            before_limiter=before_limiter,
            after_limit=res.transaction_limit,
            after_limiter=res.enable_limiter,
            resync=res.resync,
            before_reported=reported,
            before_known=before_known,
        )

    def check_seen(self, gid: str, before: LimitRead, seen: GuestLimit) -> None:
        """Raise `StaleChange` when the limit read now is not the one seen (no check when
        either is unknown)."""
        if not seen.known or not before.known:
            return
        now = before.value
        if now.same_limit(seen):
            return
        who, when = None, None
        last = self.last_change(gid)
        if last is not None and GuestLimit.from_json(last.after).same_limit(now) \
                and isinstance(last.after, Mapping):
            who, when = last.actor_username, last.ts
        raise StaleChange("the limit", seen.words(), now.words(), who, when, now_value=now)

    def last_change(self, gid: str) -> AuditEvent | None:
        """The newest succeeded limit change or tier application on this grant."""
        last = None
        for action in (AuditAction.LIMIT_UPDATE, AuditAction.TIER_APPLY):
            ev = self.ctx.audit_log.last_event(gid, action=action, outcome="succeeded")
            if ev is not None and (last is None or ev.seq > last.seq):
                last = ev
        return last


__all__ = ["NOT_ANON_MESSAGE", "GrantLimitChange", "LimitRead", "after_fields",
           "before_fields"]
