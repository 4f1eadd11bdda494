"""The console behind nginx as the README sets it up (CONSOLE_TRUSTED_PROXIES=1, nginx
appending to X-Forwarded-For and setting X-Forwarded-Proto), in a real browser: a locked
account stays locked when the browser sends a made-up X-Forwarded-For, the failure counts
against the address nginx appended, and the login cookie is `Secure` exactly when nginx
says the browser used https.

nginx listens on two ports in front of one console: `https_url` says `X-Forwarded-Proto:
https` (as a server block terminating TLS would), `http_url` says `http`. Skipped when
nginx is not installed.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from sandbox import SandboxHandle
from tests.e2e import helpers as h
from tests.e2e.console_process import ConsoleProcess, free_port, stop_process

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                  else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")

CONF = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
    log_format fwd '$server_port $request_uri xff="$http_x_forwarded_for"';
    access_log {root}/access.log fwd;
    client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
{servers}
}}
"""

SERVER = """
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://127.0.0.1:{console_port}; proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto {proto};
            proxy_set_header Host $host; proxy_read_timeout 86400; }}
    }}
"""


@dataclass
class Proxied:
    console: ConsoleProcess
    https_url: str
    http_url: str
    access_log: Path


def _wait_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"nginx did not answer {url} in {timeout:.0f} s")


@pytest.fixture(scope="module")
def proxied(e2e_sandbox: SandboxHandle,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    root = tmp_path_factory.mktemp("proxied-console")
    console = ConsoleProcess(e2e_sandbox.base_url, root / "data", log_path=root / "console.log",
                             extra_env={"CONSOLE_TRUSTED_PROXIES": "1"},
                             fast_logins=True).start()
    ports = {"https": free_port(), "http": free_port()}
    servers = "".join(SERVER.format(port=port, console_port=console.port, proto=proto)
                      for proto, port in ports.items())
    (root / "nginx.conf").write_text(CONF.format(root=root, servers=servers))
    nginx = subprocess.Popen([str(NGINX), "-p", str(root), "-c", str(root / "nginx.conf")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        urls = {proto: f"http://127.0.0.1:{port}" for proto, port in ports.items()}
        for url in urls.values():
            _wait_up(url)
        yield Proxied(console, urls["https"], urls["http"], root / "access.log")
    finally:
        stop_process(nginx)
        console.stop()


@pytest.fixture
def open_page(browser: Browser) -> Iterator:
    """`open_page(headers=None)`: a page in a fresh browser context that sends `headers`
    with every request (the WebSocket handshake too)."""
    made = []

    def open_(headers: dict[str, str] | None = None) -> Page:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900},
                                  extra_http_headers=headers or {})
        ctx.add_init_script(h.RUN_COUNTER_JS)
        made.append(ctx)
        return ctx.new_page()

    yield open_
    for ctx in made:
        ctx.close()


def _failures(console: ConsoleProcess) -> set[tuple[str, str]]:
    with sqlite3.connect(console.data_dir / "console.db") as conn:
        return set(conn.execute("SELECT scope, key FROM login_failures"))


def test_a_locked_account_stays_locked_with_a_made_up_forwarded_for(proxied: Proxied,
                                                                     open_page) -> None:
    attacker = open_page({"X-Forwarded-For": "203.0.113.66"})
    attacker.goto(proxied.https_url + "/")
    h.wrong_passwords_until_locked(attacker, "support")
    # Counted against the address nginx appended, never the one the browser wrote.
    assert _failures(proxied.console) == {("user", "support"), ("address", "127.0.0.1")}

    # The review's attack: the right password, with a made-up address in front.
    spoofer = open_page({"X-Forwarded-For": "198.51.100.23"})
    spoofer.goto(proxied.https_url + "/")
    h.fill_login(spoofer, "support", h.PASSWORDS["support"])
    expect(h.main(spoofer).get_by_text("Too many failed attempts")).to_be_visible(
        timeout=h.TIMEOUT)
    expect(h.nav(spoofer)).to_have_count(0)
    # The made-up header did reach the console in the WebSocket handshake (nginx logs the
    # stream when it closes), and nginx appended the client's address after it.
    spoofer.context.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not _stream_logged(proxied, "198.51.100.23"):
        time.sleep(0.2)
    assert _stream_logged(proxied, "198.51.100.23"), proxied.access_log.read_text()[-2000:]
    assert ("203.0.113.66", "198.51.100.23") not in {k for _, k in _failures(proxied.console)}


def _stream_logged(proxied: Proxied, xff: str) -> bool:
    return any("/_stcore/stream" in line and f'xff="{xff}"' in line
               for line in proxied.access_log.read_text().splitlines())


def _login_cookie(page: Page) -> dict:
    h.wait_for_login_cookie(page)
    return next(c for c in page.context.cookies() if c["name"] == h.COOKIE)


def test_the_cookie_is_secure_when_nginx_says_https(proxied: Proxied, open_page) -> None:
    over_tls = open_page()
    h.login(over_tls, proxied.https_url, "viewer")
    assert _login_cookie(over_tls)["secure"] is True
    # A reload with the cookie stays logged in (the browser sends it back).
    over_tls.reload()
    h.expect_page(over_tls, "Overview")


def test_the_cookie_is_not_secure_over_plain_http(proxied: Proxied, open_page) -> None:
    plain = open_page({"X-Forwarded-Proto": "https"})  # the client's own claim: nginx's wins
    h.login(plain, proxied.http_url, "viewer")
    assert _login_cookie(plain)["secure"] is False
