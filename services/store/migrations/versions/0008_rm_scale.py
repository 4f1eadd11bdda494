"""Read model at scale: lower-case expression indexes for prefix search; the webhook id
that last wrote an integration row.

Revision ID: 0008_rm_scale
Revises: 0007_approvals
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_rm_scale"
down_revision = "0007_approvals"
branch_labels = None
depends_on = None

_PREFIX = (("ix_rm_grants_lower_id", "grant_id"), ("ix_rm_grants_lower_ref", "customer_ref"),
           ("ix_rm_grants_lower_user", "kryptos_user_id"))


def upgrade() -> None:
    # The webhook that last wrote an integration row (a redelivery changes nothing).
    op.add_column("rm_integrations", sa.Column("webhook_id", sa.String(200)))
    pg = op.get_bind().dialect.name == "postgresql"
    for name, col in _PREFIX:
        # PostgreSQL: text_pattern_ops so that LIKE 'abc%' uses it whatever the collation.
        op.execute(f"CREATE INDEX {name} ON rm_grants "
                   f"(lower({col}){' text_pattern_ops' if pg else ''})")


def downgrade() -> None:
    for name, _ in _PREFIX:
        op.drop_index(name, table_name="rm_grants")
    with op.batch_alter_table("rm_integrations") as batch:
        batch.drop_column("webhook_id")
