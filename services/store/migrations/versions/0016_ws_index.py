"""An index with the workspace first on the read model's grants, so that the one search box
finds a grant by its exact workspace id (`ReadModel.exact_matches`) by a lookup rather than
by reading every row.

Revision ID: 0016_ws_index
Revises: 0015_change_size
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0016_ws_index"
down_revision = "0015_change_size"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # With the grant id second: the lookup's `ORDER BY grant_id LIMIT n` reads the index in
    # order and stops after n rows.
    op.create_index("ix_rm_grants_workspace", "rm_grants", ["workspace_id", "grant_id"])


def downgrade() -> None:
    op.drop_index("ix_rm_grants_workspace", table_name="rm_grants")
