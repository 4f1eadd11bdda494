"""One "exchange a public token once" table for the console and the backend:
`token_exchanges` (the console's) goes, `backend_exchanges` stays (services/store/exchanges.py).

Existing rows of `token_exchanges` are copied into `backend_exchanges` as `done` (same token
digest and grant; the customer is the vault's for that grant, else empty), unless the backend
already holds that token. Like every row there, they are deleted once a day old.

Revision ID: 0012_one_exchange
Revises: 0010_session_hash
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_one_exchange"
down_revision = "0010_session_hash"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO backend_exchanges (token_hash, customer_ref, state, grant_id, created_at, "
        "updated_at) "
        "SELECT t.public_token_sha256, COALESCE((SELECT v.customer_ref FROM vault_tokens v "
        "WHERE v.grant_id = t.grant_id), ''), 'done', t.grant_id, t.created_at, t.created_at "
        "FROM token_exchanges t WHERE NOT EXISTS (SELECT 1 FROM backend_exchanges b "
        "WHERE b.token_hash = t.public_token_sha256)")
    op.drop_table("token_exchanges")


def downgrade() -> None:
    op.create_table(
        "token_exchanges",
        sa.Column("public_token_sha256", sa.String(64), primary_key=True),
        sa.Column("grant_id", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute(
        "INSERT INTO token_exchanges (public_token_sha256, grant_id, created_at) "
        "SELECT token_hash, grant_id, created_at FROM backend_exchanges "
        "WHERE state = 'done' AND grant_id IS NOT NULL")
