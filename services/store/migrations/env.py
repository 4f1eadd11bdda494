"""Alembic environment. Run through `services.store.db.Database.migrate()`, which passes the
connection (already inside a serialised transaction) in `config.attributes["connection"]`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

config = context.config
connection: Connection | None = config.attributes.get("connection")


def _run(conn: Connection) -> None:
    context.configure(connection=conn, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:  # plain `alembic -x` use with sqlalchemy.url set: open our own engine
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as own:
        _run(own)
