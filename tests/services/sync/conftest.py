"""The sync worker tests reuse the store's database fixtures (SQLite and PostgreSQL)."""

from tests.services.store.conftest import db, db_url, pg_base_url, vault_key  # noqa: F401
