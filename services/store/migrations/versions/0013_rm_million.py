"""Read model at a million grants: substring search on a trigram index, one small index per
work queue, and the mark a webhook leaves on a grant so the worker reads it soon.

- Substring search: PostgreSQL `pg_trgm` (a GIN index on `search_text`, so `LIKE
  '%needle%'` is an index lookup); SQLite an FTS5 `trigram` table over `search_text`
  (external content: `rm_grants_fts`, rowids are `rm_grants`' rowids, kept by triggers).
- Work queues: a partial index per queue on (created_at, grant_id, status, its column)
  holding only the grants in that queue, so a queue's page and its count read that
  queue's rows alone.
- `changed_at`: set by a webhook about the grant, cleared when the worker next reads its
  integrations; the worker reads marked grants right after the failing ones (a partial
  index holds only marked grants).

Revision ID: 0013_rm_million
Revises: 0012_one_exchange
Create Date: 2026-12-07
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0013_rm_million"
down_revision = "0012_one_exchange"
branch_labels = None
depends_on = None

#: The work queues: (the column in the index, the condition as each dialect prints it).
#: services/store/readmodel/queries.py writes its filters the same way (literal values),
#: so the planners match them to these partial indexes.
_QUEUES = {
    "failing": ("n_failing", "n_failing > 0", "n_failing > 0"),
    "syncing": ("n_syncing", "n_syncing > 0", "n_syncing > 0"),
    "never_synced": ("n_never_synced", "n_never_synced > 0", "n_never_synced > 0"),
    "not_readable": ("unreadable", "unreadable IS 1", "unreadable IS true"),
    "no_token": ("has_token", "has_token IS 0", "has_token IS false"),
}

_FTS_TRIGGERS = (
    """CREATE TRIGGER rm_grants_fts_ai AFTER INSERT ON rm_grants BEGIN
         INSERT INTO rm_grants_fts(rowid, search_text) VALUES (new.rowid, new.search_text);
       END""",
    """CREATE TRIGGER rm_grants_fts_ad AFTER DELETE ON rm_grants BEGIN
         INSERT INTO rm_grants_fts(rm_grants_fts, rowid, search_text)
           VALUES ('delete', old.rowid, old.search_text);
       END""",
    """CREATE TRIGGER rm_grants_fts_au AFTER UPDATE OF search_text ON rm_grants
       WHEN old.search_text IS NOT new.search_text BEGIN
         INSERT INTO rm_grants_fts(rm_grants_fts, rowid, search_text)
           VALUES ('delete', old.rowid, old.search_text);
         INSERT INTO rm_grants_fts(rowid, search_text) VALUES (new.rowid, new.search_text);
       END""",
)


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    op.add_column("rm_grants", sa.Column("changed_at", sa.DateTime(timezone=True)))
    op.execute("CREATE INDEX ix_rm_grants_changed ON rm_grants (changed_at) "
               "WHERE changed_at IS NOT NULL")
    for name, (col, lite, post) in _QUEUES.items():
        # Covering for the queue's page walk and its count (status is tested per row).
        op.execute(f"CREATE INDEX ix_rm_grants_q_{name} ON rm_grants "
                   f"(created_at, grant_id, status, {col}) WHERE {post if pg else lite}")
    if pg:
        _trigram_index_pg()
    else:
        op.execute("CREATE VIRTUAL TABLE rm_grants_fts USING fts5(search_text, "
                   "content='rm_grants', content_rowid='rowid', tokenize='trigram')")
        for trigger in _FTS_TRIGGERS:
            op.execute(trigger)
        op.execute("INSERT INTO rm_grants_fts(rm_grants_fts) VALUES ('rebuild')")


def _trigram_index_pg() -> None:
    """pg_trgm's GIN index on `search_text`. The extension goes where it already is, else
    in `public` (one per database, whichever schema a migration runs in); its operator
    class is named with that schema. Without pg_trgm on the server (PostgreSQL's contrib
    package) there is no index and a substring search reads every row: said in the log."""
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM pg_available_extensions "
                            "WHERE name = 'pg_trgm'")).first() is None:
        logging.getLogger("alembic").warning(
            "pg_trgm is not available: substring search will scan rm_grants")
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    schema = bind.execute(sa.text(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
        "ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'")).scalar_one()
    op.execute(f'CREATE INDEX ix_rm_grants_trgm ON rm_grants '
               f'USING gin (search_text "{schema}".gin_trgm_ops)')


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.execute("DROP INDEX IF EXISTS ix_rm_grants_trgm")
    else:
        for name in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER rm_grants_fts_{name}")
        op.execute("DROP TABLE rm_grants_fts")
    for name in _QUEUES:
        op.execute(f"DROP INDEX ix_rm_grants_q_{name}")
    op.drop_index("ix_rm_grants_changed", table_name="rm_grants")
    op.execute("ALTER TABLE rm_grants DROP COLUMN changed_at")
