"""Audit log (append-only, hash-chained) and token vault.

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = (
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END""",
)

_PG_TRIGGERS = (
    """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
           USING ERRCODE = 'insufficient_privilege';
       END $$""",
    """CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
       FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
       FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=False),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor_username", sa.String(200), nullable=False),
        sa.Column("actor_roles", sa.Text(), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("target_type", sa.String(50)),
        sa.Column("target_id", sa.String(200)),
        sa.Column("params", sa.Text()),
        sa.Column("before_value", sa.Text()),
        sa.Column("after_value", sa.Text()),
        sa.Column("reason", sa.Text()),
        sa.Column("ticket", sa.String(200)),
        sa.Column("error_code", sa.String(100)),
        sa.Column("error_message", sa.Text()),
        sa.Column("request_id", sa.String(200)),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('requested', 'succeeded', 'failed', 'denied')",
            name="ck_audit_log_outcome",
        ),
    )
    # Every filter index ends in seq, so a filtered page is an index walk in seq order.
    op.create_index("ix_audit_log_ts", "audit_log", ["ts_ms", "seq"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor_username", "seq"])
    op.create_index("ix_audit_log_action", "audit_log", ["action", "seq"])
    op.create_index("ix_audit_log_target", "audit_log", ["target_id", "seq"])
    op.create_index("ix_audit_log_outcome", "audit_log", ["outcome", "seq"])
    op.create_index("ix_audit_log_correlation", "audit_log", ["correlation_id"])

    op.create_table(
        "vault_tokens",
        sa.Column("grant_id", sa.String(200), primary_key=True),
        sa.Column("token_ciphertext", sa.Text(), nullable=False),
        sa.Column("masked_token", sa.String(40), nullable=False),
        sa.Column("workspace_id", sa.String(200)),
        sa.Column("kryptos_user_id", sa.String(200)),
        sa.Column("customer_ref", sa.String(320)),
        sa.Column("user_kind", sa.String(10)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("user_kind IS NULL OR user_kind IN ('guest', 'linked')",
                           name="ck_vault_tokens_user_kind"),
    )
    op.create_index("ix_vault_tokens_customer_ref", "vault_tokens", ["customer_ref"])
    op.create_index("ix_vault_tokens_user", "vault_tokens", ["kryptos_user_id"])
    op.create_table(
        "vault_meta",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )

    statements = _SQLITE_TRIGGERS if op.get_bind().dialect.name == "sqlite" else _PG_TRIGGERS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.drop_table("vault_meta")
    op.drop_table("vault_tokens")
    op.drop_table("audit_log")
