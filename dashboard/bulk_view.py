"""What the Guest limits page (pages/guest_limits.py) draws, shaped from what it reads: the
tier presets table, the picker's rows and its selection across redraws, the captions that
say where the selected grants come from, the kept dry run that still fits the plan, and
the per-grant result tables."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import pandas as pd

from dashboard.csv_io import BULK_COLUMNS, bulk_rows, screen_frame
from dashboard.formats import fmt_bool, fmt_limit
from services.operations import UNKNOWN, BulkResult, GuestLimit, RmGrant
from services.operations.bulk_drafts import DraftDryRun
from services.settings import Tier

KIND_LABEL = {"guest": "Guest", "linked": "Linked", None: "unknown"}
# What a pick is decided on first: at half a laptop's screen the grid shows about four
# columns, so the current limit and the tier come right after the grant id, each sized to
# its content, and the rest scrolls.
PICKER_COLUMNS = ["grant_id", "current_limit", "tier", "limiter", "customer_ref", "user",
                  "workspace", "token_stored"]


def tiers_frame(tiers: Iterable[Tier]) -> pd.DataFrame:
    """The tier presets as the table shows them ("no cap", never None)."""
    return screen_frame(pd.DataFrame(
        [{"tier": t.name, "limit": "no cap" if t.limit is None else fmt_limit(t.limit),
          "limiter": "on" if t.enable_limiter else "off"} for t in tiers],
        columns=["tier", "limit", "limiter"],
    ))


# --- the picker ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DrawnTable:
    """A picker table as drawn: its generation (part of its widget key), the grant id of
    each row in order, and the rows it was drawn selected."""

    gen: int
    ids: tuple[str, ...]
    rows: tuple[int, ...]


def ticks_of(table: DrawnTable, selected_rows: Sequence[int] | None,
             base: Iterable[str]) -> list[str]:
    """The picked set as `table` shows it: the set it was drawn from (`base`) outside the
    table's rows, and its rows as selected now (`selected_rows`: every click the browser
    reported on that table, so a click sent while an earlier one's run is still going
    carries the earlier one too; None: no click yet, the rows it was drawn with)."""
    rows = table.rows if selected_rows is None else selected_rows
    selected = [r for r in rows if 0 <= r < len(table.ids)]
    on = {table.ids[r] for r in selected}
    on_table = set(table.ids)
    picked = dict.fromkeys(g for g in base if g not in on_table or g in on)
    picked.update(dict.fromkeys(table.ids[r] for r in selected))
    return list(picked)


def table_to_draw(gen: int, drawn: DrawnTable | None, shown_ids: Sequence[str],
                  base: Sequence[str],
                  selection_of: Callable[[int], Sequence[int] | None]) -> tuple[DrawnTable,
                                                                                 list[str]]:
    """The table to draw now and the picked set it is drawn from. One table (one widget
    key) per list of rows: while the rows stay the same the table stays, so it keeps every
    click. When the rows change (a filter, a grant gone from the list) the old table's
    selection (`selection_of(gen)`) is folded into the picked set by the grant id of each
    row as it was drawn, and a fresh table (the next generation) is drawn from that set: no
    tick ever lands on another row."""
    ids = tuple(shown_ids)
    picked = list(base)
    if drawn is not None and drawn.gen == gen and drawn.ids != ids:
        picked = ticks_of(drawn, selection_of(gen), picked)
        gen += 1
        drawn = None
    if drawn is None or drawn.gen != gen:
        on_table = {g: i for i, g in enumerate(ids)}
        drawn = DrawnTable(gen, ids, tuple(sorted(on_table[g] for g in picked
                                                  if g in on_table)))
    return drawn, picked


def picker_frame(shown: Iterable[RmGrant], limits: dict[str, GuestLimit],
                 tier_of: Callable[[GuestLimit], Tier | None]) -> pd.DataFrame:
    """The picker's rows: each grant with its limit as the read model knows it (no upstream
    call per row), the tier that limit is, and who the grant is."""
    def limit_cells(gid: str) -> dict[str, str]:
        lim = limits.get(gid, UNKNOWN)
        tier = tier_of(lim)
        return {
            "current_limit": lim.label(),
            "limiter": fmt_bool(lim.limiter),
            "tier": tier.name if tier is not None else ("custom" if lim.known else "unknown"),
        }

    return screen_frame(pd.DataFrame(
        [
            {
                "grant_id": r.grant_id,
                "customer_ref": r.customer_ref or "",
                **limit_cells(r.grant_id),
                "user": KIND_LABEL.get(r.user_kind, "unknown"),
                "workspace": r.workspace_id or "",
                "token_stored": r.has_token,
            }
            for r in shown
        ],
        columns=PICKER_COLUMNS,
    ))


def showing_caption(shown: int, matching: int) -> str | None:
    """Said when the table lists fewer grants than the filter matches."""
    if matching <= shown:
        return None
    return (f"Showing the first {shown:,} of {matching:,} matching grants; filter the "
            "table, select all that match, or upload a CSV of grant ids.")


def select_all_label(search: str, matching: int) -> str:
    return (f"Select all {matching:,} that match" if search.strip()
            else f"Select all {matching:,} listed")


def ticked_caption(picked: Sequence[str], shown_ids: Sequence[str]) -> str | None:
    """How many grants are ticked, and how many of them the filter hides."""
    if not picked:
        return None
    hidden = len(set(picked) - set(shown_ids))
    return (f"{len(picked):,} grant(s) ticked in the table"
            + (f", {hidden:,} of them hidden by the filter." if hidden else "."))


def sources_caption(picked: Sequence[str], uploaded: Sequence[str], matched: Sequence[str],
                    selected: Sequence[str]) -> str | None:
    """Where the selected grants come from, and how many twice (said when from more than
    one of ticks, the file and the filter)."""
    sources = [(f"{len(picked):,} ticked", picked),
               (f"{len(uploaded):,} from the file", uploaded),
               (f"{len(matched):,} matching the filter", matched)]
    sources = [(words, ids) for words, ids in sources if ids]
    if len(sources) <= 1:
        return None
    overlap = sum(len(set(ids)) for _, ids in sources) - len(selected)
    both = "in both" if len(sources) == 2 else "in more than one"
    return (" + ".join(words for words, _ in sources)
            + (f", {overlap:,} {both}." if overlap else f", none {both}."))


# --- dry run and results ------------------------------------------------------------------

def dry_run_for(kept: DraftDryRun | None, grant_ids: tuple[str, ...], tier: str | None,
                limit: int | None) -> BulkResult | None:
    """The kept dry run when it was made for this very plan (another selection or change
    needs its own)."""
    if kept is None or (kept.grant_ids, kept.tier, kept.limit) != (grant_ids, tier, limit):
        return None
    return kept.result


def result_frame(result: BulkResult) -> pd.DataFrame:
    """A dry run's or an apply's per-grant rows, in words."""
    return screen_frame(pd.DataFrame(bulk_rows(result.items, words=True), columns=BULK_COLUMNS))


def counts_text(result: BulkResult) -> str:
    """How many grants had each outcome ("No grants." when none)."""
    said = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in result.counts.items() if n)
    return said or "No grants."


def skipped_only(result: BulkResult) -> BulkResult | None:
    """The skipped grants alone (shown in their own table, not among the rows of a long
    one), or None when none is skipped."""
    skipped = tuple(i for i in result.items if i.outcome == "skipped")
    if not skipped:
        return None
    return replace(result, items=skipped)


__all__ = [
    "KIND_LABEL", "PICKER_COLUMNS", "DrawnTable", "counts_text", "dry_run_for",
    "picker_frame", "result_frame", "select_all_label", "showing_caption", "skipped_only",
    "sources_caption", "table_to_draw", "ticked_caption", "ticks_of", "tiers_frame",
]
