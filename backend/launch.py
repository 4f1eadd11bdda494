"""`python -m backend.launch [streamlit args]`: what `bin/console` runs.

The console is `python -m dashboard.serve` (`streamlit run dashboard/app.py` with the
console's runtime built at process start, and Streamlit's `[auth]` secrets for single
sign-on written from the settings: dashboard/serve.py). Live mode: the console alone; run
the backend on its own (`python -m backend`, see the README). Sandbox mode: a sandbox
(`python -m sandbox`, unless SANDBOX_URL names a running one), the backend, a local
OpenID Connect provider (`python -m sandbox.idp`, unless CONSOLE_SSO_ISSUER names another)
and the console, as child processes sharing that sandbox and the data folder (database,
vault key, audit anchor); the addresses are printed, the sandbox's webhooks are sent to the
backend, and every child is stopped when the console stops (or on Ctrl-C / SIGTERM)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from services.settings import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, child: subprocess.Popen[bytes],
                  timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            args = child.args
            command = " ".join(map(str, args)) if isinstance(args, list) else str(args)
            raise RuntimeError(f"{command} exited ({child.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def stop(children: Sequence[subprocess.Popen[bytes]]) -> None:
    for child in reversed(children):
        if child.poll() is None:
            child.terminate()
    for child in reversed(children):
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5)


def start_sandbox_stack(env: dict[str, str], *, python: str = sys.executable
                        ) -> tuple[list[subprocess.Popen[bytes]], str, str]:
    """Start the sandbox (unless SANDBOX_URL is set) and the backend; return the children,
    the sandbox URL and the backend URL. Sets SANDBOX_URL (and BACKEND_DEMO=on unless set) in
    `env`."""
    # The sandbox stack serves the demo customer app (`/demo`), which must be asked for.
    env.setdefault("BACKEND_DEMO", "on")
    settings = load_settings(env)
    children: list[subprocess.Popen[bytes]] = []
    backend_port = settings.backend_port or free_port()
    try:
        sandbox_url = settings.sandbox_url
        if sandbox_url is None:
            port = settings.sandbox_port or free_port()
            children.append(subprocess.Popen(
                [python, "-m", "sandbox", "--port", str(port),
                 "--resync-delay", str(settings.sandbox_resync_delay)], cwd=ROOT, env=env))
            sandbox_url = f"http://127.0.0.1:{port}"
            wait_until_up(sandbox_url + "/api/health", children[-1])
        env["SANDBOX_URL"] = sandbox_url
        children.append(subprocess.Popen([python, "-m", "backend", "--port", str(backend_port)],
                                         cwd=ROOT, env=env))
        backend_url = f"http://127.0.0.1:{backend_port}"
        wait_until_up(backend_url + "/healthz", children[-1])
        # The sandbox's webhooks go to the backend (through the control API, so the secret
        # is not on a command line; a `POST /sandbox/reset` turns them off again).
        from sandbox import SandboxClient

        SandboxClient(sandbox_url).set_webhooks(backend_url + "/api/kryptos/webhooks",
                                                settings.effective_webhook_secret)
    except BaseException:
        stop(children)
        raise
    return children, sandbox_url, backend_url


def start_sandbox_idp(env: dict[str, str], *, python: str = sys.executable
                      ) -> subprocess.Popen[bytes] | None:
    """Sandbox mode without a provider configured: start the local one (sandbox/idp.py) and
    point the console's single sign-on at it (CONSOLE_SSO_* in `env`, the sandbox's demo
    client and role map unless set)."""
    from sandbox.idp import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_ROLE_MAP

    if env.get("CONSOLE_SSO_ISSUER") or env.get("CONSOLE_SSO_METADATA_URL"):
        return None
    settings = load_settings(env)
    if settings.sso_enabled:  # a provider in the secrets file
        return None
    port = free_port()
    child = subprocess.Popen(
        [python, "-m", "sandbox.idp", "--port", str(port),
         "--client-id", SANDBOX_CLIENT_ID, "--client-secret", SANDBOX_CLIENT_SECRET,
         "--redirect-uri", settings.sso_redirect_uri], cwd=ROOT, env=env)
    issuer = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(issuer + "/.well-known/openid-configuration", child)
    except BaseException:
        stop([child])
        raise
    env.update(CONSOLE_SSO_ISSUER=issuer, CONSOLE_SSO_CLIENT_ID=SANDBOX_CLIENT_ID,
               CONSOLE_SSO_CLIENT_SECRET=SANDBOX_CLIENT_SECRET)
    env.setdefault("CONSOLE_SSO_ROLE_MAP", SANDBOX_ROLE_MAP)
    return child


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # dashboard/serve.py writes the [auth] secrets from the settings it is started with (here
    # the environment, with the sandbox provider's CONSOLE_SSO_* in sandbox mode).
    console = [sys.executable, "-m", "dashboard.serve", *args]
    try:
        sandbox_mode = load_settings().sandbox_mode
    except ConfigError:
        sandbox_mode = False  # the console's setup page explains the configuration error
    if not sandbox_mode:
        os.execv(sys.executable, console)
    env = dict(os.environ)
    children, sandbox_url, backend_url = start_sandbox_stack(env)
    print(f"==> sandbox on {sandbox_url}", flush=True)
    print(f"==> backend on {backend_url} (demo customer app: {backend_url}/demo)", flush=True)
    try:
        idp = start_sandbox_idp(env)
    except BaseException:
        stop(children)
        raise
    if idp is not None:
        children.append(idp)
        print(f"==> identity provider on {env['CONSOLE_SSO_ISSUER']} (\"Sign in with SSO\")",
              flush=True)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        children.append(subprocess.Popen(console, cwd=ROOT, env=env))
        return children[-1].wait()
    except KeyboardInterrupt:
        return 130
    finally:
        stop(children)


if __name__ == "__main__":
    raise SystemExit(main())
