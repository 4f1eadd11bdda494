"""The backend's audit records against `kill -9`: a call's `requested` event is committed
(waiting for the disk) before Kryptos is asked, so a backend killed while Kryptos holds the
call keeps it; the outcome commits without waiting for the disk, which a killed process
does not lose either (only a crash of the machine could). `python -m backend` as a real
process on SQLite and PostgreSQL, the sandbox as Kryptos."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from backend.launch import free_port, wait_until_up
from services.store import AuditLog, Database
from tests.backend.helpers import JWT_SECRET, WEBHOOK_SECRET, auth
from tests.services.store.conftest import db_url, pg_base_url  # noqa: F401

pytestmark = pytest.mark.slow
LINK = "/api/kryptos/create-link-token"


def _start(tmp_path: Path, url: str, sandbox_url: str) -> tuple[subprocess.Popen[bytes], str]:
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KRYPTOS_", "BACKEND_", "CONSOLE_", "SANDBOX_", "DATABASE_"))}
    env.update(CONSOLE_SECRETS_FILE=str(tmp_path / "none.toml"),
               CONSOLE_DATA_DIR=str(tmp_path / "data"), DATABASE_URL=url,
               SANDBOX_URL=sandbox_url, KRYPTOS_VAULT_KEY=Fernet.generate_key().decode(),
               BACKEND_JWT_SECRET=JWT_SECRET, KRYPTOS_WEBHOOK_SECRET=WEBHOOK_SECRET,
               KRYPTOS_MAX_RETRIES="0", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    port = free_port()
    child = subprocess.Popen([sys.executable, "-m", "backend", "--port", str(port)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/healthz", child)
    except BaseException:
        child.kill()
        raise
    return child, base


def _kill(child: subprocess.Popen[bytes]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)


def _link_events(url: str, customer: str) -> list[tuple[str, str]]:
    db = Database(url)
    try:
        log = AuditLog(db)
        assert log.verify_chain().ok
        return [(e.outcome, e.correlation_id) for e in log.iter_events()
                if e.action == "link_token.create" and e.actor_username == f"customer:{customer}"]
    finally:
        db.dispose()


def test_killed_while_kryptos_holds_the_call_keeps_the_request(
        tmp_path: Path, db_url: str, sandbox) -> None:  # noqa: F811
    child, base = _start(tmp_path, db_url, sandbox.base_url)
    try:
        hold = sandbox.hold_after_apply("/link-token", ms=30_000)
        errors: list[BaseException] = []

        def call() -> None:
            try:
                requests.post(base + LINK, json={}, headers=auth("killed-mid-call"), timeout=60)
            except requests.RequestException as exc:  # the backend dies under the call
                errors.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        start = time.monotonic()
        while sandbox.holding(hold) < 1:
            assert time.monotonic() - start < 60, "the call never reached Kryptos"
            time.sleep(0.02)
        _kill(child)
        caller.join(30)
        assert errors, "the caller got an answer from a killed backend"
    finally:
        sandbox.clear_faults()
        if child.poll() is None:
            _kill(child)
    events = _link_events(db_url, "killed-mid-call")
    assert [o for o, _ in events] == ["requested"]


def test_killed_right_after_answering_keeps_the_outcome(
        tmp_path: Path, db_url: str, sandbox) -> None:  # noqa: F811
    child, base = _start(tmp_path, db_url, sandbox.base_url)
    try:
        answers = [requests.post(base + LINK, json={}, headers=auth("killed-after"), timeout=60)
                   for _ in range(3)]
        _kill(child)  # at once: the last outcome's commit did not wait for the disk
    finally:
        if child.poll() is None:
            _kill(child)
    assert [a.status_code for a in answers] == [200, 200, 200]
    events = _link_events(db_url, "killed-after")
    assert sorted(o for o, _ in events) == ["requested"] * 3 + ["succeeded"] * 3
    by_call: dict[str, list[str]] = {}
    for outcome, cid in events:
        by_call.setdefault(cid, []).append(outcome)
    assert sorted(by_call.values()) == [["requested", "succeeded"]] * 3
