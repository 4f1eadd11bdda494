"""`CliAudit`, the audit events of the command-line tools: the pair of events, what a failure
records, and what happens when the audit log stops accepting events midway."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from services.settings import Settings
from services.store import AuditFilter, AuditLog, StoreError, open_database
from services.store.cli_audit import CLI_ROLE, AuditUnavailable, CliAudit, cli_actor_username


class FlakyLog:
    """A real audit log whose appends from number `fail_at` (1-based) on, `times` of them,
    raise like a database that went away (the driver's text holding the URL's password)."""

    def __init__(self, log: AuditLog, fail_at: int, times: int = 1000) -> None:
        self.log, self.fail_at, self.times, self.calls = log, fail_at, times, 0

    def append(self, event):
        self.calls += 1
        if self.fail_at <= self.calls < self.fail_at + self.times:
            raise OperationalError("INSERT", {}, ConnectionError(
                "server closed the connection; password=pg-Pass-w0rd-xyz"))
        return self.log.append(event)

    def flush_anchor(self) -> None:
        self.log.flush_anchor()


@pytest.fixture
def log(tmp_path: Path):
    db = open_database(f"sqlite:///{tmp_path / 'console.db'}")
    yield AuditLog(db)
    db.dispose()


def events(log: AuditLog) -> list:
    return list(log.iter_events(AuditFilter()))


def test_requested_then_succeeded(log):
    cli = CliAudit(log, actor_username="cli:ops")
    value = cli.run("user.add", lambda: ("done", None, {"roles": ["viewer"]}),
                    target_type="user", target_id="zoe", params={"roles": ["viewer"]})
    assert value == "done"
    req, ok = events(log)
    assert (req.outcome, ok.outcome) == ("requested", "succeeded")
    assert req.actor_roles == ok.actor_roles == (CLI_ROLE,)
    assert req.correlation_id == ok.correlation_id
    assert req.params["roles"] == ["viewer"] and ok.after == {"roles": ["viewer"]}


def test_failures_record_only_safe_messages(log):
    cli = CliAudit(log, actor_username="cli:ops")

    def boom():
        raise RuntimeError("cat_internalSECRET001 leaked into an exception text")

    with pytest.raises(RuntimeError):
        cli.run("vault.rotate_key", boom, target_type="vault")

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cli.run("vault.rotate_key", interrupted, target_type="vault")

    def refused():
        raise StoreError("Cannot read tokens.csv: PermissionError")

    with pytest.raises(StoreError):
        cli.run("token.import", refused, target_type="vault")
    failed = [e for e in events(log) if e.outcome == "failed"]
    assert [e.error_code for e in failed] == ["INTERNAL", "INTERRUPTED", "STORE_ERROR"]
    assert failed[0].error_message == (
        "An unexpected error (RuntimeError); see the command's output.")
    assert "SECRET" not in repr(events(log))
    assert failed[2].error_message == "Cannot read tokens.csv: PermissionError"


def test_no_change_when_requested_cannot_be_written(log):
    cli = CliAudit(FlakyLog(log, fail_at=1), actor_username="cli:ops",
                   secrets=("pg-Pass-w0rd-xyz",))
    called = []
    with pytest.raises(AuditUnavailable) as caught:
        cli.run("user.add", lambda: called.append(1) or (None, None, None))
    assert called == [] and not caught.value.change_made
    assert "nothing was changed" in caught.value.user_message
    assert "ConnectionError" in caught.value.user_message
    assert "pg-Pass-w0rd-xyz" not in caught.value.user_message
    assert events(log) == []


def test_a_store_that_comes_back_is_retried(log):
    """One failed write of the request, then of the outcome: the retries outlast both."""
    flaky = FlakyLog(log, fail_at=1, times=1)
    cli = CliAudit(flaky, actor_username="cli:ops")
    assert cli.run("user.add", lambda: ("done", None, None)) == "done"
    flaky.fail_at, flaky.calls = 2, 0
    assert cli.run("user.add", lambda: ("done", None, None)) == "done"
    assert [e.outcome for e in events(log)] == ["requested", "succeeded"] * 2


def test_change_made_but_outcome_not_recorded(log):
    cli = CliAudit(FlakyLog(log, fail_at=2), actor_username="cli:ops",
                   secrets=("pg-Pass-w0rd-xyz",))
    with pytest.raises(AuditUnavailable) as caught:
        cli.run("user.remove", lambda: (None, {"roles": ["admin"]}, None))
    assert caught.value.change_made
    (req,) = events(log)
    assert "WAS made" in caught.value.user_message
    assert req.correlation_id in caught.value.user_message
    assert "pg-Pass-w0rd-xyz" not in caught.value.user_message


def test_outcome_kept_in_the_journal_when_the_store_stays_down(log, tmp_path, capsys):
    from services.store.journal import AuditJournal

    journal = AuditJournal(tmp_path / "audit-journal.jsonl")
    cli = CliAudit(FlakyLog(log, fail_at=2), actor_username="cli:ops", journal=journal)
    assert cli.run("user.remove", lambda: ("gone", {"roles": ["admin"]}, None)) == "gone"
    assert "audit record is pending" in capsys.readouterr().err
    assert [e.event.outcome for e in journal.pending()] == ["succeeded"]
    assert journal.replay(log).replayed == 1
    assert [e.outcome for e in events(log)] == ["requested", "succeeded"]


def test_failure_not_recorded(log):
    cli = CliAudit(FlakyLog(log, fail_at=2), actor_username="cli:ops")

    def refused():
        raise StoreError("No such user.")

    with pytest.raises(AuditUnavailable) as caught:
        cli.run("user.remove", refused)
    assert not caught.value.change_made
    assert caught.value.user_message.startswith("No such user. The audit log could not")


def test_open_refuses_an_unusable_database(tmp_path):
    settings = Settings(data_dir=tmp_path,
                        database_url="postgresql+psycopg://u:pg-Pass-w0rd-xyz@127.0.0.1:1/x")
    with pytest.raises(AuditUnavailable) as caught:
        CliAudit.open(settings)
    assert "Connection refused" in caught.value.user_message
    assert "pg-Pass-w0rd-xyz" not in caught.value.user_message


def test_open_uses_the_settings_database_and_anchor(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    with CliAudit.open(settings) as cli:
        cli.run("user.add", lambda: (None, None, None), target_type="user", target_id="amy")
    assert (tmp_path / "data" / "console.db").exists()
    assert '"seq":2' in (tmp_path / "data" / "audit-anchor.json").read_text()


def test_actor_name(monkeypatch):
    from services.store import cli_audit

    monkeypatch.setattr(cli_audit.getpass, "getuser", lambda: "ops alice\n")
    assert cli_actor_username() == "cli:ops_alice"

    def fails() -> str:
        raise OSError("no login name")

    monkeypatch.setattr(cli_audit.getpass, "getuser", fails)
    assert cli_actor_username().startswith("cli:uid-")
