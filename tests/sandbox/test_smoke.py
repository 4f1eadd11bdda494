"""The fixtures start a sandbox that answers on the documented URLs."""

from __future__ import annotations

import requests

from sandbox import SandboxHandle


def test_fixture_urls_and_health(sandbox: SandboxHandle) -> None:
    assert sandbox.base_url.startswith("http://127.0.0.1:")
    assert sandbox.connect_url == sandbox.base_url
    assert sandbox.data_url == sandbox.base_url + "/api"
    assert (sandbox.client_id, sandbox.client_secret) == (
        "sandbox_client", "sandbox_secret_do_not_use_live")
    answer = requests.get(sandbox.data_url + "/health", timeout=5)
    assert answer.status_code == 200
    assert answer.json()["status"] == "OK"
    assert answer.headers["X-Request-Id"].startswith("req_")
