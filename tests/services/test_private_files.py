"""Private data: what the store and the tools create is the owner's only (folders 0700,
files 0600) whatever the umask they run under; loose modes found at start are reported
(and left alone)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.operations.users_file import add_user
from services.private_files import prepare_data_dir
from services.secret_file import secret_file
from services.settings import load_settings
from services.store import AuditLog, NewAuditEvent, open_database
from services.store.journal import AuditJournal
from services.store.vault_keys import load_vault_key


def modes(root: Path) -> dict[str, str]:
    """Every folder and file under `root` (itself included) with its mode, e.g. "0600"."""
    out = {".": f"{stat.S_IMODE(root.stat().st_mode):04o}"}
    for path in sorted(root.rglob("*")):
        out[str(path.relative_to(root))] = f"{stat.S_IMODE(path.stat().st_mode):04o}"
    return out


def assert_private(root: Path) -> None:
    found = modes(root)
    loose = {p: m for p, m in found.items()
             if m != ("0700" if (root / p).is_dir() else "0600")}
    assert loose == {}, found


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run under the common umask 022 (files 0644 unless the code says otherwise)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _event(cid: str) -> NewAuditEvent:
    return NewAuditEvent(actor_username="alice", actor_roles=("support",),
                         action="grant.revoke", outcome="requested", target_type="grant",
                         target_id="cgrant_1", correlation_id=cid)


def test_what_the_store_and_the_tools_create_is_private_under_any_umask(tmp_path, open_umask):
    """As a command-line tool writes them (`python -m dashboard.users`, `services.store`),
    without the console's start having prepared anything."""
    data = tmp_path / "fresh" / "data"
    settings = load_settings({"CONSOLE_SECRETS_FILE": str(tmp_path / "none.toml"),
                              "CONSOLE_DATA_DIR": str(data)})
    db = open_database(settings.effective_database_url)  # creates data/ and console.db
    try:
        log = AuditLog(db, anchor_file=settings.effective_audit_anchor_file)
        log.append(_event("c1"))  # the database's -wal and -shm files exist from here
        log.flush_anchor()
        assert (data / "console.db-wal").exists() and (data / "audit-anchor.json").exists()
        journal = AuditJournal(settings.effective_audit_journal_file)
        journal.add(_event("c2"))
        (data / "audit-journal.jsonl").open("a").write("a torn line\n")
        report = journal.replay(log)  # rewrites the journal, sets the torn line aside
        assert report.replayed == 1 and (data / "audit-journal.jsonl.unreadable").exists()
        load_vault_key(settings)
        secret_file(data / "cookie.key")
        add_user(data / "users.yaml", "alice", "a-long-password-1", ["viewer"], rounds=4)
        # (checked with the database open: the last connection's close removes -wal/-shm)
        assert {"console.db", "console.db-wal", "console.db-shm", "audit-anchor.json",
                "audit-journal.jsonl", "audit-journal.jsonl.unreadable", "vault.key",
                "cookie.key", "users.yaml"} <= set(modes(data))
        assert_private(data)
    finally:
        db.dispose()


def test_loose_modes_at_start_are_reported_and_left_alone(tmp_path, caplog):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "console.db").write_text("")
    (data / "console.db").chmod(0o644)
    (data / "cookie.key").write_text("k")
    (data / "cookie.key").chmod(0o600)
    (data / "backups").mkdir()
    (data / "backups").chmod(0o750)
    elsewhere = tmp_path / "etc" / "users.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text("")
    elsewhere.chmod(0o604)
    settings = load_settings({"CONSOLE_SECRETS_FILE": str(tmp_path / "none.toml"),
                              "CONSOLE_DATA_DIR": str(data),
                              "CONSOLE_AUTH_FILE": str(elsewhere)})
    old = os.umask(0o022)
    try:
        with caplog.at_level(logging.WARNING, logger="services.private_files"):
            found = prepare_data_dir(settings)
        after = os.umask(0o022)
    finally:
        os.umask(old)
    assert found == (
        f"The folder {data} has mode 0755: group and others can use it. Make it private "
        f"with `chmod 700 {data}`.",
        f"The folder {data / 'backups'} has mode 0750: group can use it. Make it private "
        f"with `chmod 700 {data / 'backups'}`.",
        f"The file {data / 'console.db'} has mode 0644: group and others can use it. Make "
        f"it private with `chmod 600 {data / 'console.db'}`.",
        f"The file {elsewhere} has mode 0604: others can use it. Make it private with "
        f"`chmod 600 {elsewhere}`.",
    )
    assert [r.getMessage() for r in caplog.records] == [f"private data: {w}" for w in found]
    assert modes(data)["."] == "0755" and modes(data)["console.db"] == "0644"  # left alone
    assert after & 0o077 == 0o077  # what the process creates from now on is private


def test_a_fresh_start_reports_nothing_and_makes_the_folder_private(tmp_path):
    data = tmp_path / "new" / "data"
    settings = load_settings({"CONSOLE_SECRETS_FILE": str(tmp_path / "none.toml"),
                              "CONSOLE_DATA_DIR": str(data)})
    assert prepare_data_dir(settings) == ()
    assert modes(data) == {".": "0700"}
