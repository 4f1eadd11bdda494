"""The sections of the Grant detail page, one module per section (`pages/grant_detail.py`
draws them in order):

- `choose`: which grant (query parameter, earlier choice, or the id input);
- `header`: id, Refresh, the last change's message, banners, the grant's facts;
- `parts`: session and holdings (with charts), read live from Kryptos;
- `integrations`: the integrations table, resync controls and the resync poller;
- `limit`: the Guest limit and its form (confirmation, refusal of a stale change);
- `revoke`: the danger zone and its dialog;
- `history`: the timeline (webhooks, recorded actions) and the audit history;
- `common`: what several sections share (session-state keys, the facts table, pending
  approval requests).

Upstream strings (aliases, names, messages) are shown with `st.text`, in dataframe cells or
as chart labels, never through Markdown. Tokens are shown masked only. Reads go through
`dashboard.reads`, changes through `dashboard.actions`.
"""
