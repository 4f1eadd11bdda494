"""The one logging setup (services/logs.py): JSON lines with the request and correlation
ids in play, text otherwise, and never a secret in either."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services import logs
from services.settings import ConfigError, LogSettings, Settings, log_settings
from services.store import AuditLog, open_database
from services.store.trail import AuditTrail

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    """JSON logging of this process into a buffer; the root logger as it was afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    logs.configure("test", LogSettings("json", "INFO"), buffer)
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)


def _records(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_json_line_carries_the_ids_in_play_and_null_outside(out: io.StringIO) -> None:
    log = logging.getLogger("tests.logs")
    log.info("outside")
    with logs.log_context(request_id="bk_123"):
        log.warning("in a request %d", 7)
        with logs.log_context(correlation_id="c0ffee"):
            log.info("in a use case")
    seen = []
    worker = threading.Thread(target=lambda: seen.append(logs.current_ids()))
    with logs.log_context(request_id="bk_other"):
        worker.start()
        worker.join()
    first, second, third = _records(out)
    assert (first["request_id"], first["correlation_id"]) == (None, None)
    assert second["message"] == "in a request 7" and second["level"] == "WARNING"
    assert (second["request_id"], second["correlation_id"]) == ("bk_123", None)
    assert (third["request_id"], third["correlation_id"]) == ("bk_123", "c0ffee")
    assert {"ts", "logger", "service", "pid"} <= set(first) and first["service"] == "test"
    assert seen == [{}]  # another thread does not inherit this one's request


def test_a_use_case_logs_under_its_audit_correlation_id(out: io.StringIO,
                                                        tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'console.db'}")
    audit = AuditLog(db)
    trail = AuditTrail(audit)

    def body() -> tuple[str, None, None]:
        logging.getLogger("services.operations.test").info("calling Kryptos")
        return "done", None, None

    trail.run("alice", ["support"], "grant.revoke", body, target_type="grant",
              target_id="cgrant_1")
    events = list(audit.iter_events())
    line = next(r for r in _records(out) if r["message"] == "calling Kryptos")
    assert [e.outcome for e in events] == ["requested", "succeeded"]
    assert line["correlation_id"] == events[0].correlation_id == events[1].correlation_id
    db.dispose()


def test_secrets_and_token_shapes_never_reach_a_line(out: io.StringIO) -> None:
    settings = Settings(client_id="cid", client_secret="live-client-secret-value",
                        cookie_key="cookie-key-0123456789", vault_key="vaultkeyA=,vaultkeyB=",
                        database_url="postgresql+psycopg://console:Pg-Pass-w0rd@db/console")
    logs.add_secrets(*logs.secrets_of(settings))
    log = logging.getLogger("tests.logs")
    log.info("secret %s and key %s", "live-client-secret-value", "cookie-key-0123456789")
    log.info("GET /x?access_token=cat_0123456789abcdef&x=1 Authorization: Bearer eyJhbGciOi.a.b")
    log.info("public_0123456789ab link_0123456789ab whsec_QUJDREVGR0hJSktMTU5PUA== "
             "password=hunter2-typed db postgresql+psycopg://console:Pg-Pass-w0rd@db/console")
    try:
        raise RuntimeError("upstream said cat_fedcba9876543210 was refused")
    except RuntimeError:
        log.exception("failed")
    text = out.getvalue()
    for secret in ("live-client-secret-value", "cookie-key-0123456789", "cat_0123456789abcdef",
                   "eyJhbGciOi", "public_0123456789ab", "link_0123456789ab",
                   "whsec_QUJDREVGR0hJSktMTU5PUA==", "hunter2-typed", "Pg-Pass-w0rd",
                   "cat_fedcba9876543210", "vaultkeyA=,vaultkeyB="):
        assert secret not in text, secret
    records = _records(out)
    assert "console:***@db/console" in records[2]["message"]
    assert "RuntimeError" in records[3]["exc"]  # the traceback stays, masked


def test_text_lines_are_masked_too() -> None:
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers = list(root.handlers)
    logs.configure("test", LogSettings("text", "INFO"), buffer)
    try:
        with logs.log_context(request_id="run_1"):
            logging.getLogger("tests.logs").warning("token=cat_0123456789abcdef")
    finally:
        root.handlers[:] = handlers
    line = buffer.getvalue()
    assert "cat_0123456789abcdef" not in line
    assert "WARNING tests.logs: token=*** request_id=run_1" in line


def test_log_settings_are_checked() -> None:
    assert log_settings({}) == LogSettings("text", "INFO")
    assert log_settings({"LOG_FORMAT": "JSON", "LOG_LEVEL": "debug"}) == LogSettings("json",
                                                                                  "DEBUG")
    with pytest.raises(ConfigError, match="LOG_FORMAT must be text or json"):
        log_settings({"LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        log_settings({"LOG_LEVEL": "loud"})


def test_a_command_line_tool_logs_json_when_asked(tmp_path: Path) -> None:
    """`python -m services.store migrate` with LOG_FORMAT=json: its log records (Alembic's)
    are JSON lines naming the tool; a password in the database URL is not in them."""
    env = {**os.environ, "LOG_FORMAT": "json", "CONSOLE_DATA_DIR": str(tmp_path),
           "CONSOLE_SECRETS_FILE": str(tmp_path / "none.toml")}
    env.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "services.store", "migrate", "--database-url",
                           f"sqlite:///{tmp_path / 'console.db'}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert records and all(r["service"] == "store" for r in records)
    assert any(r["logger"].startswith("alembic") for r in records)
