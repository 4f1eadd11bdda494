"""Guest limits (finance, admin): apply a tier or a custom limit to many Guest grants.

Pick grants in a table (a click ticks a row, a Shift-click the rows between), take every
grant a filter matches, or upload a CSV of grant ids; preview with a dry run (before and
after per grant), then apply with a progress bar; the per-grant results can be downloaded.
The selection, the change and the dry run are the user's draft, kept in the database
(`reads.bulk_draft`, `actions.save_bulk_draft`): a reload, a new tab or another replica
continues it, and Apply still checks each grant against its limit read then.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from dashboard import actions, bulk_view, reads, rm_sections
from dashboard.bulk_view import DrawnTable
from dashboard.charts import finance as finance_charts
from dashboard.context import page_context
from dashboard.csv_io import bulk_csv, parse_grant_id_csv, screen_frame
from dashboard.ui import escape_markdown, record_pending_note, show_error
from services.operations import (
    BulkResult,
    ConfirmationRequired,
    OperationError,
    Permission,
    can,
    validation,
)
from services.operations.bulk_drafts import DraftDryRun

RESULT_KEY = "bulk_result"  # (plan, preview BulkResult, BulkResult)
HELD_KEY = "bulk_held"  # (plan, what the request says): the Apply that became a request
CONFIRM_KEY = "bulk_confirm"  # (plan, the use case's question) before a risky Apply
PICKER_PREFIX = "bulk_picker_"  # + generation: the table's key, renewed after each merge
PICKER_GEN_KEY = "bulk_picker_gen"
PICKER_ROWS_KEY = "bulk_picker_rows"
UPLOAD_SEEN_KEY = "bulk_upload_seen"  # the uploader's file this session read
UPLOAD_IGNORED_KEY = "bulk_upload_ignored"  # a file "Clear selection" dropped
CLEAR_ERROR_KEY = "bulk_clear_error"
DRAFT_KEY = "bulk_draft_read"  # the draft as this session last read or saved it
DROP_MATCH_KEY = "bulk_match_dropped"  # "Drop these" was clicked: the filter selection goes
# Column widths (px) that keep the grant id, Current limit and Tier in view at 800 px wide.
PICKER_ID_PX, PICKER_LIMIT_PX, PICKER_TIER_PX = 240, 95, 80
TIER, CUSTOM = "Tier", "Custom limit"

ctx = page_context()

st.title("Guest limits")

if not can(ctx.actor, Permission.MANAGE_LIMITS):
    # Not in this user's navigation; reached anyway (old link): ask the operations, which
    # refuse and record the attempt as `denied`.
    refusal = actions.refuse_unless_allowed(ctx.ops, ctx.actor)
    st.error(
        refusal.user_message if refusal is not None else "You cannot manage Guest limits.",
        icon=":material/block:",
    )
    st.stop()

finance_charts.finance_section(ctx)

# --- tiers -------------------------------------------------------------------------------

st.subheader("Tier presets")
st.dataframe(
    bulk_view.tiers_frame(reads.tiers(ctx.ops)),
    hide_index=True,
    key="tiers_table",
    column_config={
        "tier": st.column_config.TextColumn("Tier"),
        "limit": st.column_config.TextColumn("Transaction limit",  # "no cap", never None
                                             help=validation.LIMIT_UNIT_HELP),
        "limiter": st.column_config.TextColumn("Limiter"),
    },
)

# --- which grants -------------------------------------------------------------------------

st.subheader("Grants")
st.caption("Active Guest grants and grants whose kind is not known yet. Tick the ones to change "
           "(Shift-click a second row to tick the rows between), or select all that match "
           "the filter. Your selection and its dry run are kept for you: a reload or another "
           "tab shows them.")
rm_sections.freshness(ctx)

# The user's work as kept in the database (one key read): what the picker, the file, the
# filter selection, the change and the dry run start from in every tab and replica.
try:
    draft = reads.bulk_draft(ctx.ops, ctx.actor, st.session_state.get(DRAFT_KEY))
except OperationError as exc:
    show_error(exc)
    st.stop()
if draft.problems:  # said once: what could be read is written back, the rest is gone
    for problem in draft.problems:
        st.warning(problem, icon=":material/warning:")
    try:
        draft = actions.save_bulk_draft(ctx.ops, ctx.actor, draft)
    except OperationError as exc:
        show_error(exc)
st.session_state[DRAFT_KEY] = draft


def _keep(**changes: object) -> None:
    """Write the draft with these changes (only when something changed)."""
    global draft
    wanted = replace(draft, **changes)  # type: ignore[arg-type]
    if wanted != draft:
        try:
            draft = st.session_state[DRAFT_KEY] = actions.save_bulk_draft(
                ctx.ops, ctx.actor, wanted)
        except OperationError as exc:
            show_error(exc)


def _selection_of(gen: int) -> list[int] | None:
    """The rows the browser reports selected in the table of generation `gen` (every click
    so far on that table), None before its first click."""
    state = st.session_state.get(f"{PICKER_PREFIX}{gen}")
    if state is None:
        return None
    return [int(r) for r in state["selection"]["rows"]]


def _new_table() -> None:
    st.session_state[PICKER_GEN_KEY] = int(st.session_state.get(PICKER_GEN_KEY, 0)) + 1
    st.session_state.pop(PICKER_ROWS_KEY, None)


def _clear_selection() -> None:
    """Ticks, file, filter selection and dry run go (here and in the database)."""
    st.session_state.pop(DRAFT_KEY, None)
    try:
        actions.clear_bulk_draft(ctx.ops, ctx.actor)
    except OperationError as exc:
        st.session_state[CLEAR_ERROR_KEY] = exc.user_message
    _new_table()
    # The uploader cannot be emptied from here: its file is ignored until another comes.
    st.session_state[UPLOAD_IGNORED_KEY] = st.session_state.get(UPLOAD_SEEN_KEY)
    st.session_state.pop(UPLOAD_SEEN_KEY, None)


if st.session_state.pop(DROP_MATCH_KEY, False):  # "Drop these", before anything is drawn
    _keep(match=None)

search = st.text_input("Filter the table", key="bulk_search")
try:
    shown = reads.bulk_candidates(ctx.ops, ctx.actor, search)
    matching = reads.bulk_candidate_count(ctx.ops, ctx.actor, search)
except OperationError as exc:
    show_error(exc)
    st.stop()
shown_ids = [r.grant_id for r in shown]
# One table (one widget key) per list of rows (bulk_view.table_to_draw): a new list of rows
# folds the old table's ticks into the picked set and draws the next generation.
drawn_before: DrawnTable | None = st.session_state.get(PICKER_ROWS_KEY)
drawn, base = bulk_view.table_to_draw(int(st.session_state.get(PICKER_GEN_KEY, 0)),
                                      drawn_before, shown_ids, draft.picked, _selection_of)
st.session_state[PICKER_GEN_KEY] = gen = drawn.gen
st.session_state[PICKER_ROWS_KEY] = drawn
picked = bulk_view.ticks_of(drawn, _selection_of(gen), base)

f1, f2 = st.columns([3, 2], vertical_alignment="center")
if showing := bulk_view.showing_caption(len(shown), matching):
    f1.caption(showing)
if matching:
    if f2.button(bulk_view.select_all_label(search, matching), key="bulk_match",
                 icon=":material/select_all:",
                 help="Every grant this filter matches, without ticking each (up to "
                      f"{validation.MAX_BULK:,}; the grants are fixed when you click)."):
        try:
            found = reads.match_filter(ctx.ops, ctx.actor, search)
        except OperationError as exc:
            show_error(exc)
        else:
            _keep(match=found)
# The limits as the read model knows them (user info and the console's own changes): no
# upstream call per row.
st.dataframe(
    bulk_view.picker_frame(shown, reads.limits_of(shown),
                           lambda lim: reads.matching_tier(ctx.ops, lim)),
    key=f"{PICKER_PREFIX}{gen}",
    hide_index=True,
    on_select="rerun",
    selection_mode="multi-row",
    # The set the table was drawn from, fixed for its key: the browser adds its clicks on
    # top, and a default that changed under it would move them.
    selection_default={"selection": {"rows": list(drawn.rows)}},
    column_config={
        # Not pinned: a pinned column is drawn grey, like a disabled one.
        "grant_id": st.column_config.TextColumn("Grant id", width=PICKER_ID_PX, pinned=False),
        "customer_ref": st.column_config.TextColumn("Customer reference"),
        "current_limit": st.column_config.TextColumn("Current limit", width=PICKER_LIMIT_PX,
                                                     help=validation.LIMIT_UNIT_HELP),
        "limiter": st.column_config.TextColumn("Limiter", width="small"),
        "tier": st.column_config.TextColumn("Tier", width=PICKER_TIER_PX),
        "user": st.column_config.TextColumn("User", width="small"),
        "workspace": st.column_config.TextColumn("Workspace"),
        "token_stored": st.column_config.CheckboxColumn("Token stored", width="small"),
    },
)
if err := st.session_state.pop(CLEAR_ERROR_KEY, None):
    st.error(err, icon=":material/error:")

upload = st.file_uploader("Or upload a CSV of grant ids", type=["csv", "txt"], key="bulk_upload")
uploaded: tuple[str, ...] = draft.uploaded
upload_name = draft.upload_name
if upload is not None and upload.file_id != st.session_state.get(UPLOAD_IGNORED_KEY):
    parsed = parse_grant_id_csv(upload.getvalue())
    uploaded, upload_name = parsed.grant_ids, upload.name
    st.session_state[UPLOAD_SEEN_KEY] = upload.file_id
    if parsed.problem:
        st.error(parsed.problem, icon=":material/error:")
    st.text(f"{len(uploaded):,} grant id(s) read from the file.")
    if parsed.rejected:
        st.warning(f"{len(parsed.rejected)} line(s) rejected:", icon=":material/warning:")
        st.dataframe(
            screen_frame(pd.DataFrame(
                [{"line": r.line, "text": r.text, "reason": r.reason} for r in parsed.rejected]
            )),
            hide_index=True,
            key="bulk_rejected",
        )
elif upload is None and st.session_state.pop(UPLOAD_SEEN_KEY, None) is not None:
    uploaded, upload_name = (), None  # the file was removed from the uploader
elif uploaded:
    st.text(f"{len(uploaded):,} grant id(s) from the file"
            + (f" “{upload_name}”" if upload_name else "") + ", kept from before.")

match = draft.match
if match is not None:
    m1, m2 = st.columns([3, 1], vertical_alignment="center")
    (m1.warning if match.capped else m1.info)(match.message(), icon=":material/filter_alt:")
    m2.button("Drop these", key="bulk_match_drop", icon=":material/filter_alt_off:",
              on_click=lambda: st.session_state.update({DROP_MATCH_KEY: True}))

# What changed in this run is written once, when the plan is known (below).
pending: dict[str, object] = {"picked": tuple(picked), "uploaded": uploaded,
                              "upload_name": upload_name, "match": match}
selected = replace(draft, **pending).selected  # type: ignore[arg-type]
p1, p2 = st.columns([3, 1], vertical_alignment="center")
p1.metric("Grants selected", len(selected))
if selected:
    p2.button("Clear selection", key="bulk_clear", on_click=_clear_selection,
              icon=":material/deselect:")
if ticked := bulk_view.ticked_caption(picked, shown_ids):
    st.caption(ticked)
if from_where := bulk_view.sources_caption(
        picked, uploaded, match.grant_ids if match is not None else (), selected):
    st.caption(from_where)

# --- what to apply ------------------------------------------------------------------------

st.subheader("Change")
tier_names = [t.name for t in reads.tiers(ctx.ops)]
# A new session (a reload, another tab) starts from the change kept in the draft.
if "bulk_how" not in st.session_state:
    st.session_state["bulk_how"] = CUSTOM if draft.how == "limit" else TIER
if "bulk_tier" not in st.session_state and draft.tier in tier_names:
    st.session_state["bulk_tier"] = draft.tier
if "bulk_limit" not in st.session_state:
    st.session_state["bulk_limit"] = draft.limit_text
how = st.radio("Apply", [TIER, CUSTOM], horizontal=True, key="bulk_how")
tier: str | None
if how == TIER:
    tier = st.selectbox(
        "Tier", tier_names, key="bulk_tier", format_func=lambda n: reads.tier_label(ctx.ops, n)
    )
    limit = None
    pending.update(how="tier", tier=tier)
else:
    tier = None
    # Text, not a number input: "12.5" or "1e3" is refused with the reason, never rounded.
    typed_limit = st.text_input(
        "Transaction limit (the limiter is switched on)", key="bulk_limit",
        placeholder="transactions, e.g. 7500", help=validation.LIMIT_UNIT_HELP,
    )
    pending.update(how="limit", limit_text=typed_limit)
    try:
        limit = actions.limit_from_text(typed_limit)
    except OperationError as exc:
        limit = None
        st.error(exc.user_message, icon=":material/error:")
reason = st.text_input("Reason (required to apply)", key="bulk_reason")
reason_error = st.empty()
ticket = st.text_input("Ticket (optional)", key="bulk_ticket")

plan = actions.BulkPlan(selected, str(tier) if how == TIER else None, limit)


def _dry_run() -> BulkResult:
    return actions.run_plan(ctx.ops, ctx.actor, plan, reason, dry_run=True, ticket=ticket)


def _real_run(progress: actions.ProgressFn, preview: BulkResult,
              confirmed: bool) -> BulkResult | actions.Held:
    return actions.run_plan(ctx.ops, ctx.actor, plan, reason, dry_run=False, ticket=ticket,
                            progress=progress, preview=preview, confirmed=confirmed)


def _show_error(exc: OperationError) -> None:
    """A refusal of the reason beside its field; anything else where the buttons are."""
    if getattr(exc, "field", None) == "reason":
        reason_error.error(exc.user_message, icon=":material/error:")
    else:
        show_error(exc)


def _table(result: BulkResult, key: str, *, counts: bool = True) -> None:
    st.dataframe(
        bulk_view.result_frame(result),
        hide_index=True,
        key=key,
        column_config={
            "grant_id": st.column_config.TextColumn("Grant id"),
            "customer_ref": st.column_config.TextColumn("Customer reference"),
            "outcome": st.column_config.TextColumn("Outcome"),
            "before": st.column_config.TextColumn("Before"),
            "after": st.column_config.TextColumn("After"),
            "error_code": st.column_config.TextColumn("Error code"),
            "message": st.column_config.TextColumn("Message", width="large"),
        },
    )
    if counts:
        st.text(bulk_view.counts_text(result))


dry = bulk_view.dry_run_for(draft.dry_run, plan.grant_ids, plan.tier, plan.limit)
if dry is None and draft.dry_run is not None:
    pending["dry_run"] = None  # made for another plan: kept no longer (a draft stays small)
_keep(**pending)
c1, c2 = st.columns(2)
if c1.button("Dry run", key="bulk_dry", disabled=not selected):
    st.session_state.pop(RESULT_KEY, None)
    st.session_state.pop(HELD_KEY, None)
    try:
        with st.spinner("Checking each grant and reading the current limits..."):
            result = _dry_run()
    except OperationError as exc:
        _show_error(exc)
    else:
        _keep(dry_run=DraftDryRun(plan.grant_ids, plan.tier, plan.limit, result))
        dry = result

previewed = dry is not None
would = dry.count("would_change") if dry is not None else 0
apply_clicked = c2.button(
    "Apply", key="bulk_apply", type="primary", disabled=not (selected and previewed and would),
    help="Run a dry run of this selection first; Apply changes only what it says would change.",
)
held = st.session_state.get(HELD_KEY)
if held is not None and held[0] != plan:
    st.session_state.pop(HELD_KEY, None)
    held = None
if held is not None:
    st.info(held[1], icon=":material/approval_delegation:")
elif not previewed and selected:
    st.caption("Run a dry run of this selection first; Apply is enabled after it.")
elif previewed and not would:
    st.caption("The dry run found no grant that would change: nothing to apply.")
if note := actions.approval_note(ctx.ops, "bulk", ctx.actor):
    st.caption(note)



def _apply(preview: BulkResult, confirmed: bool) -> None:
    """Apply what the dry run (`preview`) said would change. The use case asks first (the
    same rule as for one grant: a cut by more than half, a limiter switched off) unless
    `confirmed`."""
    # The bar appears with the first grant done: a change that becomes a request sends
    # nothing, and must not leave "0 of N" behind.
    bar = st.empty()

    def _progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"{done:,} of {total:,}")

    try:
        result = _real_run(_progress, preview, confirmed)
    except ConfirmationRequired as exc:
        st.session_state[CONFIRM_KEY] = (plan, exc.question)
        st.rerun()
    except OperationError as exc:
        bar.empty()
        _show_error(exc)
        return
    _keep(dry_run=None)  # used up: Apply needs a new dry run
    if isinstance(result, actions.Held):  # waits for a second person
        st.session_state.pop(RESULT_KEY, None)
        st.session_state[HELD_KEY] = (plan, result.summary())
    else:
        st.session_state.pop(HELD_KEY, None)
        st.session_state[RESULT_KEY] = (plan, preview, result)
    # Drawn again from what is kept: Apply disabled (its dry run is used up), no bar.
    st.rerun()


asking = st.session_state.get(CONFIRM_KEY)
if asking is not None and (asking[0] != plan or dry is None):
    st.session_state.pop(CONFIRM_KEY, None)
    asking = None
if apply_clicked and dry is not None:  # Apply is enabled only after a dry run
    _apply(dry, confirmed=False)
elif asking is not None and dry is not None:
    with st.container(border=True):
        st.warning(escape_markdown(asking[1]) + " Apply it?", icon=":material/warning:")
        y, n = st.columns(2)
        if y.button("Yes, apply this change", key="bulk_confirm_yes", type="primary"):
            st.session_state.pop(CONFIRM_KEY, None)
            _apply(dry, confirmed=True)
        n.button("Cancel", key="bulk_confirm_no",
                 on_click=lambda: st.session_state.pop(CONFIRM_KEY, None))

if dry is not None and not apply_clicked:
    st.markdown(f"**Dry run: nothing was changed.** Apply would change {would:,} grant(s).")
    if (skipped := bulk_view.skipped_only(dry)) is not None:
        st.warning(f"{len(skipped.items):,} grant(s) will be skipped, each with its reason:",
                   icon=":material/warning:")
        _table(skipped, "bulk_skipped_table", counts=False)
    _table(dry, "bulk_preview_table")

# Results belong to the selection and change they were made for: another selection or
# change hides them.
kept = st.session_state.get(RESULT_KEY)
if kept is not None and kept[0] != plan:
    st.session_state.pop(RESULT_KEY, None)
    kept = None
done = kept[2] if kept is not None else None
if kept is not None and done is not None:
    st.subheader("Results")
    summary = actions.applied_summary(kept[1], done)
    if done.count("failed") or done.count("skipped"):
        st.warning(summary, icon=":material/warning:")
    else:
        st.success(summary, icon=":material/check_circle:")
    if done.count("failed"):
        st.error(
            f"{done.count('failed')} grant(s) failed; the others were applied. "
            "See the message and error code of each; retry the failed ones.",
            icon=":material/error:",
        )
    if done.records_pending:
        record_pending_note(True)
    _table(done, "bulk_result_table")
    st.download_button(
        "Download results (CSV)",
        data=bulk_csv(done),
        file_name="guest-limit-results.csv",
        mime="text/csv",
        key="bulk_csv",
    )
