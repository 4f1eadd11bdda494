"""Core table objects used for queries. The schema itself is owned by the Alembic migrations
in `migrations/versions/`; keep the two in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, Text
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("actor_username", String(200), nullable=False),
    Column("actor_roles", Text, nullable=False),
    Column("action", String(100), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("target_type", String(50)),
    Column("target_id", String(200)),
    Column("params", Text),
    Column("before_value", Text),
    Column("after_value", Text),
    Column("reason", Text),
    Column("ticket", String(200)),
    Column("error_code", String(100)),
    Column("error_message", Text),
    Column("request_id", String(200)),
    Column("correlation_id", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

vault_tokens = Table(
    "vault_tokens",
    metadata,
    Column("grant_id", String(200), primary_key=True),
    Column("token_ciphertext", Text, nullable=False),
    Column("masked_token", String(40), nullable=False),
    Column("workspace_id", String(200)),
    Column("kryptos_user_id", String(200)),
    Column("customer_ref", String(320)),
    Column("user_kind", String(10)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),  # 0003: the customer disconnected (token kept)
)

vault_meta = Table(
    "vault_meta",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("value", Text, nullable=False),
)

# --- 0003_backend: the customer backend's tables ---------------------------------------------

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    Column("webhook_id", String(200), nullable=False, unique=True),
    Column("type", String(100), nullable=False),
    Column("grant_id", String(200)),
    Column("kryptos_user_id", String(200)),
    Column("received_at", UTCDateTime, nullable=False),
    Column("payload", Text, nullable=False),
    Column("processed_at", UTCDateTime),
)

# Each public token exchanged once, by the console or the backend (services/store/exchanges.py).
backend_exchanges = Table(
    "backend_exchanges",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # SHA-256 of the public token
    Column("customer_ref", String(320), nullable=False),
    Column("state", String(10), nullable=False),  # pending, done, failed
    Column("grant_id", String(200)),
    Column("error_status", Integer),
    Column("error_code", String(100)),
    Column("error_message", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

backend_rate_hits = Table(
    "backend_rate_hits",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    Column("bucket", String(400), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
)

# --- 0005_auth: console logins (services/store/sessions.py and totp.py) ---------------------

# Console logins (migration 0005_auth): see services/store/sessions.py and totp.py.
console_sessions = Table(
    "console_sessions",
    metadata,
    # SHA-256 (hex) of the session id; the id itself is only in the browser's cookie.
    Column("id_hash", String(64), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("roles", Text, nullable=False),
    Column("credential_stamp", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Column("end_reason", String(32)),
    Column("client_address", String(64)),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("scope", String(16), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", UTCDateTime, nullable=False),
    Column("locked_until", UTCDateTime),
    Column("username", String(64)),
    Column("client_address", String(64)),
)

totp_secrets = Table(
    "totp_secrets",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("secret_ciphertext", Text, nullable=False),
    Column("enrolled_at", UTCDateTime, nullable=False),
    Column("last_step", BigInteger, nullable=False),
)

totp_recovery_codes = Table(
    "totp_recovery_codes",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("code_hash", String(64), primary_key=True),
    Column("used_at", UTCDateTime),
)
