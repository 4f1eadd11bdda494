"""The parts read live from Kryptos: the session, and the holdings with their two charts.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.charts import shapes
from dashboard.csv_io import screen_frame
from dashboard.formats import ABSENT, fmt_money
from dashboard.grant_detail.common import is_revoked, kv_table, part_value, wallet_names
from services.operations import GrantDetail


def session(detail: GrantDetail) -> None:
    st.subheader("Session")
    s = part_value(detail, detail.session)
    if s is None:
        return
    if s.has_valid_session:
        st.success("The session is valid.", icon=":material/check_circle:")
    elif is_revoked(detail):
        st.caption("The session is not valid: the grant is revoked.")
    else:
        st.error("The session is not valid.", icon=":material/block:")
    kv_table([
        ("Reason", s.reason or ABSENT),
        ("Workspace name", s.workspace_name or ABSENT),
        ("User id", s.user_id or ABSENT),
        ("Granted scopes", s.granted_scopes or ABSENT),
    ])


HOLDING_COLUMNS = {
    "asset": st.column_config.TextColumn("Asset"),
    "name": st.column_config.TextColumn("Name"),
    "quantity": st.column_config.NumberColumn("Quantity", format="%,.6f"),
    # Text: 2 decimals, more only for a price under 1 (`fmt_money`).
    "price": st.column_config.TextColumn("Price"),
    "value": st.column_config.NumberColumn("Value", format="%,.2f"),
    "cost_basis": st.column_config.NumberColumn("Cost basis", format="%,.2f"),
    "pnl": st.column_config.NumberColumn("Unrealised P&L", format="%,.2f"),
    "change_24h": st.column_config.NumberColumn("24 h change", format="%.2f %%"),
}


def holdings(detail: GrantDetail) -> None:
    st.subheader("Holdings")
    h = part_value(detail, detail.holdings)
    if h is None:
        return
    sm = h.summary
    cur = h.holdings[0].base_currency if h.holdings else "USD"
    # A row that wraps: each figure as wide as its text, the next one on a new line when
    # the window is narrow (fixed columns would cut "25,5…" at half a laptop's screen).
    row = st.container(horizontal=True, wrap=True, gap="large")
    row.metric(f"Total value ({cur})", f"{sm.total_value:,.2f}", width="content")
    row.metric(f"Cost basis ({cur})", f"{sm.total_cost_basis:,.2f}", width="content")
    row.metric(f"Unrealised P&L ({cur})", f"{sm.total_unrealized_pnl:,.2f}",
               delta=f"{sm.roi_percentage:,.2f} % ROI", delta_color="normal", width="content")
    # The API's 24 h change is a percentage, not an amount.
    row.metric("24 h change", f"{sm.total_24h_change:,.2f} %", width="content")
    if not h.holdings:
        st.text("No holdings.")
        return
    hold = pd.DataFrame([
        {
            "asset": x.asset.symbol,
            "name": x.asset.public_name,
            "quantity": x.total_quantity,
            "price": fmt_money(x.market_price),
            "value": x.market_value,
            "cost_basis": x.cost_basis,
            "pnl": x.unrealized_pnl,
            "change_24h": x.change_24h,
        }
        for x in h.holdings
    ])
    st.dataframe(screen_frame(hold), hide_index=True, key="holdings_table",
                 column_config=HOLDING_COLUMNS)
    names = wallet_names(detail)
    by_wallet: dict[str, float] = {}
    for x in h.holdings:
        for d in x.distribution:
            label = names.get(d.wallet_id or "", d.wallet_id or d.provider or "unknown")
            by_wallet[label] = by_wallet.get(label, 0.0) + d.quantity * x.market_price
    c1, c2 = st.columns(2)
    with c1:
        _bar_chart(hold, "asset", "Asset", cur, "Value by asset", ["asset", "name"])
    with c2:
        if by_wallet:
            wallets = pd.DataFrame({"wallet": list(by_wallet), "value": list(by_wallet.values())})
            _bar_chart(wallets, "wallet", "Wallet", cur, "Value by wallet", ["wallet"])
        else:
            st.text("No per-wallet distribution in the holdings.")


def _bar_chart(frame: pd.DataFrame, by: str, label: str, cur: str, title: str,
               tips: list[str]) -> None:
    f = shapes.field
    shapes.draw({
        "title": title,
        "mark": {"type": "bar"},
        "encoding": {
            "x": f("value", "quantitative", f"Value ({cur})"),
            "y": f(by, "nominal", label, sort="-x"),
            "tooltip": [*({"field": t, "type": "nominal"} for t in tips),
                        {"field": "value", "type": "quantitative", "format": ",.2f"}],
        },
    }, data=frame[[*dict.fromkeys([*tips, by]), "value"]])
