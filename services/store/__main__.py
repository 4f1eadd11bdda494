"""`python -m services.store migrate [--database-url URL]`
`python -m services.store import-tokens FILE.csv [--database-url URL]`
`python -m services.store rotate-key [--database-url URL]`: re-encrypt the stored tokens
with the first key of KRYPTOS_VAULT_KEY ("NEW,OLD"); exit 1 if some could not be decrypted.
`python -m services.store verify-audit [--expect SEQ:HASH] [--database-url URL]`: verify the
audit log's hash chain, its anchor file (CONSOLE_AUDIT_ANCHOR_FILE) and optionally a head
noted earlier; exit 0 when intact, 1 when not (for cron).

Defaults come from `load_settings()` (DATABASE_URL, KRYPTOS_VAULT_KEY, CONSOLE_DATA_DIR).
Never prints a token or a key.

`import-tokens` and `rotate-key` change the vault, so they are audited in the same
database's audit log (services/store/cli_audit.py): `requested`, then `succeeded` (with
counts: added/updated/rejected, re-encrypted/already primary/unreadable; rejected or
unreadable rows still make it `succeeded`, as the Connect page's import does) or `failed`, as
the operator `cli:<OS user>`, actions `token.import` and `vault.rotate_key`. When the audit
log cannot be written they change nothing and exit 2. `migrate` and `verify-audit` are not
audited: the first is maintenance the console also does at every start, the second only
reads (a cron job may run it often, and with a read-only database login) and must not add
rows to the chain it checks."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.settings import ConfigError, Settings, load_settings
from services.store.actions import AuditAction
from services.store.audit import AuditLog, ChainReport, audit_head
from services.store.cli_audit import AuditUnavailable, CliAudit
from services.store.db import open_database
from services.store.errors import StoreError
from services.store.totp import TotpStore
from services.store.vault import ImportReport, RotationReport, TokenVault, load_vault_key


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


def _parse_expect(text: str) -> tuple[int, str]:
    seq, sep, digest = text.partition(":")
    if not sep or not seq.strip().isdigit():
        raise StoreError("--expect must look like SEQ:HASH, e.g. 125:3fa9c2... (64 hex).")
    head = audit_head((int(seq.strip()), digest))
    return head.seq, head.hash


def _print_verification(report: ChainReport) -> int:
    if report.ok:
        print(f"audit log intact: {report.checked} row(s) checked")
    else:
        where = f" at row {report.first_bad_seq}" if report.first_bad_seq else ""
        print(f"AUDIT LOG BROKEN{where}: {report.reason}")
    if report.head_seq:
        print(f"head: {report.head_seq}:{report.head_hash}")
    print("anchor: " + (f"checked (row {report.anchor_seq})" if report.anchor_checked
                        else "not checked"))
    return 0 if report.ok else 1


def _audited_change(args: argparse.Namespace, settings: Settings) -> int:
    """import-tokens / rotate-key, recorded in the database's audit log. The vault key is
    loaded inside the audited change, so that an attempt with a wrong key is recorded too."""
    if args.command == "import-tokens" and not Path(args.file).is_file():
        # Checked before anything is recorded: a mistyped argument (say, a token pasted
        # where the file name goes) must not end up in the append-only log.
        raise StoreError(f"Cannot read {args.file}: not a file; nothing was imported.")
    with CliAudit.open(settings, args.database_url) as audit:
        if args.command == "rotate-key":

            def rotate() -> tuple[tuple[RotationReport, int], None, dict[str, Any]]:
                key = load_vault_key(settings)
                vault = TokenVault(audit.db, key)
                report = vault.rotate()
                # The console users' TOTP secrets are encrypted with the same keys.
                totp_done, totp_unreadable = TotpStore(audit.db, key).rotate()
                if totp_done or totp_unreadable:
                    print(f"re-encrypted {totp_done} TOTP secret(s)"
                          + (f"; {len(totp_unreadable)} could not be decrypted (users: "
                             f"{', '.join(totp_unreadable)}: enrol them again)"
                             if totp_unreadable else ""))
                return (report, vault.key_count), None, {
                    "re_encrypted": report.re_encrypted,
                    "already_primary": report.already_primary,
                    "unreadable": len(report.unreadable), "keys": vault.key_count,
                    "totp_re_encrypted": totp_done, "totp_unreadable": len(totp_unreadable),
                }

            report, key_count = audit.run(AuditAction.VAULT_ROTATE_KEY, rotate, target_type="vault")
            return _print_rotation(report, key_count)

        def import_tokens() -> tuple[ImportReport, None, dict[str, Any]]:
            vault = TokenVault(audit.db, load_vault_key(settings))
            report = vault.import_csv(args.file)
            return report, None, {"added": report.added, "updated": report.updated,
                                  "rejected": len(report.rejected)}

        imported = audit.run(AuditAction.TOKEN_IMPORT, import_tokens, target_type="vault",
                             params={"file": Path(args.file).name})
    return _print_import(imported)


def _print_import(report: ImportReport) -> int:
    print(f"added {report.added}, updated {report.updated}, rejected {len(report.rejected)}")
    for row in report.rejected:
        where = f" (grant {row.grant_id})" if row.grant_id else ""
        print(f"  line {row.line}{where}: {row.reason}")
    return 1 if report.rejected else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.store",
                                     description="The console's own database.")
    sub = parser.add_subparsers(dest="command", required=True)
    migrate = sub.add_parser("migrate", help="create or upgrade the schema (Alembic, to head)")
    migrate.add_argument("--database-url", help="default: DATABASE_URL or data/console.db")
    imp = sub.add_parser("import-tokens",
                         help="import grant_id,access_token,customer_ref CSV (audited)")
    imp.add_argument("file", help="CSV file with a header row")
    imp.add_argument("--database-url", help="default: DATABASE_URL or data/console.db")
    rot = sub.add_parser("rotate-key",
                         help="re-encrypt stored tokens with the first key of KRYPTOS_VAULT_KEY "
                         "(audited)")
    rot.add_argument("--database-url", help="default: DATABASE_URL or data/console.db")
    ver = sub.add_parser("verify-audit",
                         help="verify the audit log's chain and anchor; exit 1 if broken")
    ver.add_argument("--expect", metavar="SEQ:HASH", help="a head noted earlier (row:hash)")
    ver.add_argument("--database-url", help="default: DATABASE_URL or data/console.db")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
        if args.command in ("import-tokens", "rotate-key"):
            return _audited_change(args, settings)
        url = args.database_url or settings.effective_database_url
        if args.command == "migrate":  # the operator asked to see each upgrade Alembic runs
            logging.getLogger("alembic").setLevel(logging.INFO)
        db = open_database(url)
        try:
            if args.command == "migrate":
                print(f"Schema up to date: {db!r}")
                return 0
            expect = _parse_expect(args.expect) if args.expect else None
            log = AuditLog(db, anchor_file=settings.effective_audit_anchor_file)
            return _print_verification(log.verify_chain(expected_head=expect))
        finally:
            db.dispose()
    except (ConfigError, StoreError, AuditUnavailable) as exc:
        print(f"error: {exc.user_message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from services.logs import setup

    setup("store")
    sys.exit(main())
