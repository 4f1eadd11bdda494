"""One pending approval request per grant and kind of change (services/store/approvals.py).

A row per grant of a pending request; the unique (grant_id, kind) index refuses a second
pending request for the same grant and kind, on every replica at once. The rows go when the
request leaves `pending`.

Revision ID: 0009_approval_grants
Revises: 0008_rm_scale
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_approval_grants"
down_revision = "0008_rm_scale"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approval_grants",
        sa.Column("request_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("approval_requests.id", ondelete="CASCADE"), nullable=False),
        sa.Column("grant_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("grant_id", "kind", name="pk_approval_grants"),
    )
    op.create_index("ix_approval_grants_request", "approval_grants", ["request_id"])


def downgrade() -> None:
    op.drop_table("approval_grants")
