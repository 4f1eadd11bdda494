"""`bulk_drafts`: each console user's Guest limits selection and dry run (one row per user,
a bounded JSON body and a revision number a page run compares before reading the body), so
that they outlive a reload and are the same on every replica.

`ix_rm_grants_pick` (status, user_kind, grant_id): the Guest limits picker's rows and "select
all that match" (active grants of one kind, by grant id, the first N) as one range of an
index read in order, stopped at N, instead of sorting every active Guest.

Revision ID: 0017_bulk_drafts
Revises: 0016_ws_index
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_bulk_drafts"
down_revision = "0016_ws_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_drafts",
        sa.Column("username", sa.String(200), primary_key=True),
        sa.Column("rev", sa.BigInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_rm_grants_pick", "rm_grants", ["status", "user_kind", "grant_id"])


def downgrade() -> None:
    op.drop_index("ix_rm_grants_pick", table_name="rm_grants")
    op.drop_table("bulk_drafts")
