"""`python -m services.store migrate [--database-url URL]`
`python -m services.store import-tokens FILE.csv [--database-url URL]`

Defaults come from `load_settings()` (DATABASE_URL, KRYPTOS_VAULT_KEY, CONSOLE_DATA_DIR).
Never prints a token or a key."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from services.settings import ConfigError, load_settings
from services.store.db import open_database
from services.store.errors import StoreError
from services.store.vault import TokenVault, load_vault_key


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.store",
                                     description="The console's own database.")
    sub = parser.add_subparsers(dest="command", required=True)
    migrate = sub.add_parser("migrate", help="create or upgrade the schema (Alembic, to head)")
    migrate.add_argument("--database-url", help="default: DATABASE_URL or data/console.db")
    imp = sub.add_parser("import-tokens", help="import grant_id,access_token,customer_ref CSV")
    imp.add_argument("file", help="CSV file with a header row")
    imp.add_argument("--database-url", help="default: DATABASE_URL or data/console.db")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
        url = args.database_url or settings.effective_database_url
        db = open_database(url)
        try:
            if args.command == "migrate":
                print(f"Schema up to date: {db!r}")
                return 0
            vault = TokenVault(db, load_vault_key(settings))
            report = vault.import_csv(args.file)
        finally:
            db.dispose()
    except (ConfigError, StoreError) as exc:
        print(f"error: {exc.user_message}", file=sys.stderr)
        return 2
    print(f"added {report.added}, updated {report.updated}, rejected {len(report.rejected)}")
    for row in report.rejected:
        where = f" (grant {row.grant_id})" if row.grant_id else ""
        print(f"  line {row.line}{where}: {row.reason}")
    return 1 if report.rejected else 0


if __name__ == "__main__":
    sys.exit(main())
