"""Guest limits (finance, admin): apply a tier or a custom limit to many Guest grants.

Pick grants in a table or upload a CSV of grant ids, preview with a dry run (before and after
per grant), then apply with a progress bar; the per-grant results can be downloaded.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from dashboard import actions, reads, rm_sections
from dashboard.charts import finance as finance_charts
from dashboard.context import page_context
from dashboard.csv_io import (
    BULK_COLUMNS,
    bulk_csv,
    bulk_rows,
    parse_grant_id_csv,
    screen_frame,
)
from dashboard.formats import fmt_bool, fmt_limit
from dashboard.ui import escape_markdown, record_pending_note, show_error
from services.operations import (
    UNKNOWN,
    BulkResult,
    ConfirmationRequired,
    OperationError,
    Permission,
    can,
    validation,
)

PREVIEW_KEY = "bulk_preview"  # (plan, BulkResult)
RESULT_KEY = "bulk_result"  # (plan, preview BulkResult, BulkResult)
HELD_KEY = "bulk_held"  # (plan, what the request says): the Apply that became a request
CONFIRM_KEY = "bulk_confirm"  # (plan, the use case's question) before a risky Apply
PICKED_KEY = "bulk_picked"  # grant ids ticked in the table, in tick order
PICKER_PREFIX = "bulk_picker_"  # + generation: the table's key, renewed after each merge
PICKER_GEN_KEY = "bulk_picker_gen"
PICKER_ROWS_KEY = "bulk_picker_rows"  # (generation, grant ids in the drawn table's row order)
TIER, CUSTOM = "Tier", "Custom limit"
KIND_LABEL = {"guest": "Guest", "linked": "Linked", None: "unknown"}

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
    screen_frame(pd.DataFrame(
        [
            {"tier": t.name, "limit": "no cap" if t.limit is None else fmt_limit(t.limit),
             "limiter": "on" if t.enable_limiter else "off"}
            for t in reads.tiers(ctx.ops)
        ],
        columns=["tier", "limit", "limiter"],
    )),
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
st.caption("Active Guest grants and grants whose kind is not known yet. Tick the ones to change; "
           "ticks are kept by grant id while you filter.")
rm_sections.freshness(ctx)


def _ticks_of(gen: int, shown_ids: list[str], base: list[str]) -> list[str]:
    """The picked set as the table of generation `gen` shows it: the set it was drawn from
    (`base`) with the ticks and unticks its editor reports. The editor's `edited_rows` are
    cumulative over every click made on that table, so a click sent while an earlier one's
    run is still going carries the earlier one too: no click is lost, however fast."""
    edits = (st.session_state.get(f"{PICKER_PREFIX}{gen}") or {}).get("edited_rows") or {}
    picked = dict.fromkeys(base)
    for pos, change in edits.items():
        if "pick" not in change or int(pos) >= len(shown_ids):
            continue
        gid = shown_ids[int(pos)]
        if change["pick"]:
            picked[gid] = None
        else:
            picked.pop(gid, None)
    return list(picked)


def _clear_selection() -> None:
    st.session_state[PICKED_KEY] = []
    st.session_state[PICKER_GEN_KEY] = int(st.session_state.get(PICKER_GEN_KEY, 0)) + 1
    st.session_state.pop(PICKER_ROWS_KEY, None)


search = st.text_input("Filter the table", key="bulk_search")
try:
    shown = reads.bulk_candidates(ctx.ops, ctx.actor, search)
    matching = reads.bulk_candidate_count(ctx.ops, ctx.actor, search)
except OperationError as exc:
    show_error(exc)
    st.stop()
shown_ids = [r.grant_id for r in shown]
# One table (one editor key) per list of rows: while the rows stay the same the key stays,
# so the editor keeps every click. When the rows change (a filter, a grant gone from the
# list) the ticks are folded into the picked set by the grant id of each row as it was
# drawn, and a fresh table is drawn from the set: no tick ever lands on another row.
gen = int(st.session_state.get(PICKER_GEN_KEY, 0))
drawn = st.session_state.get(PICKER_ROWS_KEY)
base = list(st.session_state.get(PICKED_KEY, ()))
if drawn is not None and drawn[0] == gen and drawn[1] != shown_ids:
    st.session_state[PICKED_KEY] = base = _ticks_of(gen, drawn[1], base)
    gen += 1
    st.session_state[PICKER_GEN_KEY] = gen
st.session_state[PICKER_ROWS_KEY] = (gen, shown_ids)
picked_set = dict.fromkeys(_ticks_of(gen, shown_ids, base))
base_set = set(base)
if matching > len(shown):
    st.caption(f"Showing the first {len(shown):,} of {matching:,} matching grants; filter the "
               "table to reach the others, or upload a CSV of grant ids.")
# The limits as the read model knows them (user info and the console's own changes): no
# upstream call per row.
now = reads.limits_of(shown)


def _limit_cells(gid: str) -> dict[str, str]:
    lim = now.get(gid, UNKNOWN)
    tier = reads.matching_tier(ctx.ops, lim)
    return {
        "current_limit": lim.label(),
        "limiter": fmt_bool(lim.limiter),
        "tier": tier.name if tier is not None else ("custom" if lim.known else "unknown"),
    }


# What a pick is decided on first: at half a laptop's screen the grid shows about five
# columns, so the current limit and the tier come right after the grant id (pinned with the
# tick box while the rest scrolls).
PICKER_COLUMNS = ["pick", "grant_id", "current_limit", "tier", "limiter", "customer_ref",
                  "user", "workspace", "token_stored"]
picker = pd.DataFrame(
    [
        {
            # From the set the table was drawn from, not the live ticks: the editor adds
            # its own edits on top, and data that changes under it would move them.
            "pick": r.grant_id in base_set,
            "grant_id": r.grant_id,
            "customer_ref": r.customer_ref or "",
            **_limit_cells(r.grant_id),
            "user": KIND_LABEL.get(r.user_kind, "unknown"),
            "workspace": r.workspace_id or "",
            "token_stored": r.has_token,
        }
        for r in shown
    ],
    columns=PICKER_COLUMNS,
)
st.data_editor(
    screen_frame(picker),
    key=f"{PICKER_PREFIX}{gen}",
    hide_index=True,
    num_rows="fixed",
    disabled=PICKER_COLUMNS[1:],
    column_config={
        "pick": st.column_config.CheckboxColumn("Pick", pinned=True),
        "grant_id": st.column_config.TextColumn("Grant id", pinned=True),
        "customer_ref": st.column_config.TextColumn("Customer reference"),
        "current_limit": st.column_config.TextColumn("Current limit",
                                                     help=validation.LIMIT_UNIT_HELP),
        "limiter": st.column_config.TextColumn("Limiter"),
        "tier": st.column_config.TextColumn("Tier"),
        "user": st.column_config.TextColumn("User"),
        "workspace": st.column_config.TextColumn("Workspace"),
        "token_stored": st.column_config.CheckboxColumn("Token stored"),
    },
)
picked = list(picked_set)
if picked:
    hidden = len(set(picked) - {r.grant_id for r in shown})
    p1, p2 = st.columns([3, 1], vertical_alignment="center")
    p1.caption(f"{len(picked)} grant(s) ticked in the table"
               + (f", {hidden} of them hidden by the filter." if hidden else "."))
    p2.button("Clear selection", key="bulk_clear", on_click=_clear_selection,
              icon=":material/deselect:")

upload = st.file_uploader("Or upload a CSV of grant ids", type=["csv", "txt"], key="bulk_upload")
uploaded: tuple[str, ...] = ()
if upload is not None:
    parsed = parse_grant_id_csv(upload.getvalue())
    uploaded = parsed.grant_ids
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

selected = tuple(dict.fromkeys([*picked, *uploaded]))
st.metric("Grants selected", len(selected))
if picked and uploaded:
    both = len(set(picked) & set(uploaded))
    st.caption(f"{len(picked):,} ticked + {len(uploaded):,} from the file"
               + (f", {both:,} in both." if both else ", none in both."))

# --- what to apply ------------------------------------------------------------------------

st.subheader("Change")
how = st.radio("Apply", [TIER, CUSTOM], horizontal=True, key="bulk_how")
tier_names = [t.name for t in reads.tiers(ctx.ops)]
tier: str | None
if how == TIER:
    tier = st.selectbox(
        "Tier", tier_names, key="bulk_tier", format_func=lambda n: reads.tier_label(ctx.ops, n)
    )
    limit = None
else:
    tier = None
    # Text, not a number input: "12.5" or "1e3" is refused with the reason, never rounded.
    typed_limit = st.text_input(
        "Transaction limit (the limiter is switched on)", key="bulk_limit",
        placeholder="transactions, e.g. 7500", help=validation.LIMIT_UNIT_HELP,
    )
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
        screen_frame(pd.DataFrame(bulk_rows(result.items, words=True),
                                    columns=BULK_COLUMNS)),
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
        said = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in result.counts.items() if n)
        st.text(said or "No grants.")


# The dry run of this very plan (another selection or change needs its own).
kept_preview = st.session_state.get(PREVIEW_KEY)
dry: BulkResult | None = (kept_preview[1] if kept_preview is not None
                          and kept_preview[0] == plan else None)
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
        st.session_state[PREVIEW_KEY] = (plan, result)
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
    st.session_state.pop(PREVIEW_KEY, None)
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
    skipped = [i for i in dry.items if i.outcome == "skipped"]
    if skipped:  # in their own table, not among the rows of a long one
        st.warning(f"{len(skipped):,} grant(s) will be skipped, each with its reason:",
                   icon=":material/warning:")
        _table(replace(dry, items=tuple(skipped)), "bulk_skipped_table", counts=False)
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
