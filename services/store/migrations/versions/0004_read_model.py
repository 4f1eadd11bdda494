"""Read model: the grants joined with the vault, their integrations, sync state, and a
change counter (see services/store/readmodel/).

Revision ID: 0004_read_model
Revises: 0003_backend
Create Date: 2026-12-01
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0004_read_model"
down_revision = "0003_backend"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "rm_grants",
        sa.Column("grant_id", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("workspace_id", sa.String(200)),
        sa.Column("scopes", sa.Text()),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("status_changed_at"),
        sa.Column("kryptos_user_id", sa.String(200)),
        sa.Column("customer_ref", sa.String(320)),
        sa.Column("has_token", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("masked_token", sa.String(40)),
        sa.Column("user_kind", sa.String(10)),
        sa.Column("transaction_limit", sa.BigInteger()),
        sa.Column("limiter_enabled", sa.Boolean()),
        sa.Column("limit_source", sa.String(10)),
        _ts("limit_updated_at"),
        _ts("userinfo_refreshed_at"),
        _ts("integrations_refreshed_at"),
        _ts("grants_seen_at"),
        _ts("refreshed_at", nullable=False),
        sa.Column("unreadable", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("error_message", sa.Text()),
        sa.Column("sync_state", sa.String(12)),
        sa.Column("n_integrations", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("n_failing", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("n_syncing", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("n_never_synced", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("total_transactions", sa.BigInteger()),
        _ts("last_sync"),
        sa.Column("fp", sa.BigInteger()),
        sa.Column("integrations_fp", sa.BigInteger()),
        sa.Column("search_text", sa.Text()),
        sa.CheckConstraint("status IN ('active', 'revoked')", name="ck_rm_grants_status"),
        sa.CheckConstraint("user_kind IS NULL OR user_kind IN ('guest', 'linked')",
                           name="ck_rm_grants_user_kind"),
        sa.CheckConstraint("limit_source IS NULL OR limit_source IN ('userinfo', 'console')",
                           name="ck_rm_grants_limit_source"),
    )
    # Sorts end in grant_id (the tie-breaker), so a page is an index walk and a deep page's
    # ids come from the index alone (page() fetches the rows of one page afterwards).
    op.create_index("ix_rm_grants_created", "rm_grants", ["created_at", "grant_id"])
    op.create_index("ix_rm_grants_status_created", "rm_grants",
                    ["status", "created_at", "grant_id"])
    op.create_index("ix_rm_grants_customer_ref", "rm_grants", ["customer_ref", "grant_id"])
    op.create_index("ix_rm_grants_user", "rm_grants", ["kryptos_user_id", "grant_id"])
    op.create_index("ix_rm_grants_limit", "rm_grants",
                    ["limiter_enabled", "transaction_limit"])
    # Narrow covering indexes: counts() and the work queues scan these, not the wide rows;
    # a substring search scans search_text alone.
    op.create_index("ix_rm_grants_counts", "rm_grants",
                    ["status", "user_kind", "has_token", "unreadable", "n_failing",
                     "n_syncing", "n_never_synced", "n_integrations",
                     "integrations_refreshed_at"])
    op.create_index("ix_rm_grants_search", "rm_grants", ["search_text", "grant_id"])
    # The worker's queues: never read first, failing/syncing ones again sooner, then oldest.
    op.create_index("ix_rm_grants_sync_due", "rm_grants",
                    ["sync_state", "integrations_refreshed_at"])
    op.create_index("ix_rm_grants_due", "rm_grants",
                    ["status", "has_token", "integrations_refreshed_at"])
    op.create_index("ix_rm_grants_userinfo_due", "rm_grants",
                    ["status", "has_token", "userinfo_refreshed_at"])
    op.create_index("ix_rm_grants_refreshed", "rm_grants", ["refreshed_at"])

    op.create_table(
        "rm_integrations",
        sa.Column("grant_id", sa.String(200), primary_key=True),
        sa.Column("wallet_id", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(300)),
        sa.Column("provider", sa.String(200)),
        sa.Column("type", sa.String(50)),
        sa.Column("status", sa.String(40), nullable=False),
        _ts("last_sync"),
        sa.Column("transactions", sa.BigInteger()),
        sa.Column("message", sa.Text()),
        sa.Column("limit_exceeded", sa.Boolean(), nullable=False, server_default=sa.false()),
        _ts("refreshed_at", nullable=False),
    )
    op.create_index("ix_rm_integrations_status", "rm_integrations", ["status"])

    op.create_table(
        "rm_sync_state",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("value", sa.Text()),
        _ts("updated_at", nullable=False),
    )
    op.create_table(
        "rm_version",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO rm_version (id, version) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("rm_version")
    op.drop_table("rm_sync_state")
    op.drop_table("rm_integrations")
    op.drop_table("rm_grants")
