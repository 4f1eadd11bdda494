"""Overview page: counts against the sandbox's data, latest events by role, API failures."""

from __future__ import annotations

import pytest

from services.kryptos.errors import KryptosError
from services.settings import SANDBOX_CLIENT_ID


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
        "Failing": failing,
        "Syncing": syncing,
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
    from dashboard import reads
    from services.operations import Actor

    runtime.ops.grants.revoke_grant(Actor("admin", "", frozenset({"admin"})), gid, "customer asked")
    reads.invalidate_grant(gid)  # what the grant pages do after a mutation
    at.run()
    after = _metrics(at)
    assert int(after["Active"]) == int(before["Active"]) - 1
    assert int(after["Revoked"]) == int(before["Revoked"]) + 1


def test_overview_rerun_uses_the_cache(make_app, sandbox):
    at = make_app("viewer")
    sandbox.clear_requests_log()
    at.run()
    assert [r for r in sandbox.requests_log() if r["path"] == "/token/grants"] == []
    at.button(key="overview_refresh").click().run()
    assert [r for r in sandbox.requests_log() if r["path"] == "/token/grants"]


def test_api_failure_shows_a_message_not_a_traceback(make_app, sandbox):
    at = make_app("viewer")
    sandbox.set_fault(path="/token/grants", status=500, code="INTERNAL", count=10,
                      message="<b>boom</b> **bold**")
    at.button(key="overview_refresh").click().run()
    assert not at.exception
    assert at.error, "an error message is shown"
    message = at.error[0].value
    assert "Listing grants failed" in message
    assert any("For support" in c.value for c in at.caption)
    assert len(at.metric) == 0
