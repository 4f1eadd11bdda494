"""Sandbox mode: the demo customer app's endpoints, and their refusal in live mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backend.helpers import assert_error, get, post


def _sandbox_mode(start_backend, sandbox, demo=True):
    return start_backend(sandbox_url=sandbox.base_url, client_id=None, client_secret=None,
                         backend_jwt_secret=None, webhook_secret=None, backend_demo=demo)


def _demo_is_absent(b) -> None:
    assert_error(get(b.url, "/demo"), 404, "NOT_FOUND")
    assert_error(get(b.url, "/demo/token", params={"customer": "x"}), 404, "NOT_FOUND")
    assert_error(post(b.url, "/demo/widget", {"link_token": "link_x"}), 404, "NOT_FOUND")


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


def test_demo_is_absent_outside_sandbox_mode(backend):
    _demo_is_absent(backend)


def test_sandbox_mode_without_the_demo_flag_hands_out_no_token(start_backend, sandbox):
    b = _sandbox_mode(start_backend, sandbox, demo=False)
    _demo_is_absent(b)
    # No demo key either: without a JWT secret nobody can sign in.
    assert not (b.settings.data_dir / "backend-jwt.key").exists()


def test_the_demo_flag_is_refused_in_live_mode(backend):
    from dataclasses import replace

    from backend.app import create_app
    from services.settings import ConfigError

    with pytest.raises(ConfigError, match="BACKEND_DEMO"):
        create_app(replace(backend.settings, backend_demo=True), client=backend.client,
                   db=backend.db)


def test_demo_flag_setting():
    from services.settings import load_settings

    assert load_settings({}, secrets_path=Path("/nonexistent")).backend_demo is False
    assert load_settings({"BACKEND_DEMO": "on"}, secrets_path=Path("/nonexistent")).backend_demo


def test_sandbox_mode_verifies_webhooks_with_the_sandbox_secret(start_backend, sandbox):
    from services.settings import SANDBOX_WEBHOOK_SECRET
    from tests.backend.helpers import signed

    b = _sandbox_mode(start_backend, sandbox)
    raw, headers = signed({"id": "whd_sb", "event": "integration.created", "data": {}},
                          secret=SANDBOX_WEBHOOK_SECRET, webhook_id="whd_sb")
    assert post(b.url, "/api/kryptos/webhooks", raw=raw, headers=headers).status_code == 200
    assert get(b.url, "/readyz").json()["mode"] == "sandbox"
