"""Console sessions keep the SHA-256 of their id, not the id: `console_sessions.id` becomes
`id_hash`.

The rows there are deleted, not hashed: their ids were stored readable (and the database
file was readable by every local user), so any of them may have been copied; hashed, a
copied id would still open its session. Everyone logs in again once; the audit log keeps
the logins and logouts.

Revision ID: 0010_session_hash
Revises: 0008_rm_scale
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0010_session_hash"
down_revision = "0009_approval_grants"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM console_sessions")
    with op.batch_alter_table("console_sessions") as batch:
        batch.alter_column("id", new_column_name="id_hash")


def downgrade() -> None:
    # A hash cannot be turned back into an id: the sessions end (everyone logs in again).
    op.execute("DELETE FROM console_sessions")
    with op.batch_alter_table("console_sessions") as batch:
        batch.alter_column("id_hash", new_column_name="id")
