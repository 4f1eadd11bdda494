"""Console logins in the database: sessions, failed-login locks, TOTP (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select, text

from services.store import Database, open_database
from services.store.db import MIGRATIONS_DIR
from services.store.schema import console_sessions, totp_recovery_codes, totp_secrets
from services.store.sessions import LoginFailures, SessionStore
from services.store.totp import TotpStore


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_sessions_create_touch_end_and_end_user(db):
    clock = Clock()
    store = SessionStore(db, clock=clock)
    a = store.create("bob", ["finance", "admin"], "$2b$12$hash", "10.0.0.1")
    b = store.create("bob", ["admin", "finance"], "$2b$12$hash", None)
    other = store.create("eve", ["viewer"], "$2b$12$x")
    assert len(a.id) >= 43 and a.id != b.id
    assert a.id not in repr(a)
    got = store.get(a.id)
    assert got.roles == ("admin", "finance") and got.client_address == "10.0.0.1"
    clock.advance(45)
    store.touch(a.id)
    assert store.get(a.id).last_seen_at == clock.now
    assert store.end(a.id, "logout") and not store.end(a.id, "logout")
    assert store.get(a.id).end_reason == "logout"
    assert store.end_user("bob", "roles_changed") == 1  # b; a was already ended
    assert store.get(b.id).end_reason == "roles_changed"
    assert store.get(other.id).ended_at is None
    assert [s.id_hash for s in store.open_sessions("eve")] == [other.id_hash]
    assert store.get("not-a-session-id-at-all-xxxxxx") is None
    assert store.get("short") is None


def test_the_table_holds_no_session_id_and_a_stolen_row_opens_nothing(db):
    """Whoever reads the database (a copied file, a backup) learns each session's hash,
    not its id: the row's values, used as the id, name no session."""
    store = SessionStore(db)
    session = store.create("admin", ["admin"], "$2b$12$hash", "10.0.0.1")
    with db.read() as conn:
        [row] = conn.execute(select(console_sessions)).mappings().all()
    assert session.id not in {str(v) for v in row.values()}
    assert row["id_hash"] == hashlib.sha256(session.id.encode()).hexdigest()
    for stolen in row.values():
        assert store.get(str(stolen)) is None
    store.touch(row["id_hash"])
    assert not store.end(row["id_hash"], "logout")
    assert store.get(session.id).ended_at is None  # the cookie's id still works


def test_migration_ends_the_sessions_stored_with_readable_ids(db_url):
    """The ids stored before the migration were readable by whoever read the database, so
    they are dropped, not hashed (a hashed copy would still open its session)."""
    db = Database(db_url)
    with db.write() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "0008_rm_scale")
        now = datetime.now(UTC)
        conn.execute(text(
            "INSERT INTO console_sessions (id, username, roles, credential_stamp, created_at, "
            "last_seen_at) VALUES (:id, 'admin', 'admin', 'x', :now, :now)"),
            {"id": "old-readable-session-id-xxxxxxxxxxxxxxxxxxx", "now": now})
    db.dispose()
    db = open_database(db_url)
    try:
        store = SessionStore(db)
        assert store.get("old-readable-session-id-xxxxxxxxxxxxxxxxxxx") is None
        assert store.open_sessions("admin") == []
        session = store.create("admin", ["admin"], "$2b$12$hash")
        assert store.get(session.id).username == "admin"
    finally:
        db.dispose()


def test_five_failures_lock_the_username_from_every_address_for_the_lock_time(db):
    clock = Clock()
    lf = LoginFailures(db, max_failures=5, max_failures_wide=20, lock_seconds=900, clock=clock)
    lefts = [lf.failure("admin", "10.0.0.9") for _ in range(5)]
    assert lefts == [4, 3, 2, 1, 0]
    assert lf.locked_for("admin", "10.0.0.9") == pytest.approx(900)
    # Another address (a made-up X-Forwarded-For, or none) does not get round the lock;
    # another user from the attacker's address is not locked by it.
    assert lf.locked_for("admin", "10.0.0.1") == pytest.approx(900)
    assert lf.locked_for("admin", None) == pytest.approx(900)
    assert lf.locked_for("viewer", "10.0.0.9") == 0
    # Nothing but time lifts it: a success elsewhere, more failures, a new object (replica).
    lf.success("admin")
    lf.failure("admin", "10.0.0.9")
    clock.advance(600)
    again = LoginFailures(db, max_failures=5, lock_seconds=900, clock=clock)
    assert again.locked_for("admin", "10.0.0.9") == pytest.approx(300)
    clock.advance(301)
    assert again.locked_for("admin", "10.0.0.9") == 0
    assert again.failure("admin", "10.0.0.9") == 4  # a fresh count after the lock


def test_failures_from_many_addresses_add_up_and_one_address_has_a_wide_limit(db):
    clock = Clock()
    lf = LoginFailures(db, max_failures=5, max_failures_wide=6, lock_seconds=900, clock=clock)
    assert [lf.failure("admin", f"10.1.0.{i}") for i in range(5)] == [4, 3, 2, 1, 0]
    assert lf.locked_for("admin", "10.9.9.9") > 0  # the username, from everywhere
    for i in range(6):
        lf.failure(f"user{i}", "10.2.0.1")
    assert lf.locked_for("someone", "10.2.0.1") > 0  # the address, for every username
    assert lf.locked_for("someone", "10.2.0.2") == 0


def test_unknown_address_counts_for_the_username_only(db):
    lf = LoginFailures(db, max_failures=2, max_failures_wide=2, lock_seconds=60)
    lf.failure("a", None)
    lf.failure("b", None)
    assert lf.locked_for("c", None) == 0  # no shared "unknown" address bucket
    lf.failure("a", "unknown")
    assert lf.locked_for("a", None) > 0


def test_success_forgets_failures_but_unlock_is_needed_for_a_lock(db):
    lf = LoginFailures(db, max_failures=3, lock_seconds=60)
    lf.failure("a", "1.1.1.1")
    lf.failure("a", "1.1.1.1")
    lf.success("a")
    assert lf.failure("a", "1.1.1.1") == 2
    lf.failure("a", "1.1.1.1")
    lf.failure("a", "1.1.1.1")
    assert lf.locked_for("a", "1.1.1.1") > 0
    lf.success("a")
    assert lf.locked_for("a", "1.1.1.1") > 0
    assert [lock.username for lock in lf.locks()] == ["a"]
    assert lf.unlock(username="a") == 1
    assert lf.locked_for("a", "1.1.1.1") == 0 and lf.locks() == []
    with pytest.raises(ValueError):
        lf.unlock()


def test_longest_username_and_address_fit(db):
    lf = LoginFailures(db, max_failures=1, lock_seconds=60)
    name, address = "u" * 64, "f" * 64
    assert lf.failure(name, address) == 0
    assert lf.locked_for(name, address) > 0
    assert lf.unlock(username=name) == 1


def test_unlock_an_address(db):
    lf = LoginFailures(db, max_failures=50, max_failures_wide=2, lock_seconds=60)
    lf.failure("x", "9.9.9.9")
    lf.failure("y", "9.9.9.9")
    assert lf.locked_for("z", "9.9.9.9") > 0
    assert lf.unlock(address="9.9.9.9") == 1
    assert lf.locked_for("z", "9.9.9.9") == 0


def test_totp_code_once_recovery_code_once_secret_encrypted(db, vault_key):
    store = TotpStore(db, vault_key)
    secret = pyotp.random_base32()
    assert not store.is_enrolled("bob")
    codes = store.enroll("bob", secret)
    assert len(codes) == 10 and len(set(codes)) == 10 and store.is_enrolled("bob")
    with db.read() as conn:
        stored = conn.execute(select(totp_secrets.c.secret_ciphertext)).scalar_one()
        hashes = conn.execute(select(totp_recovery_codes.c.code_hash)).scalars().all()
    assert secret not in stored
    assert not set(codes) & set(hashes)
    code = pyotp.TOTP(secret).now()
    assert store.verify("bob", code)
    assert not store.verify("bob", code)  # replay of the same code
    assert not store.verify("bob", "000000" if code != "000000" else "111111")
    assert not store.verify("eve", code)
    assert store.use_recovery_code("bob", codes[3].upper())  # case and dashes do not matter
    assert not store.use_recovery_code("bob", codes[3])
    assert store.recovery_codes_left("bob") == 9
    assert not store.use_recovery_code("eve", codes[4])
    new_codes = store.enroll("bob", pyotp.random_base32())  # re-enrolment: old codes void
    assert not store.use_recovery_code("bob", codes[4])
    assert store.use_recovery_code("bob", new_codes[0])
    assert store.remove("bob") and not store.is_enrolled("bob")


def test_totp_secrets_follow_a_vault_key_rotation(db):
    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key(), Fernet.generate_key()
    secret = pyotp.random_base32()
    TotpStore(db, old).enroll("bob", secret)
    rotating = TotpStore(db, b",".join([new, old]))
    assert rotating.rotate() == (1, [])
    assert rotating.rotate() == (0, [])
    assert TotpStore(db, new).verify("bob", pyotp.TOTP(secret).now())  # the old key is gone
    assert TotpStore(db, Fernet.generate_key()).rotate() == (0, ["bob"])
