"""The customer backend: revoked marker on stored tokens, received webhooks, public-token
exchanges (each exchanged once) and the per-customer rate-limit window.

The vault's lookup by customer (`customer_ref`) uses `ix_vault_tokens_customer_ref` (0001).

Revision ID: 0003_backend
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_backend"
down_revision = "0002_audit_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vault_tokens") as batch:
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True)))

    op.create_table(
        "webhook_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("webhook_id", sa.String(200), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("grant_id", sa.String(200)),
        sa.Column("kryptos_user_id", sa.String(200)),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("webhook_id", name="uq_webhook_events_webhook_id"),
    )
    op.create_index("ix_webhook_events_grant", "webhook_events", ["grant_id", "id"])
    op.create_index("ix_webhook_events_user", "webhook_events", ["kryptos_user_id"])
    op.create_index("ix_webhook_events_type", "webhook_events", ["type", "id"])

    op.create_table(
        "backend_exchanges",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("customer_ref", sa.String(320), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("grant_id", sa.String(200)),
        sa.Column("error_status", sa.Integer()),
        sa.Column("error_code", sa.String(100)),
        sa.Column("error_message", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('pending', 'done', 'failed')",
                           name="ck_backend_exchanges_state"),
    )
    op.create_index("ix_backend_exchanges_created", "backend_exchanges", ["created_at"])

    op.create_table(
        "backend_rate_hits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("bucket", sa.String(400), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_backend_rate_hits_bucket", "backend_rate_hits", ["bucket", "at_ms"])


def downgrade() -> None:
    op.drop_table("backend_rate_hits")
    op.drop_table("backend_exchanges")
    op.drop_table("webhook_events")
    with op.batch_alter_table("vault_tokens") as batch:
        batch.drop_column("revoked_at")
