"""`python -m services.store migrate [--database-url URL]`
`python -m services.store import-tokens FILE.csv [--database-url URL]`
`python -m services.store rotate-key [--database-url URL]`: re-encrypt the stored tokens
with the first key of KRYPTOS_VAULT_KEY ("NEW,OLD"); exit 1 if some could not be decrypted.

Defaults come from `load_settings()` (DATABASE_URL, KRYPTOS_VAULT_KEY, CONSOLE_DATA_DIR).
Never prints a token or a key."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from services.settings import ConfigError, load_settings
from services.store.db import open_database
from services.store.errors import StoreError
from services.store.vault import RotationReport, TokenVault, load_vault_key


def _print_rotation(report: RotationReport, key_count: int) -> int:
    print(f"re-encrypted {report.re_encrypted} token(s) with the first key of "
          f"KRYPTOS_VAULT_KEY; {report.already_primary} already used it")
    if report.unreadable:
        print(f"{len(report.unreadable)} token(s) could not be decrypted with any listed key "
              "and were left unchanged:")
        for grant_id in report.unreadable:
            print(f"  grant {grant_id}")
    if key_count == 1:
        print("KRYPTOS_VAULT_KEY holds one key, so there was nothing to rotate from. To "
              "rotate: set it to NEW,OLD on every replica, then run this command.")
    else:
        print("Remove the old key from KRYPTOS_VAULT_KEY only after every replica runs with "
              "the new list (new key first) and this command has run since then: run it "
              "once more first, it must report 0 re-encrypted.")
    return 1 if report.unreadable else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.store",
                                     description="The console's own database.")
    sub = parser.add_subparsers(dest="command", required=True)
    migrate = sub.add_parser("migrate", help="create or upgrade the schema (Alembic, to head)")
    migrate.add_argument("--database-url", help="default: DATABASE_URL or data/console.db")
    imp = sub.add_parser("import-tokens", help="import grant_id,access_token,customer_ref CSV")
    imp.add_argument("file", help="CSV file with a header row")
    imp.add_argument("--database-url", help="default: DATABASE_URL or data/console.db")
    rot = sub.add_parser("rotate-key",
                         help="re-encrypt stored tokens with the first key of KRYPTOS_VAULT_KEY")
    rot.add_argument("--database-url", help="default: DATABASE_URL or data/console.db")
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
            if args.command == "rotate-key":
                return _print_rotation(vault.rotate(), vault.key_count)
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
