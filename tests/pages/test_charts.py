"""Charts on the Overview and the Audit log: the counts drawn are the database's, an empty
chart says what will appear, and a click on an audit day filters the table."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from services.store.daily_counts import DailyCounts


def _charts(at) -> list[dict]:
    """The Vega-Lite specs on the page (title and data values)."""
    out = []
    for el in at.get("arrow_vega_lite_chart") + at.get("vega_lite_chart"):
        spec = json.loads(el.proto.spec)
        out.append(spec)
    return out


def _charts_with_data(at) -> list[tuple[dict, list[dict]]]:
    """The Vega-Lite specs on the page with their data rows (sent beside the spec, as Arrow)."""
    import pyarrow as pa

    out = []
    for el in at.get("arrow_vega_lite_chart") + at.get("vega_lite_chart"):
        raw = el.proto.data.data
        rows = pa.ipc.open_stream(raw).read_all().to_pylist() if raw else []
        out.append((json.loads(el.proto.spec), rows))
    return out


def _title(spec: dict) -> str:
    t = spec.get("title")
    return t if isinstance(t, str) else (t or {}).get("text", "")


def _infos(at) -> list[str]:
    return [i.value for i in at.info]


def test_overview_without_daily_counts_says_what_will_appear(make_app, runtime):
    from sqlalchemy import delete

    from services.store.daily_counts import daily_grant_counts

    with runtime.ops.readmodel.db.write() as conn:
        conn.execute(delete(daily_grant_counts))
    at = make_app("viewer")
    assert not at.exception
    infos = _infos(at)
    assert any("once the sync worker has counted" in i for i in infos)
    assert any("No change is waiting for a second person" in i for i in infos)
    assert "Grants per day by status" not in {_title(s) for s in _charts(at)}


def test_overview_charts_draw_the_counts(make_app, runtime, sync_now):
    sync_now()
    counts = DailyCounts(runtime.ops.readmodel.db)
    counts.keep(runtime.ops.tiers, datetime.now(UTC))
    c = runtime.ops.grants.counts(runtime_actor(runtime))
    at = make_app("viewer")
    assert not at.exception
    titles = {_title(s) for s in _charts(at)}
    assert {"Grants per day by status", "Failing integrations per provider",
            "Active grants by age of their integrations' copy"} <= titles
    captions = " ".join(x.value for x in at.caption)
    assert f"Active grants now: {c.active:,} · revoked: {c.revoked:,}" in captions
    # Every active grant with a stored token is in exactly one age bucket.
    assert f"of {c.active - c.queues['no_token']:,} active grants read" in captions
    assert f"{c.integrations_failing:,} failing integration(s)" in captions


def runtime_actor(runtime):
    from services.operations import Actor

    return Actor("admin", "admin", frozenset({"admin"}))


def test_audit_chart_counts_events_by_outcome_and_a_click_filters(make_app, runtime):
    from services.operations import Actor

    for _ in range(3):
        runtime.ops.auth.record_logout(Actor("mallory", "mallory", frozenset({"viewer"})))
    DailyCounts(runtime.ops.readmodel.db).roll_up_audit()  # some counted, later ones live
    runtime.ops.auth.record_logout(Actor("mallory", "mallory", frozenset({"viewer"})))
    at = make_app("finance", page="pages/audit_log.py")
    assert not at.exception
    assert "Audit events per day by outcome" in {_title(s) for s in _charts(at)}
    caption = next(x.value for x in at.caption if "failed or refused" in x.value)
    total = int(caption.split(" event(s)")[0].replace(",", ""))
    assert "4 failed or refused" not in caption  # logouts succeed
    page_total = runtime.ops.audit.audit_page(Actor("f", "f", frozenset({"finance"}))).total
    # Every event is counted once, whether rolled up or counted live (the page's own read
    # of the log is audited after the chart is drawn).
    assert total in (page_total, page_total - 1)
    assert any(f"{total:,} event(s)" in c.value for c in at.caption)


def test_audit_chart_hidden_from_readers_without_the_permission(make_app):
    at = make_app("viewer", page="pages/audit_log.py")
    assert not _charts(at)


def test_grant_detail_draws_the_limit_steps_with_who(make_app, sandbox):
    from tests.pages.test_grant_detail_page import _grant, _open, _seed_limit

    gid = _grant(sandbox)
    _seed_limit(sandbox, gid, 5000)
    at = _open(make_app, "finance", gid)
    for value, reason in (("4242", "customer verified"), ("4000", "plan change")):
        at.text_input(key="limit_value").input(value)
        at.selectbox(key="limit_limiter").select("on")
        at.text_input(key="limit_reason").input(reason)
        at.button(key="FormSubmitter:limit_form-Apply limit").click().run()
        assert not at.exception and not at.error
    captions = " ".join(c.value for c in at.caption)
    assert "2 change(s); now 4,000, set by finance" in captions
    assert "Transaction limit after each change" in {_title(s) for s in _charts(at)}


def test_guest_limits_charts_count_guests_by_tier_and_changes(make_app, runtime, sandbox,
                                                              sync_now):
    from sqlalchemy import func, select

    from services.store.readmodel.tables import rm_grants
    from tests.pages.test_grant_detail_page import _grant, _open, _seed_limit

    gid = _grant(sandbox)
    _seed_limit(sandbox, gid, 5000)
    at = _open(make_app, "finance", gid)
    at.text_input(key="limit_value").input("4242")
    at.selectbox(key="limit_limiter").select("on")
    at.text_input(key="limit_reason").input("customer verified")
    at.button(key="FormSubmitter:limit_form-Apply limit").click().run()
    assert not at.exception and not at.error
    sync_now()
    DailyCounts(runtime.ops.readmodel.db).keep(runtime.ops.tiers, datetime.now(UTC))
    c = rm_grants.c
    with runtime.ops.readmodel.db.read() as conn:
        guests = conn.execute(select(func.count()).where(
            c.status == "active", c.user_kind == "guest")).scalar_one()
    at = make_app("finance", page="pages/guest_limits.py")
    assert not at.exception
    captions = " ".join(x.value for x in at.caption)
    assert f"{guests:,} active Guest(s) counted on" in captions
    assert "1 grant limit(s) changed" in captions
    assert f"Largest: 5,000 → 4,242 on {gid} by finance" in captions
    assert {"Active Guests per tier", "Grant limits changed per day"} <= {
        _title(s) for s in _charts(at)}
    at.radio(key="chart_limit_by").set_value("action").run()
    assert "1 grant limit(s) changed" in " ".join(x.value for x in at.caption)
    at.radio(key="chart_limit_by").set_value("tier").run()
    assert not at.exception
    (by_tier, rows), = [(s, r) for s, r in _charts_with_data(at)
                        if _title(s) == "Grant limits changed per day"]
    assert by_tier["encoding"]["color"]["title"] == "Tier"
    assert [(r["who"], r["n"]) for r in rows] == [("custom limit", 1)]  # a custom limit set
    assert "1 grant limit(s) changed" in " ".join(x.value for x in at.caption)
