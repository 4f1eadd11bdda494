"""Audit log: an index for the commonest narrow filter, one actor's one action in a period.

With only the one-column (col, seq) indexes, "actor + action + a day" at 1,000,000 rows
reads every row of the actor in that day and checks its action; (actor_username, action,
seq, ts_ms) reads only the matches, in seq order, and counts them from the index alone
(the time range is a seq range plus a ts_ms check; bench/audit_bench.py).

Revision ID: 0002_audit_index
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0002_audit_index"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_log_actor_action", "audit_log",
                    ["actor_username", "action", "seq", "ts_ms"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_actor_action", table_name="audit_log")
