"""The Guest limit section: the current limit and tier, and the limit form with its
confirmation of a risky change and its refusal of a change made against an old value.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import actions, reads
from dashboard.context import PageContext
from dashboard.grant_detail.common import FLASH_KEY, PENDING_KEY, approval_caption
from dashboard.ui import escape_markdown, show_error
from services.operations import (
    ConfirmationRequired,
    GrantDetail,
    OperationError,
    Permission,
    can,
    validation,
)
from services.operations.limit_value import GuestLimit

LIMIT_FORM_KEYS = ("limit_value", "limit_limiter", "limit_tier", "limit_reason", "limit_ticket")
NO_TIER = "(no tier)"
CONFIRM_KEY = "limit_pending"  # a change waiting for its confirmation (gid, kwargs, why, seen)
STALE_KEY = "limit_stale"  # the refusal of a change made against an old value
SEEN_KEY = "limit_seen"  # (gid, GuestLimit) drawn by the previous run: what the person saw


def seen_limit(detail: GrantDetail) -> GuestLimit:
    """What the page shows of the limit (the user info's; unknown when unread)."""
    return detail.limit


def guest_limit(ctx: PageContext, detail: GrantDetail) -> None:
    st.subheader("Transaction limit")
    if detail.is_guest is False:
        st.info("This is a Linked user: transaction limits apply to Guest users only.")
        return
    if detail.is_guest is None:
        st.caption("Guest or Linked is not known yet for this grant.")
    seen = seen_limit(detail)
    if seen.known:
        tier = reads.matching_tier(ctx.ops, seen)
        m1, m2, m3 = st.columns(3)
        m1.metric("Limiter", "on" if seen.limiter else "off")
        m2.metric("Effective limit", seen.label(), help=validation.LIMIT_UNIT_HELP)
        m3.metric("Tier", tier.name if tier is not None else "none (custom limit)")
    else:
        st.text("Limiter, effective limit and tier: unknown (user info not available).")
    if can(ctx.actor, Permission.MANAGE_LIMITS) and detail.grant.status == "active":
        _limit_form(ctx, detail.grant.grant_id, seen)


def _limit_form(ctx: PageContext, gid: str, now: GuestLimit) -> None:
    # A click reruns the page, which reads the grant again (another tab's change included):
    # the change is made against what the previous run drew, i.e. what the person saw.
    drawn = st.session_state.get(SEEN_KEY)
    st.session_state[SEEN_KEY] = (gid, now)
    seen = drawn[1] if drawn is not None and drawn[0] == gid else now
    stale = st.session_state.pop(STALE_KEY, None)
    if stale is not None:
        st.error(escape_markdown(stale), icon=":material/sync_problem:")
        st.caption("The values above are the current ones: review them and apply again.")
    if _pending(ctx, gid):
        return
    tiers = [NO_TIER] + [t.name for t in reads.tiers(ctx.ops)]
    with st.form("limit_form"):
        st.caption(
            "Set a limit and/or switch the limiter, or apply a tier. A new limit switches "
            "the limiter on when it is left on \"keep\" (a limit with the limiter off is "
            "not enforced); choose \"off\" to store a limit without enforcing it."
        )
        approval_caption(ctx, "limit", gid)
        f1, f2, f3 = st.columns(3)
        # Text, not a number input: "12.5" or "1e3" is refused with the reason, not rounded.
        typed = f1.text_input("New limit", key="limit_value",
                              placeholder="transactions, e.g. 7500",
                              help=validation.LIMIT_UNIT_HELP)
        beside: dict[str, Any] = {"transaction_limit": f1.empty()}
        limiter = f2.selectbox("Limiter", actions.LIMITER_CHOICES, key="limit_limiter")
        tier = f3.selectbox("Tier", tiers, key="limit_tier",
                            format_func=lambda n: reads.tier_label(ctx.ops, n))
        beside["tier"] = f3.empty()
        why = st.text_input("Reason", key="limit_reason")
        beside["reason"] = st.empty()
        ticket = st.text_input("Ticket (optional)", key="limit_ticket")
        beside["ticket"] = st.empty()
        if not st.form_submit_button("Apply limit"):
            return
        values = dict(limit=typed, limiter=limiter, tier=None if tier == NO_TIER else tier,
                      reason=why, ticket=ticket)
        # The use case checks every field first (each refusal beside its field); only a
        # change whose fields are all valid gets its question (`ConfirmationRequired`).
        _apply_limit(ctx, gid, seen, values, beside)


def _restore(values: dict[str, Any]) -> None:
    """Put what was typed back into the form (hidden while its question was shown, so
    Streamlit dropped the fields' values)."""
    st.session_state.update({
        "limit_value": values.get("limit") or "", "limit_limiter": values["limiter"],
        "limit_tier": values.get("tier") or NO_TIER, "limit_reason": values.get("reason") or "",
        "limit_ticket": values.get("ticket") or "",
    })


def _cancel(values: dict[str, Any]) -> None:
    st.session_state.pop(CONFIRM_KEY, None)
    _restore(values)


def _pending(ctx: PageContext, gid: str) -> bool:
    """The confirmation of a risky change (before -> after); True while it is shown."""
    pending = st.session_state.get(CONFIRM_KEY)
    if pending is None or pending[0] != gid:
        return False
    _, values, check, seen = pending
    with st.container(border=True):
        st.warning(escape_markdown(check) + " Apply it?", icon=":material/warning:")
        st.text(f"Reason: {values.get('reason') or ''}".strip()
                + (f"\nTicket: {values['ticket']}" if values.get("ticket") else ""))
        b1, b2 = st.columns(2)
        if b1.button("Yes, apply this change", key="limit_confirm", type="primary"):
            st.session_state.pop(CONFIRM_KEY, None)
            _restore(values)  # kept for the form, should the change be refused
            _apply_limit(ctx, gid, seen, values, {}, confirmed=True)
        b2.button("Cancel", key="limit_cancel", on_click=_cancel, args=(values,),
                  help="Back to the form, with what you typed.")
    return True


def _refusal(exc: OperationError, beside: dict[str, Any]) -> None:
    """A refusal beside the field it is about, else as an error here."""
    spot = beside.get(getattr(exc, "field", ""))
    if spot is not None:
        spot.error(exc.user_message, icon=":material/error:")
    else:
        show_error(exc)


def _apply_limit(ctx: PageContext, gid: str, seen: GuestLimit, values: dict[str, Any],
                 beside: dict[str, Any], *, confirmed: bool = False) -> None:
    try:
        with st.spinner("Changing the limit..."), actions.watch_records() as pending:
            res = actions.submit_limit(ctx.ops, ctx.actor, gid, seen=seen,
                                       confirmed=confirmed, **values)
    except ConfirmationRequired as exc:  # the use case asks: show its question
        st.session_state[CONFIRM_KEY] = (gid, values, exc.question, seen)
        st.rerun()
    except OperationError as exc:
        if exc.code == "STALE":
            # Shown after a rerun, over the values read afresh (the cache was dropped).
            st.session_state[STALE_KEY] = exc.user_message
            st.rerun()
        _refusal(exc, beside)
        return
    st.session_state[FLASH_KEY] = res.summary()
    st.session_state[PENDING_KEY] = bool(pending) or bool(
        res.tier_item is not None and res.tier_item.record_pending)
    for k in LIMIT_FORM_KEYS:  # an empty form: a second click changes nothing
        st.session_state.pop(k, None)
    st.rerun()
