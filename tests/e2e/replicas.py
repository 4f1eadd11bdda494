"""Two console replicas and two backend replicas on PostgreSQL behind Debian's nginx, as
`compose.yaml` runs them: the same nginx configuration (`deploy/nginx.conf.template`), the
same commands and the same settings (tests/test_deploy.py compares the two files).

Used by tests/e2e/test_replicas.py and bench/replicas.py. Everything runs as ordinary
processes on 127.0.0.1 free ports: a throwaway PostgreSQL database, the sandbox
(`python -m sandbox`, sending its webhooks through nginx), two `python -m backend`, two
`python -m dashboard.serve` consoles (each builds its runtime, and so stands by for the
sync lock, at process start: no page has to be opened first) and nginx with a main
configuration of its own in a temporary folder that includes the filled template.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.e2e.console_process import (
    CONSOLE_ENV,
    PROJECT_ROOT,
    ConsoleProcess,
    free_port,
    stop_process,
)
from tests.timing import wait_for

TEMPLATE = PROJECT_ROOT / "deploy" / "nginx.conf.template"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                  else None)
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: The route cookie nginx gives each browser (deploy/nginx.conf.template).
ROUTE_COOKIE = "kc_route"

#: Settings every console and backend replica gets, with these values, here and in
#: compose.yaml. SYNC_LOCK_RETRY is the lease: a standby takes the sync over from a dead
#: holder within two of them.
SHARED = {
    "CONSOLE_TRUSTED_PROXIES": "1",
    "CONSOLE_APPROVALS": "on",
    "LOG_FORMAT": "json",
    "SYNC_ENABLED": "true",
    "SYNC_LOCK_RETRY": "3",
}
#: Settings every replica shares whose values are the deployment's secrets (compose.yaml
#: takes them from `.env`; here they are made per run).
SECRETS = ("KRYPTOS_VAULT_KEY", "CONSOLE_COOKIE_KEY", "BACKEND_JWT_SECRET",
           "KRYPTOS_WEBHOOK_SECRET")
#: Settings whose values are places (a database, an address, a folder): the same names
#: here and in compose.yaml, other values.
PLACES = ("DATABASE_URL", "SANDBOX_URL", "CONSOLE_DATA_DIR", "CONSOLE_AUTH_FILE")
#: What the processes here get besides (a missing secrets file, unbuffered output: the
#: image sets PYTHONUNBUFFERED and has no secrets file).
LOCAL_ONLY = ("CONSOLE_SECRETS_FILE", "PYTHONUNBUFFERED")

NGINX_MAIN = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
    include {root}/replicas.conf;
}}
"""

_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def template_names(template: str) -> set[str]:
    """The ${NAME} placeholders of the template."""
    return set(_PLACEHOLDER.findall(template))


def fill_template(template: str, values: dict[str, str]) -> str:
    """Replace each ${NAME} by its value, as envsubst does with the names it is given
    (nginx's own `$variables` have no braces and stay); a name without a value is an
    error, not an empty string."""
    missing = template_names(template) - set(values)
    if missing:
        raise KeyError(f"no value for {', '.join(sorted(missing))}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def backend_command(python: str, host: str, port: int, allow: str) -> list[str]:
    """How a backend replica is started (here and in compose.yaml): uvicorn behind a proxy
    whose X-Forwarded-* it trusts from `allow`."""
    return [python, "-m", "backend", "--host", host, "--port", str(port), "--proxy-headers",
            "--forwarded-allow-ips", allow]


def sandbox_command(python: str, host: str, port: int, webhook_url: str,
                    webhook_secret: str) -> list[str]:
    """The sandbox (the stand-in for Kryptos), sending its signed webhooks to `webhook_url`
    (nginx's backend side). The secret on its command line is the sandbox's own."""
    return [python, "-m", "sandbox", "--host", host, "--port", str(port),
            "--webhook-url", webhook_url, "--webhook-secret", webhook_secret]


def new_secrets() -> dict[str, str]:
    import base64
    import secrets as random

    return {
        "KRYPTOS_VAULT_KEY": Fernet.generate_key().decode(),
        "CONSOLE_COOKIE_KEY": random.token_urlsafe(32),
        "BACKEND_JWT_SECRET": random.token_urlsafe(32),
        "KRYPTOS_WEBHOOK_SECRET": "whsec_" + base64.b64encode(random.token_bytes(32)).decode(),
    }


def _wait_ok(url: str, proc: subprocess.Popen[Any] | None = None,
             timeout: float = 60.0) -> None:
    def ok() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, proc.args))} exited ({proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    wait_for(ok, timeout=timeout, what=url)


@dataclass
class Stack:
    """The running replicas. `consoles[i]`, `backends[i]`: replica i; `console_url` and
    `backend_url`: nginx's two sides."""

    root: Path
    admin_url: str
    db_url: str
    secrets: dict[str, str]
    sandbox_url: str = ""
    console_url: str = ""
    backend_url: str = ""
    consoles: list[ConsoleProcess] = field(default_factory=list)
    backends: list[subprocess.Popen[bytes]] = field(default_factory=list)
    backend_ports: list[int] = field(default_factory=list)
    _others: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _engine: Any = None
    fast_logins: bool = False  # the consoles' logins as the browser tests' (FAST_LOGINS)

    @property
    def lease(self) -> float:
        return float(SHARED["SYNC_LOCK_RETRY"])

    @property
    def access_log(self) -> Path:
        return self.root / "access.log"

    def env(self, data_dir: Path) -> dict[str, str]:
        """A replica's settings: the shared ones, the secrets and its places."""
        return {**SHARED, **self.secrets, "DATABASE_URL": self.db_url,
                "SANDBOX_URL": self.sandbox_url, "CONSOLE_DATA_DIR": str(data_dir),
                "CONSOLE_AUTH_FILE": str(self.root / "users" / "users.yaml")}

    # --- starting -----------------------------------------------------------------------

    @classmethod
    def start(cls, root: Path, admin_url: str | None = None, *,
              fast_logins: bool = False) -> Stack:
        if NGINX is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx)")
        admin = make_url(admin_url or os.environ.get("TEST_POSTGRES_URL") or DEFAULT_PG_URL)
        if admin.get_driver_name() in ("", "psycopg2"):
            admin = admin.set(drivername="postgresql+psycopg")
        name = f"kc_replicas_{uuid.uuid4().hex[:10]}"
        engine = create_engine(admin, isolation_level="AUTOCOMMIT",
                               connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        stack = cls(root, admin.render_as_string(hide_password=False),
                    admin.set(database=name).render_as_string(hide_password=False),
                    new_secrets(), fast_logins=fast_logins)
        try:
            stack._start_all()
        except BaseException:
            stack.stop()
            raise
        return stack

    def _spawn(self, cmd: list[str], log: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        base = {k: v for k, v in os.environ.items() if k not in CONSOLE_ENV}
        with open(self.root / log, "ab") as out:
            proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env={**base, **env,
                                                               "PYTHONUNBUFFERED": "1"},
                                    stdout=out, stderr=subprocess.STDOUT)
        return proc

    def _start_all(self) -> None:
        py = sys.executable
        console_port, backend_port = free_port(), free_port()
        self.console_url = f"http://127.0.0.1:{console_port}"
        self.backend_url = f"http://127.0.0.1:{backend_port}"
        sandbox_port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        sandbox = self._spawn(sandbox_command(py, "127.0.0.1", sandbox_port,
                                              self.backend_url + "/api/kryptos/webhooks",
                                              self.secrets["KRYPTOS_WEBHOOK_SECRET"]),
                              "sandbox.log", {})
        self._others.append(sandbox)
        _wait_ok(self.sandbox_url + "/api/health", sandbox)
        (self.root / "users").mkdir(mode=0o700)  # one users file for every replica
        self.backend_ports = [free_port(), free_port()]
        for i, port in enumerate(self.backend_ports):
            data = self.root / f"backend-{i + 1}"
            data.mkdir(mode=0o700)
            self.backends.append(self._spawn(backend_command(py, "127.0.0.1", port,
                                                             "127.0.0.1"),
                                             f"backend-{i + 1}.log", self.env(data)))
        for port, proc in zip(self.backend_ports, self.backends, strict=True):
            _wait_ok(f"http://127.0.0.1:{port}/healthz", proc)
        self.consoles = [self._console(i) for i in range(2)]
        started = [threading.Thread(target=c.start) for c in self.consoles]
        for t in started:
            t.start()
        for t in started:
            t.join()
        for c in self.consoles:
            _wait_ok(c.url + "/_stcore/health", timeout=5)
        values = {"CONSOLE_LISTEN": f"127.0.0.1:{console_port}",
                  "BACKEND_LISTEN": f"127.0.0.1:{backend_port}",
                  "CONSOLE_1": f"127.0.0.1:{self.consoles[0].port}",
                  "CONSOLE_2": f"127.0.0.1:{self.consoles[1].port}",
                  "BACKEND_1": f"127.0.0.1:{self.backend_ports[0]}",
                  "BACKEND_2": f"127.0.0.1:{self.backend_ports[1]}",
                  "ACCESS_LOG": str(self.access_log)}
        (self.root / "replicas.conf").write_text(fill_template(TEMPLATE.read_text(), values))
        (self.root / "nginx.conf").write_text(NGINX_MAIN.format(root=self.root))
        assert NGINX is not None
        nginx = subprocess.Popen([NGINX, "-p", str(self.root), "-c",
                                  str(self.root / "nginx.conf")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self._others.append(nginx)
        _wait_ok(self.console_url + "/_stcore/health", nginx, timeout=15)
        _wait_ok(self.backend_url + "/healthz", nginx, timeout=15)

    def _console(self, i: int, port: int | None = None) -> ConsoleProcess:
        data = self.root / f"console-{i + 1}"
        return ConsoleProcess(self.sandbox_url, data, port=port,
                              log_path=self.root / f"console-{i + 1}.log",
                              extra_env=self.env(data), fast_logins=self.fast_logins)

    def restart_console(self, i: int) -> None:
        """Start replica i again on its port and data folder (as an orchestrator would)."""
        self.consoles[i] = self._console(i, self.consoles[i].port).start()

    # --- looking at it ------------------------------------------------------------------

    def sql(self, query: str, **params: Any) -> list[Any]:
        if self._engine is None:
            self._engine = create_engine(self.db_url)
        with self._engine.connect() as conn:
            return list(conn.execute(text(query), params))

    def holder(self) -> str | None:
        """The sync lock's holder as the database names it (`<host>:<pid>`)."""
        rows = self.sql("SELECT value FROM rm_sync_state WHERE name = 'sync_holder'")
        return rows[0][0] if rows else None

    def console_of(self, holder: str) -> int:
        """Which console replica a holder name is."""
        pid = int(holder.rsplit(":", 1)[1])
        return next(i for i, c in enumerate(self.consoles) if c.pid == pid)

    def upstreams(self, route: str | None = None, path: str = "") -> list[str]:
        """The upstream that answered each logged request (of this route cookie, whose path
        starts with `path`), oldest first. A request nginx passed on from a replica that
        refused it lists both (`a, b`): the last one answered."""
        found = []
        for line in self.access_log.read_text().splitlines():
            m = re.search(r'"[A-Z]+ (\S+) [^"]*" (\d+) .*upstream=(.+?) route=(\S+)', line)
            if m and m.group(1).startswith(path) and (route is None or m.group(4) == route):
                found.append(m.group(3).split(", ")[-1])
        return found

    def console_at(self, address: str) -> int | None:
        """The console replica at `address` (None: nginx found no live replica and logged
        the upstream's name)."""
        return next((i for i, c in enumerate(self.consoles)
                     if address.endswith(f":{c.port}")), None)

    def logs(self) -> dict[str, str]:
        return {p.name: p.read_text(errors="replace") for p in sorted(self.root.glob("*.log"))}

    # --- stopping -----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every process (all at once: each may take a few seconds to end), then drop
        the database."""
        stops = [*(lambda p=p: stop_process(p) for p in (*self._others, *self.backends)),
                 *(c.stop for c in self.consoles)]
        threads = [threading.Thread(target=stop) for stop in stops]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self._engine is not None:
            self._engine.dispose()
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                name = make_url(self.db_url).database
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()


# --- the measured move, shared by the test and the bench --------------------------------------

def route_to(stack: Stack, context: Any, index: int) -> str:
    """Give the browser `context` a route cookie that nginx hashes onto console replica
    `index` (tried on `/_stcore/health` until one lands there); returns the cookie."""
    for _ in range(64):
        route = uuid.uuid4().hex
        context.add_cookies([{"name": ROUTE_COOKIE, "value": route,
                              "url": stack.console_url}])
        context.request.get(stack.console_url + "/_stcore/health")
        answered = wait_for(lambda r=route: stack.upstreams(r), timeout=5,
                            what="nginx logging the request")
        if stack.console_at(answered[-1]) == index:
            return route
    raise AssertionError(f"no route cookie reached console replica {index}")


@dataclass(frozen=True)
class Failover:
    killed: int
    serving_now: int
    reconnect_s: float
    takeover_s: float


def kill_serving_holder(stack: Stack, page: Any) -> Failover:
    """SIGKILL the console replica that both serves `page` (opened through nginx, routed
    there by `route_to`) and holds the sync lock; time until the page's connection is back
    through another replica, and until another replica records itself as the sync holder.

    Streamlit's page notices the closed WebSocket, asks nginx for `/_stcore/health` (nginx
    passes the refused request to the other replica) and opens a new stream there; it does
    not rerun the page by itself: the person's next action runs on the new replica."""
    route = next(c["value"] for c in page.context.cookies() if c["name"] == ROUTE_COOKIE)
    serving = stack.console_at(stack.upstreams(route, "/_stcore/")[-1])
    holder = wait_for(stack.holder, timeout=60, what="a sync holder")
    assert serving is not None and stack.console_of(holder) == serving, \
        "the page is not served by the sync holder (route_to first)"
    seen = len(stack.upstreams(route, "/_stcore/"))
    started = time.monotonic()
    stack.consoles[serving].kill()
    back_at: dict[str, float] = {}
    now_serving: list[int] = []

    def done() -> bool:
        if "reconnect" not in back_at:
            answered = [stack.console_at(u) for u in stack.upstreams(route, "/_stcore/")[seen:]]
            others = [i for i in answered if i is not None and i != serving]
            state = page.get_by_test_id("stApp").get_attribute("data-test-connection-state")
            if others and state == "CONNECTED":
                back_at["reconnect"] = time.monotonic()
                now_serving.append(others[-1])
        if "takeover" not in back_at and stack.holder() not in (None, holder):
            back_at["takeover"] = time.monotonic()
        return len(back_at) == 2

    wait_for(done, timeout=max(30.0, 4 * stack.lease),
             what=f"reconnection and sync takeover (so far: {sorted(back_at)})")
    return Failover(serving, now_serving[0], back_at["reconnect"] - started,
                    back_at["takeover"] - started)
