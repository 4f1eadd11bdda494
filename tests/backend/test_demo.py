"""Sandbox mode: the demo customer app's endpoints, and their refusal in live mode."""

from __future__ import annotations

from tests.backend.helpers import assert_error, get, post


def _sandbox_mode(start_backend, sandbox):
    return start_backend(sandbox_url=sandbox.base_url, client_id=None, client_secret=None,
                         backend_jwt_secret=None, webhook_secret=None)


def test_demo_flow_new_then_returning_customer(start_backend, sandbox):
    b = _sandbox_mode(start_backend, sandbox)
    page = get(b.url, "/demo")
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "<script src" not in page.text and "http" not in page.text.split("<script>")[1]
    minted = get(b.url, "/demo/token", params={"customer": "demo-1"}).json()
    assert minted["customer"] == "demo-1"
    bearer = {"Authorization": f"Bearer {minted['token']}"}

    link = post(b.url, "/api/kryptos/create-link-token", {}, headers=bearer).json()
    assert link["isAuthorized"] is False
    widget = post(b.url, "/demo/widget", {"link_token": link["link_token"]}).json()
    assert widget["public_token"].startswith("public_") and widget["resumed"] is False
    assert post(b.url, "/api/kryptos/exchange-token", {"public_token": widget["public_token"]},
                headers=bearer).json() == {"success": True}
    holdings = get(b.url, "/api/kryptos/holdings", headers=bearer)
    assert holdings.status_code == 200 and holdings.json()["holdings"]
    grants_before = len(sandbox.tokens())

    link = post(b.url, "/api/kryptos/create-link-token", {}, headers=bearer).json()
    assert link["isAuthorized"] is True
    widget = post(b.url, "/demo/widget", {"link_token": link["link_token"]}).json()
    assert widget == {"public_token": None, "resumed": True}
    assert post(b.url, "/api/kryptos/exchange-token", {"public_token": None},
                headers=bearer).json() == {"success": True}
    assert len(sandbox.tokens()) == grants_before  # no new grant


def test_demo_widget_errors(start_backend, sandbox):
    b = _sandbox_mode(start_backend, sandbox)
    assert_error(post(b.url, "/demo/widget", {"link_token": "nope"}), 400, "INVALID_REQUEST")
    assert_error(post(b.url, "/demo/widget", {"link_token": "link_unknown"}), 409,
                 "WIDGET_FAILED")
    assert_error(get(b.url, "/demo/token", params={"customer": ""}), 400, "INVALID_REQUEST")


def test_demo_is_refused_outside_sandbox_mode(backend):
    assert_error(get(backend.url, "/demo"), 403, "SANDBOX_ONLY")
    assert_error(get(backend.url, "/demo/token", params={"customer": "x"}), 403, "SANDBOX_ONLY")
    assert_error(post(backend.url, "/demo/widget", {"link_token": "link_x"}), 403,
                 "SANDBOX_ONLY")


def test_sandbox_mode_verifies_webhooks_with_the_sandbox_secret(start_backend, sandbox):
    from services.settings import SANDBOX_WEBHOOK_SECRET
    from tests.backend.helpers import signed

    b = _sandbox_mode(start_backend, sandbox)
    raw, headers = signed({"id": "whd_sb", "event": "integration.created", "data": {}},
                          secret=SANDBOX_WEBHOOK_SECRET, webhook_id="whd_sb")
    assert post(b.url, "/api/kryptos/webhooks", raw=raw, headers=headers).status_code == 200
    assert get(b.url, "/readyz").json()["mode"] == "sandbox"
