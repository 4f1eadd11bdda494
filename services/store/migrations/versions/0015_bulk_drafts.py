"""`bulk_drafts`: each console user's Guest limits selection and dry run (one row per user,
a bounded JSON body), so that they outlive a reload and are the same on every replica.

Revision ID: 0015_bulk_drafts
Revises: 0014_daily_counts
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_bulk_drafts"
down_revision = "0014_daily_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_drafts",
        sa.Column("username", sa.String(200), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("bulk_drafts")
