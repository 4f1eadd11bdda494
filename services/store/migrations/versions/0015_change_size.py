"""Each limit change's size and tier where an index can order and count them:

- `limit_changes`: one row per succeeded per-grant limit change (`guest.limit.update`,
  `guest.tier.apply`), keyed by the event's `seq`: its UTC day, the tier's name ('' for a
  custom limit; an outcome event's tier is its requested event's, same correlation id),
  the capped limits before and after and `size` = |after - before| (NULL unless both
  are capped). The audit writer adds the row in the event's own transaction
  (services/store/audit/changes.py); the audit log's rows and hash chain are unchanged.
  A partial index on (day, size, seq) holds the sized rows: the largest changes of a
  period are a short walk per day.
- `daily_limit_counts`: limit changes per UTC day and tier, rolled up by the sync worker
  with the audit counts (same watermark, `daily_audit_rollup.seq`).

The events already stored are copied in SQL (the action index bounds the read to the
limit changes), and the ones already rolled up are counted.

Revision ID: 0015_change_size
Revises: 0014_daily_counts
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_change_size"
down_revision = "0014_daily_counts"
branch_labels = None
depends_on = None

_ACTIONS = "('guest.limit.update', 'guest.tier.apply')"


def _copy_sql(pg: bool) -> str:
    if pg:
        def num(col: str) -> str:
            # Only whole numbers are limits (true/false/text are not).
            v = f"(CAST({col} AS json) ->> 'transaction_limit')"
            return f"CASE WHEN {v} ~ '^-?[0-9]{{1,18}}$' THEN CAST({v} AS BIGINT) END"
        def name(col: str) -> str:
            return f"SUBSTR(CAST({col} AS json) ->> 'tier', 1, 100)"
    else:
        def num(col: str) -> str:
            # Only whole numbers are limits (true/false/text are not).
            return (f"CASE WHEN json_type({col}, '$.transaction_limit') = 'integer' "
                    f"THEN json_extract({col}, '$.transaction_limit') END")
        def name(col: str) -> str:
            return f"SUBSTR(json_extract({col}, '$.tier'), 1, 100)"
    before, after = num("a.before_value"), num("a.after_value")
    # An outcome event has no params: the tier is named by its requested event.
    tier = f"""COALESCE({name("a.params")}, (
        SELECT {name("r.params")} FROM audit_log r
        WHERE r.correlation_id = a.correlation_id AND r.action = 'guest.tier.apply'
          AND r.outcome = 'requested' AND r.params IS NOT NULL
        ORDER BY r.seq DESC LIMIT 1), '')"""
    return f"""
        INSERT INTO limit_changes (seq, day, tier, size, before_limit, after_limit)
        SELECT seq, day, tier, ABS(after_limit - before_limit), before_limit, after_limit
        FROM (SELECT a.seq AS seq, a.ts_ms / 86400000 AS day,
                     CASE WHEN a.action = 'guest.tier.apply' THEN {tier} ELSE '' END AS tier,
                     {before} AS before_limit, {after} AS after_limit
              FROM audit_log a
              WHERE a.action IN {_ACTIONS} AND a.outcome = 'succeeded') AS c
    """


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "limit_changes",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("tier", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger),
        sa.Column("before_limit", sa.BigInteger),
        sa.Column("after_limit", sa.BigInteger),
    )
    op.create_index("ix_limit_changes_size", "limit_changes", ["day", "size", "seq"],
                    sqlite_where=sa.text("size IS NOT NULL"),
                    postgresql_where=sa.text("size IS NOT NULL"))
    op.create_table(
        "daily_limit_counts",
        sa.Column("day", sa.Integer, primary_key=True),
        sa.Column("tier", sa.String(100), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.execute(_copy_sql(pg))
    op.execute("""
        INSERT INTO daily_limit_counts (day, tier, n)
        SELECT day, tier, COUNT(*) FROM limit_changes
        WHERE seq <= (SELECT seq FROM daily_audit_rollup WHERE id = 1)
        GROUP BY day, tier
    """)


def downgrade() -> None:
    op.drop_table("daily_limit_counts")
    op.drop_index("ix_limit_changes_size", table_name="limit_changes")
    op.drop_table("limit_changes")
