"""Start the console (`python -m dashboard.serve`, i.e. `streamlit run dashboard/app.py`) in
sandbox mode, as a subprocess.

Shared by the browser tests (tests/e2e/conftest.py) and bench/screenshots.py, so that both
run the console exactly as a user does: a real Streamlit server on a free loopback port,
pointed at a sandbox the caller started in its own process (`SANDBOX_URL`), with a fresh data
directory (database, vault key, cookie key, demo users) and no Kryptos credentials.

Also here: where Chromium is, and how to launch it (Debian's chromium; never
`playwright install`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: Settings the console reads (services/settings.py) that must not leak in from the caller's
#: environment: any of them would change the mode, the database or the users.
CONSOLE_ENV = (
    "KRYPTOS_CLIENT_ID", "KRYPTOS_CLIENT_SECRET", "KRYPTOS_CONNECT_URL", "KRYPTOS_DATA_URL",
    "KRYPTOS_VAULT_KEY", "DATABASE_URL", "CONSOLE_COOKIE_KEY", "CONSOLE_COOKIE_NAME",
    "CONSOLE_COOKIE_EXPIRY_DAYS", "CONSOLE_AUTH_FILE", "CONSOLE_DATA_DIR", "CONSOLE_TIERS",
    "CONSOLE_SECRETS_FILE", "CONSOLE_AUDIT_ANCHOR_FILE", "SANDBOX_PORT", "SANDBOX_URL",
    "SANDBOX_RESYNC_DELAY", "CONSOLE_IDLE_TIMEOUT", "CONSOLE_SESSION_LIFETIME",
    "CONSOLE_TOTP_REQUIRED_ROLES", "CONSOLE_LOGIN_MAX_FAILURES",
    "CONSOLE_LOGIN_MAX_FAILURES_WIDE", "CONSOLE_LOGIN_LOCK_SECONDS",
    "CONSOLE_CLIENT_ADDRESS_HEADER", "CONSOLE_TRUSTED_PROXIES", "CONSOLE_LOGIN_FAILURE_FLOOR",
    "CONSOLE_PASSWORD_ROUNDS",
    "CONSOLE_APPROVALS", "CONSOLE_APPROVAL_BULK_OVER", "CONSOLE_APPROVAL_LIMIT_OVER",
    "CONSOLE_APPROVAL_TTL_HOURS", "CONSOLE_PASSWORD_LOGIN", "CONSOLE_SSO_ISSUER",
    "CONSOLE_SSO_METADATA_URL", "CONSOLE_SSO_CLIENT_ID", "CONSOLE_SSO_CLIENT_SECRET",
    "CONSOLE_SSO_REDIRECT_URI", "CONSOLE_SSO_SCOPES", "CONSOLE_SSO_CLAIM",
    "CONSOLE_SSO_ROLE_MAP", "CONSOLE_SSO_USERNAME_CLAIM",
)

#: What the browser tests' consoles (`fast_logins=True`) log in with, as the in-process tests
#: do (tests/conftest.py): a failed login answers at once (no 1.5 s floor) and the current
#: bcrypt cost is the demo users' (10, not 12: no rehash at a user's first login, a quarter
#: of the CPU at each). Both rules are tested in tests/pages/test_login_hardening.py; the
#: benches start their consoles as deployed (the defaults).
FAST_LOGINS = {"CONSOLE_LOGIN_FAILURE_FLOOR": "0", "CONSOLE_PASSWORD_ROUNDS": "10"}

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-dev-shm-usage",
]


def stop_process(proc: subprocess.Popen[Any] | None) -> None:
    """Terminate a child that still runs; kill it when it has not ended after 10 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def chromium_path() -> str | None:
    """Debian's chromium on PATH (installed by .ci/run), or None."""
    return shutil.which("chromium")


def launch_chromium(playwright: Any) -> Any:
    """A headless Chromium browser from Debian's package (never Playwright's download)."""
    path = chromium_path()
    if path is None:
        raise RuntimeError("chromium is not on PATH (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)


#: How many free ports a console start tries before it gives up (see `ConsoleProcess.start`).
PORT_ATTEMPTS = 5


class PortTaken(RuntimeError):
    """The console's port was bound by another process before the console could bind it."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def console_command(python: str, address: str, port: int) -> list[str]:
    """How a console process is started, here and in compose.yaml (tests/test_deploy.py
    compares the two): `python -m dashboard.serve` (`streamlit run dashboard/app.py` that
    builds the runtime at process start and writes Streamlit's `[auth]` secrets from the
    settings), headless, no file watcher, no usage statistics."""
    return [
        python, "-m", "dashboard.serve",
        "--server.address", address,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
    ]


class ConsoleProcess:
    """The console (`console_command`) on 127.0.0.1:<free port> against `sandbox_url`."""

    def __init__(self, sandbox_url: str, data_dir: Path, *, port: int | None = None,
                 log_path: Path | None = None, extra_env: dict[str, str] | None = None,
                 fast_logins: bool = False) -> None:
        self.sandbox_url = sandbox_url
        self.data_dir = Path(data_dir)
        # A port the caller chose is kept; a free one picked here may be taken by another
        # process before Streamlit binds it, and `start` then tries another.
        self.port_fixed = port is not None
        self.port = port or free_port()
        self.log_path = log_path or (self.data_dir.parent / f"console-{self.port}.log")
        self.extra_env = {**(FAST_LOGINS if fast_logins else {}), **(extra_env or {})}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._log_start = 0

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in CONSOLE_ENV}
        env.update(
            SANDBOX_URL=self.sandbox_url,
            CONSOLE_DATA_DIR=str(self.data_dir),
            # A secrets file that does not exist: .streamlit/secrets.toml must not apply.
            CONSOLE_SECRETS_FILE=str(self.data_dir.parent / "no-secrets.toml"),
            PYTHONUNBUFFERED="1",
            # Four-eyes approval off unless a test turns it on (extra_env).
            CONSOLE_APPROVALS="off",
        )
        env.update(self.extra_env)
        return env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ConsoleProcess:
        """Start the console and wait until it answers its health check. When the free port
        it was given was taken by another process in the meantime (Streamlit says "Port N is
        not available" and exits), start again on a new free port (up to PORT_ATTEMPTS)."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # as the console makes it
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start_once(timeout)
                return self
            except PortTaken:
                if self.port_fixed or attempt == PORT_ATTEMPTS:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> None:
        # dashboard.serve writes Streamlit's [auth] from the settings in its environment.
        cmd = console_command(sys.executable, "127.0.0.1", self.port)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop/kill)
        self._log_start = self._log.tell()
        self._proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=self.env(),
                                      stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                code = self._proc.returncode
                said = self._log_since_start()
                self.stop()
                if f"Port {self.port} is not available" in said:
                    raise PortTaken(f"port {self.port} was taken before the console bound it")
                raise RuntimeError(f"the console exited with {code}:\n" + self.log_tail())
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200 and r.read().strip() == b"ok":
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the console did not answer {self.url}/_stcore/health in "
                           f"{timeout:.0f} s:\n" + self.log_tail())

    def _log_since_start(self) -> str:
        """What the console wrote since its latest start."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill ends a replica: nothing runs on the way out."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ConsoleProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
