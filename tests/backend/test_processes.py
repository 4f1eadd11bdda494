"""`python -m backend` and the sandbox-mode launcher of `bin/console` as real processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.launch import free_port, start_sandbox_stack, stop, wait_until_up
from tests.backend.helpers import WEBHOOK_SECRET, auth, get, launcher_env, post

pytestmark = pytest.mark.slow


def test_sandbox_stack_starts_and_stops(tmp_path: Path):
    env = launcher_env(tmp_path)
    children, sandbox_url, backend_url = start_sandbox_stack(env)
    try:
        assert env["SANDBOX_URL"] == sandbox_url
        assert get(backend_url, "/readyz").json() == {"status": "ready", "mode": "sandbox"}
        minted = get(backend_url, "/demo/token", params={"customer": "demo-p"}).json()
        bearer = {"Authorization": f"Bearer {minted['token']}"}
        link = post(backend_url, "/api/kryptos/create-link-token", {}, headers=bearer)
        assert link.status_code == 200 and link.json()["isAuthorized"] is False
        widget = post(backend_url, "/demo/widget", {"link_token": link.json()["link_token"]})
        assert post(backend_url, "/api/kryptos/exchange-token", widget.json(),
                    headers=bearer).json() == {"success": True}
        from sandbox import SandboxClient

        config = SandboxClient(sandbox_url).webhook_config()
        assert config["url"] == backend_url + "/api/kryptos/webhooks" and config["has_secret"]
        deadline = time.monotonic() + 15
        while not all(d["status"] == "delivered" for d in config["deliveries"]) \
                or not config["deliveries"]:
            assert time.monotonic() < deadline, config["deliveries"]
            time.sleep(0.1)
            config = SandboxClient(sandbox_url).webhook_config()
        assert (tmp_path / "data" / "console.db").exists()
        assert (tmp_path / "data" / "vault.key").exists()
    finally:
        stop(children)
    assert all(child.poll() is not None for child in children)


def test_python_m_backend_refuses_live_mode_without_a_vault_key(tmp_path: Path):
    env = launcher_env(tmp_path)
    env.update(KRYPTOS_CLIENT_ID="id", KRYPTOS_CLIENT_SECRET="secret-value-123")
    done = subprocess.run([sys.executable, "-m", "backend", "--port", "0"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "KRYPTOS_VAULT_KEY" in done.stderr and "secret-value-123" not in done.stderr


def test_python_m_backend_live_mode_serves_health(tmp_path: Path, sandbox):
    from cryptography.fernet import Fernet

    env = launcher_env(tmp_path)
    env.update(KRYPTOS_CLIENT_ID=sandbox.client_id, KRYPTOS_CLIENT_SECRET=sandbox.client_secret,
               KRYPTOS_CONNECT_URL=sandbox.connect_url, KRYPTOS_DATA_URL=sandbox.data_url,
               KRYPTOS_VAULT_KEY=Fernet.generate_key().decode(),
               BACKEND_JWT_SECRET="j" * 40, KRYPTOS_WEBHOOK_SECRET=WEBHOOK_SECRET)
    port = free_port()
    child = subprocess.Popen([sys.executable, "-m", "backend", "--port", str(port)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/healthz", child)
        assert get(url, "/readyz").json() == {"status": "ready", "mode": "live"}
        assert post(url, "/api/kryptos/create-link-token", {},
                    headers=auth("p", secret="j" * 40)).status_code == 200
        assert get(url, "/demo/token").status_code == 404
    finally:
        stop([child])
    output = child.stdout.read() if child.stdout else ""
    assert "j" * 40 not in output and sandbox.client_secret not in output
