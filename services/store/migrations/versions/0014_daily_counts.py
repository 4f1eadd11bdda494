"""Small daily counts the charts read instead of scanning a million rows:
`daily_grant_counts` (grants per UTC day, status, kind and tier, written by the sync worker
after each full sync), `daily_audit_counts` (audit events per UTC day, action, outcome and
actor, rolled up by the sync worker from the log) and `daily_audit_rollup` (the newest audit
`seq` already counted; the charts count newer events live).

Days are whole days since 1970-01-01 UTC (`ts_ms // 86400000`), the same on SQLite and
PostgreSQL.

Revision ID: 0014_daily_counts
Revises: 0013_rm_million
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_daily_counts"
down_revision = "0013_rm_million"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daily_grant_counts",
        sa.Column("day", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(10), primary_key=True),
        sa.Column("user_kind", sa.String(10), primary_key=True),  # guest, linked, '' unknown
        sa.Column("tier", sa.String(100), primary_key=True),  # a tier, custom, off, ''
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "daily_audit_counts",
        sa.Column("day", sa.Integer, primary_key=True),
        sa.Column("action", sa.String(100), primary_key=True),
        sa.Column("outcome", sa.String(16), primary_key=True),
        sa.Column("actor_username", sa.String(200), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "daily_audit_rollup",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO daily_audit_rollup (id, seq) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("daily_audit_rollup")
    op.drop_table("daily_audit_counts")
    op.drop_table("daily_grant_counts")
