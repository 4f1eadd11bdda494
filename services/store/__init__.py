"""The console's own store: audit log and token vault over SQLAlchemy 2 (SQLite or
PostgreSQL), schema managed by the Alembic migrations in `migrations/`."""

from services.store.actions import AuditAction
from services.store.audit import (
    OUTCOMES,
    AuditEvent,
    AuditFilter,
    AuditHead,
    AuditLog,
    AuditPage,
    ChainReport,
    NewAuditEvent,
    parse_csv_export,
    parse_jsonl_export,
)
from services.store.db import Database, open_database
from services.store.errors import StoreError, VaultEntryNotFound, VaultKeyError
from services.store.trail import AuditTrail, AuditUnavailable
from services.store.vault import (
    ImportReport,
    NewVaultEntry,
    PutReport,
    RejectedRow,
    RotationReport,
    TokenVault,
    VaultEntry,
    load_vault_key,
    parse_vault_keys,
)

__all__ = [
    "OUTCOMES",
    "AuditAction",
    "AuditEvent",
    "AuditFilter",
    "AuditHead",
    "AuditLog",
    "AuditPage",
    "AuditTrail",
    "AuditUnavailable",
    "ChainReport",
    "Database",
    "ImportReport",
    "NewAuditEvent",
    "NewVaultEntry",
    "PutReport",
    "RejectedRow",
    "RotationReport",
    "StoreError",
    "TokenVault",
    "VaultEntry",
    "VaultEntryNotFound",
    "VaultKeyError",
    "load_vault_key",
    "open_database",
    "parse_csv_export",
    "parse_jsonl_export",
    "parse_vault_keys",
]
