"""Audit outcomes `skipped` and `reconciled`; public tokens already exchanged.

`skipped`: a bulk run left a grant alone (a Linked user). `reconciled`: the reconciler read
upstream what became of a `requested` change whose outcome was never written. The table
`token_exchanges` remembers which grant each public token created (by the token's SHA-256),
so a second exchange of the same token answers that grant.

Revision ID: 0006_reconciled
Revises: 0005_auth
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_reconciled"
down_revision = "0005_auth"
branch_labels = None
depends_on = None

_OLD = "outcome IN ('requested', 'succeeded', 'failed', 'denied')"
_NEW = "outcome IN ('requested', 'succeeded', 'failed', 'denied', 'skipped', 'reconciled')"


def _sqlite_swap_check(old: str, new: str) -> None:
    """SQLite cannot alter a CHECK: rebuild audit_log from its own stored DDL with the check
    replaced, keeping every column, index and trigger other migrations may have added."""
    bind = op.get_bind()

    def ddl(kind: str) -> list[str]:
        rows = bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = ? AND tbl_name = 'audit_log' "
            "AND sql IS NOT NULL", (kind,)).fetchall()
        return [r[0] for r in rows]

    table_sql = ddl("table")[0]
    if old not in table_sql:
        raise RuntimeError("audit_log's outcome check is not the expected one")
    indexes, triggers = ddl("index"), ddl("trigger")
    for name in [r[0] for r in bind.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' "
            "AND tbl_name = 'audit_log'").fetchall()]:
        op.execute(f'DROP TRIGGER "{name}"')
    new_sql = table_sql.replace(old, new).replace("audit_log", "audit_log_new", 1)
    op.execute(new_sql)
    op.execute("INSERT INTO audit_log_new SELECT * FROM audit_log")
    op.execute("DROP TABLE audit_log")
    op.execute("ALTER TABLE audit_log_new RENAME TO audit_log")
    for statement in indexes + triggers:
        op.execute(statement)


def _swap_check(old: str, new: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_swap_check(old, new)
        return
    op.drop_constraint("ck_audit_log_outcome", "audit_log", type_="check")
    op.create_check_constraint("ck_audit_log_outcome", "audit_log", new)


def upgrade() -> None:
    _swap_check(_OLD, _NEW)
    op.create_table(
        "token_exchanges",
        sa.Column("public_token_sha256", sa.String(64), primary_key=True),
        sa.Column("grant_id", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("token_exchanges")
    _swap_check(_NEW, _OLD)
