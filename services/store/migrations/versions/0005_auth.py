"""Console logins: server-side sessions, failed-login counters, TOTP second factor.

Revision ID: 0005_auth
Revises: 0003_backend (re-chain after any 0004)
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_auth"
down_revision = "0004_read_model"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False),
        # sha256 of the user's password hash at login: a changed password ends the session.
        sa.Column("credential_stamp", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("end_reason", sa.String(32)),
        sa.Column("client_address", sa.String(64)),
    )
    op.create_index("ix_console_sessions_user", "console_sessions", ["username", "ended_at"])
    op.create_table(
        "login_failures",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True)),
        sa.Column("username", sa.String(64)),
        sa.Column("client_address", sa.String(64)),
    )
    op.create_table(
        "totp_secrets",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("secret_ciphertext", sa.Text(), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "totp_recovery_codes",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("used_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    op.drop_table("totp_recovery_codes")
    op.drop_table("totp_secrets")
    op.drop_table("login_failures")
    op.drop_index("ix_console_sessions_user", table_name="console_sessions")
    op.drop_table("console_sessions")
