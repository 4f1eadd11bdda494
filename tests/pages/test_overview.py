"""Overview page: counts against the sandbox's data, latest events by role, API failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboard import reads, rm_sections
from dashboard.reads import cache as read_cache
from services.kryptos.errors import KryptosError
from services.settings import SANDBOX_CLIENT_ID
from tests.pages.conftest import page_path


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _expected(runtime, sandbox) -> dict[str, int]:
    """The counts, computed from the sandbox's own export and the API's grant list."""
    tokens = sandbox.tokens(client_id=SANDBOX_CLIENT_ID)
    listed = {g.grant_id for g in runtime.ops.ctx.client.list_grants()}
    stored = {t["grant_id"]: t for t in tokens}
    failing = syncing = unread = 0
    for t in tokens:
        if t["grant_id"] in listed:
            try:
                items = runtime.ops.ctx.client.list_integrations(t["access_token"])
            except KryptosError:
                unread += 1
                continue
            failing += sum(1 for i in items if i.is_failing)
            syncing += sum(1 for i in items if i.is_syncing)
    return {
        "Active": len(listed),
        "Revoked": len(set(stored) - listed),
        "Guest": sum(1 for t in tokens if t["kind"] == "guest"),
        "Linked": sum(1 for t in tokens if t["kind"] == "linked"),
        "With stored token": len(stored),
        "Without stored token": len(listed - set(stored)),
        "Failing now": failing,
        "Syncing now": syncing,
        "Grants not readable": unread,
    }


@pytest.mark.parametrize("role", ["viewer", "support", "finance", "admin"])
def test_overview_counts_match_the_sandbox(make_app, runtime, sandbox, role):
    at = make_app(role)  # the overview is the default page
    assert not at.exception
    assert [t.value for t in at.title] == ["Overview"]
    metrics = _metrics(at)
    expected = _expected(runtime, sandbox)
    assert expected["Active"] > 0 and expected["Without stored token"] > 0
    for label, value in expected.items():
        assert metrics[label] == str(value), label
    # The failures of the last 24 hours do not contradict the count of failing ones.
    if expected["Failing now"]:
        assert any(f"The {expected['Failing now']} integration(s) failing now (above)"
                   in c.value for c in at.caption)


def test_latest_events_only_for_audit_readers(make_app):
    viewer = make_app("viewer")
    assert any("shown to finance and admin" in c.value for c in viewer.caption)
    assert len(viewer.dataframe) == 0
    admin = make_app("admin")
    table = admin.dataframe[0].value
    assert "auth.login" in set(table["action"])
    assert "admin" in set(table["actor"])


def test_overview_reflects_a_revoke_at_once(make_app, runtime, sandbox):
    at = make_app("admin")
    before = _metrics(at)
    gid = next(t["grant_id"] for t in sandbox.tokens(client_id=SANDBOX_CLIENT_ID)
               if not t["revoked"])
    from services.operations import Actor

    runtime.ops.grants.revoke_grant(Actor("admin", "", frozenset({"admin"})), gid, "customer asked")
    reads.invalidate_grant(gid)  # what the grant pages do after a mutation
    at.run()
    after = _metrics(at)
    assert int(after["Active"]) == int(before["Active"]) - 1
    assert int(after["Revoked"]) == int(before["Revoked"]) + 1


def _upstream(sandbox):
    return [r for r in sandbox.requests_log() if not r["path"].startswith("/sandbox")]


def test_overview_and_grants_make_no_upstream_call(make_app, sandbox, runtime, sync_now):
    """Warm read model: loading the Overview and the Grants page calls Kryptos 0 times; the
    Refresh button asks the sync worker for a full sync instead of reading Kryptos itself."""
    at = make_app("viewer")
    # the start's own background check of the Kryptos hosts (one grants list) is not a page's
    if runtime.live_check is not None:
        runtime.live_check.wait(10)
    sandbox.clear_requests_log()
    at.run()
    at.switch_page(page_path("pages/grants.py")).run()
    at.switch_page(page_path("pages/overview.py")).run()
    assert not at.exception
    assert _upstream(sandbox) == []
    at.button(key="overview_refresh").click().run()
    assert _upstream(sandbox) == []
    assert runtime.ops.readmodel.sync_state().get("full_sync_requested")
    sync_now()
    assert [r for r in _upstream(sandbox) if r["path"] == "/token/grants"]


def test_a_failing_sync_keeps_the_counts_and_shows_admins_the_error(make_app, sandbox,
                                                                    sync_now):
    sandbox.set_fault(path="/token/grants", status=500, code="INTERNAL", count=10,
                      message="<b>boom</b> **bold**")
    sync_now()
    at = make_app("admin")
    assert not at.exception
    assert int(_metrics(at)["Active"]) > 0  # the read model still answers
    # The worker's state is read only once its expander is opened.
    assert [e.label for e in at.expander] == ["Sync worker"]
    assert not [d for d in at.dataframe if "what" in d.value.columns]
    at.session_state[rm_sections.SYNC_BOX_KEY] = True
    at.run()
    table = next(d.value for d in at.dataframe if "what" in d.value.columns)
    values = dict(zip(table["what"], table["value"], strict=True))
    assert "Listing grants" in values["Last error"]
    assert values["Errors"] != "0"
    viewer = make_app("viewer")
    assert not [d for d in viewer.dataframe if "what" in d.value.columns]


def test_stale_data_is_labelled_stale(make_app, runtime):
    at = make_app("viewer")
    assert not [w for w in at.warning if "Stale" in w.value]
    assert any("as of" in c.value for c in at.caption)
    old = datetime.now(UTC) - timedelta(hours=2)
    runtime.ops.readmodel.set_sync_state({"last_full_sync": old.isoformat()})
    reads.invalidate_all()
    at.run()
    stale = [w.value for w in at.warning if "Stale" in w.value]
    assert stale and "2.0 h ago" in stale[0]
    at.switch_page(page_path("pages/grants.py")).run()
    assert [w for w in at.warning if "Stale" in w.value]


def test_first_sync_in_progress_then_counts(make_app, runtime, sync_now, version_clock):
    from sqlalchemy import delete

    from services.store.readmodel import rm_grants, rm_integrations

    with runtime.ops.readmodel.db.write() as conn:
        conn.execute(delete(rm_integrations))
        conn.execute(delete(rm_grants))
    runtime.ops.readmodel.set_sync_state({"last_full_sync": None})
    reads.invalidate_all()
    at = make_app("viewer")
    assert any("first sync in progress" in i.value for i in at.info)
    assert "Active" not in _metrics(at)
    sync_now()
    version_clock.advance(read_cache.VERSION_POLL_SECONDS)  # the next version poll sees the sync
    at.run()
    assert int(_metrics(at)["Active"]) > 0
    assert not any("first sync in progress" in i.value for i in at.info)


def test_partial_counts_while_the_first_sync_runs(make_app, runtime, sync_now,
                                                 version_clock):
    """Rows already loaded (sandbox mode shows each page of stored tokens at once) but no
    full sync yet: the counts show, labelled partial, and the Grants page lists them."""
    from sqlalchemy import delete

    from services.store.readmodel import rm_grants, rm_integrations

    rm = runtime.ops.readmodel
    with rm.db.write() as conn:
        conn.execute(delete(rm_integrations))
        conn.execute(delete(rm_grants))
    rm.set_sync_state({"last_full_sync": None})
    stored = [e.grant_id for e in runtime.ops.ctx.vault.list()][:5]
    rm.apply_stored_tokens(stored)
    reads.invalidate_all()
    at = make_app("viewer")
    notice = [i.value for i in at.info if "First sync in progress" in i.value]
    assert notice and "5 grant(s) loaded so far" in notice[0]
    assert int(_metrics(at)["Active"]) == 5
    at.switch_page(page_path("pages/grants.py")).run()
    assert [i for i in at.info if "First sync in progress" in i.value]
    assert any(c.value.startswith("5 grants;") for c in at.caption)
    sync_now()
    version_clock.advance(read_cache.VERSION_POLL_SECONDS)
    at.switch_page(page_path("pages/overview.py")).run()
    assert not [i for i in at.info if "First sync in progress" in i.value]
    assert int(_metrics(at)["Active"]) > 5


@pytest.mark.parametrize("queue", ["failing", "no_token", "not_readable"])
def test_a_work_queue_count_opens_the_filtered_grants_page(make_app, runtime, queue):
    at = make_app("support")
    expected = runtime.ops.readmodel.counts().queues[queue]
    button = at.button(key=f"queue_{queue}")
    assert button.label.endswith(f": {expected}")
    button.click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Grants"]
    assert at.query_params.get("queue") in (queue, [queue])
    frame = at.dataframe(key="grants_table").value
    assert len(frame) == expected
    from services.operations import GrantFilter

    wanted = {r.grant_id for r in runtime.ops.readmodel.page(
        GrantFilter(queue=queue), page_size=1000).rows}
    assert set(frame["grant_id"]) == wanted
