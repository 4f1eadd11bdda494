"""Four-eyes approval requests (services/store/approvals.py).

Revision ID: 0007_approvals
Revises: 0005_auth (the head on main when written; the integrator re-chains)
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_approvals"
down_revision = "0006_reconciled"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approval_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("requester_username", sa.String(200), nullable=False),
        sa.Column("requester_roles", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ticket", sa.String(200)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("decided_by", sa.String(200)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("decision_reason", sa.Text()),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("result", sa.Text()),
        sa.CheckConstraint(
            "state IN ('pending', 'approved', 'executed', 'rejected', 'expired', 'cancelled')",
            name="ck_approval_requests_state"),
    )
    op.create_index("ix_approval_requests_state", "approval_requests", ["state", "expires_at"])
    op.create_index("ix_approval_requests_requester", "approval_requests",
                    ["requester_username", "id"])


def downgrade() -> None:
    op.drop_table("approval_requests")
