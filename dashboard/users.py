"""The command to manage the console's users. The rules (last admin, audit, sessions ended)
are the users use cases, `services/operations/users.py`, which the Users page calls too; the
users file itself (load, save, checks, hashing) is `services/operations/users_file.py`; its
names stay importable from here.

    python -m dashboard.users add NAME --role support [--role finance] [--password-stdin]
    python -m dashboard.users add NAME --role support --sso      (signs in through SSO only)
    python -m dashboard.users list
    python -m dashboard.users set-roles NAME --role admin
    python -m dashboard.users remove NAME
    python -m dashboard.users passwd NAME [--password-stdin]
    python -m dashboard.users unlock NAME | unlock --address ADDRESS
    python -m dashboard.users totp-enroll NAME
    python -m dashboard.users totp-remove NAME
    python -m dashboard.users import-stauth config.yaml   (a streamlit-authenticator config)

`--file PATH` chooses the file; by default it is the settings' auth file
(`CONSOLE_AUTH_FILE`, else `<data_dir>/users.yaml`).

`set-roles`, `remove`, `passwd` and `totp-remove` end every console session of the user at
once (in the database, so on every replica); `remove` and `set-roles` refuse to leave the
console without an admin. `unlock` lifts the failed-login locks of a user (or of an
address). `totp-enroll` sets up a user's second factor: it prints the otpauth:// URI, a QR
code for the terminal and 10 one-time recovery codes (stored hashed; the secret is stored
encrypted with the vault key). All of these are audited like `add`.

`add`, `set-roles`, `remove`, `passwd`, `unlock NAME`, `totp-remove` and `import-stauth`
are audited: each writes `requested`, then `succeeded` or `failed`, to the console's audit log
(`DATABASE_URL`, else `<data_dir>/console.db`), actions `user.add`, `user.set_roles`,
`user.remove`, `user.passwd`, `user.unlock`, `user.totp_reset`, `user.import`, as the
operator `cli:<OS user>` (role `cli`), with the user's roles before and after (never a
password or hash). When the audit log cannot be written they change nothing and exit 2.
See services/store/cli_audit.py. Exit codes: 0 done, 1 refused (bad input, unknown or
existing user, the last admin, unreadable file), 2 audit log unavailable.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from services.operations import ROLES, OperationError
from services.operations.users import OperatorRecorder, UserOps
from services.operations.users_file import (
    DEFAULT_ROUNDS,
    MAX_PASSWORD_BYTES,
    MIN_PASSWORD_CHARS,
    USERNAME_RE,
    User,
    UsersError,
    add_user,
    check_password,
    credentials_dict,
    hash_password,
    load_users,
    remove_user,
    replace_password,
    replace_roles,
    save_users,
    set_roles,
    validate_password,
    validate_roles,
    validate_username,
)
from services.store.actions import AuditAction
from services.store.cli_audit import AuditUnavailable, CliAudit


def _read_new_password(stdin: TextIO, from_stdin: bool) -> str:
    if from_stdin:
        line = stdin.readline()
        return line.rstrip("\n").rstrip("\r")
    first = getpass.getpass("Password: ")
    second = getpass.getpass("Password again: ")
    if first != second:
        raise UsersError("The two passwords differ; nothing was changed.")
    return first


def _default_path() -> Path:
    from services.settings import ConfigError, load_settings

    try:
        return load_settings().effective_auth_file
    except ConfigError as exc:
        raise UsersError(exc.user_message) from None


def _user_ops(audit: CliAudit, path: Path, settings: Any = None) -> UserOps:
    """The users use cases as the operator (services/operations/users.py): the same rules
    as the Users page, recorded as `cli:<OS user>`, not held for a second admin."""
    from services.store import load_vault_key
    from services.store.sessions import LoginFailures, SessionStore
    from services.store.totp import TotpStore

    totp = throttle = None
    if settings is not None:
        throttle = LoginFailures(audit.db, max_failures=settings.login_max_failures,
                                 max_failures_wide=settings.login_max_failures_wide,
                                 lock_seconds=settings.login_lock_seconds)
        totp = TotpStore(audit.db, load_vault_key(settings))
    return UserOps(path, OperatorRecorder(audit), sessions=SessionStore(audit.db),
                   throttle=throttle, totp=totp)


def _audited_change(args: argparse.Namespace, path: Path, stdin: TextIO, stdout: TextIO) -> None:
    """add / set-roles / remove, recorded in the audit log (services/store/cli_audit.py).

    Input is checked first (a bad name, role or password is refused without an event, as in
    the console); then the audit log is opened, before the password is asked for, so that
    nothing is asked or changed when it cannot be written (`AuditUnavailable`)."""
    username = validate_username(args.username)
    roles = validate_roles(args.role) if args.command in ("add", "set-roles") else ()
    with CliAudit.open() as audit:
        ops = _user_ops(audit, path)
        actor = OperatorRecorder(audit).actor()
        if args.command == "add":
            sso = bool(getattr(args, "sso", False))
            password = None
            if not sso:
                password = _read_new_password(stdin, args.password_stdin)
                validate_password(password)
            user = ops.add(actor, username, roles, sso=sso, password=password, name=args.name,
                           email=args.email).user
            how = " (signs in through SSO only)" if sso else ""
            print(f"Added {user.username} ({', '.join(user.roles)}) to {path}{how}.",
                  file=stdout)
        elif args.command == "set-roles":
            user = ops.set_roles(actor, username, roles)
            print(f"{user.username} now has roles: {', '.join(user.roles)}.", file=stdout)
        else:
            ops.remove(actor, username, confirmed=True)
            print(f"Removed {username} from {path}.", file=stdout)


def _passwd(args: argparse.Namespace, path: Path, stdin: TextIO, stdout: TextIO) -> None:
    username = validate_username(args.username)
    if username not in load_users(path):
        raise UsersError(f"No user '{username}' in {path}.", code="USER_NOT_FOUND")
    with CliAudit.open() as audit:
        password = _read_new_password(stdin, args.password_stdin)
        validate_password(password)
        _user_ops(audit, path).reset_password(OperatorRecorder(audit).actor(), username,
                                              password=password, confirmed=True)
    print(f"Password of {username} changed; their sessions were ended.", file=stdout)


def _unlock(args: argparse.Namespace, path: Path, stdout: TextIO) -> None:
    from services.store.sessions import LoginFailures

    if bool(args.username) == bool(args.address):
        raise UsersError("Give a username or --address ADDRESS (one of them).")
    username = validate_username(args.username) if args.username else None
    settings = _settings()
    with CliAudit.open(settings) as audit:
        if username:
            lifted = _user_ops(audit, path, settings).unlock(OperatorRecorder(audit).actor(),
                                                             username)
        else:
            throttle = LoginFailures(audit.db, max_failures=settings.login_max_failures,
                                     max_failures_wide=settings.login_max_failures_wide,
                                     lock_seconds=settings.login_lock_seconds)

            def lift() -> tuple[int, None, dict[str, Any]]:
                lifted = throttle.unlock(address=args.address)
                return lifted, None, {"locks_lifted": lifted}

            lifted = audit.run(AuditAction.UNLOCK, lift, target_type="address",
                               params={"address": args.address})
    print(f"Unlocked {username or args.address} ({lifted} lock(s) were in force).",
          file=stdout)


def _import_stauth(args: argparse.Namespace, path: Path, stdout: TextIO) -> None:
    """Merge a streamlit-authenticator config (services/operations/users.py, `import_stauth`)
    and print what was taken and what was not, with why."""
    try:
        config = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsersError(f"Cannot read {args.config}: {type(exc).__name__}.") from None
    with CliAudit.open() as audit:
        report = _user_ops(audit, path).import_stauth(OperatorRecorder(audit).actor(), config)
    print(f"Taken ({len(report.taken)}) into {path}:", file=stdout)
    for username, roles in report.taken:
        print(f"  {username}\t{','.join(roles)}", file=stdout)
    print(f"Not taken ({len(report.not_taken)}):", file=stdout)
    for username, why in report.not_taken:
        print(f"  {username}\t{why}", file=stdout)


def _totp(args: argparse.Namespace, path: Path, stdout: TextIO) -> None:
    from services.store import load_vault_key
    from services.store.totp import TotpStore, new_secret, provisioning_uri

    username = validate_username(args.username)
    if username not in load_users(path):
        raise UsersError(f"No user '{username}' in {path}.", code="USER_NOT_FOUND")
    settings = _settings()
    with CliAudit.open(settings) as audit:
        store = TotpStore(audit.db, load_vault_key(settings))
        if args.command == "totp-remove":
            gone = _user_ops(audit, path, settings).reset_second_factor(
                OperatorRecorder(audit).actor(), username, confirmed=True)
            print(f"Second factor of {username} " + ("removed." if gone else "was not set up."),
                  file=stdout)
            return
        secret = new_secret()

        def enrol() -> tuple[list[str], None, dict[str, Any]]:
            codes = store.enroll(username, secret)
            return codes, None, {"recovery_codes": len(codes), "via": "cli"}

        codes = audit.run(AuditAction.TOTP_ENROLLED, enrol, target_type="user", target_id=username)
    uri = provisioning_uri(username, secret)
    print(f"Second factor of {username} set up. Add it to an authenticator app:", file=stdout)
    print(uri, file=stdout)
    _print_qr(uri, stdout)
    print("One-time recovery codes (shown once; each works once):", file=stdout)
    for code in codes:
        print(f"  {code}", file=stdout)


def _print_qr(uri: str, stdout: TextIO) -> None:
    try:
        import qrcode
    except ImportError:
        print("(the qrcode package is not installed: no QR code; use the URI above)",
              file=stdout)
        return
    qr = qrcode.QRCode(border=1)
    qr.add_data(uri)
    qr.print_ascii(out=stdout, invert=True)


def _settings() -> Any:
    from services.settings import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        raise UsersError(exc.user_message) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dashboard.users",
        description="Manage the console's users. add, set-roles and remove are recorded in "
        "the console's audit log as cli:<OS user>; when the audit log cannot be written they "
        "change nothing and exit 2.",
    )
    parser.add_argument("--file", type=Path, help="users file (default: the settings' auth file)")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="add a user (asks for the password twice; audited)")
    add.add_argument("username")
    add.add_argument("--role", action="append", required=True, choices=ROLES)
    add.add_argument("--name", help="display name (default: the username)")
    add.add_argument("--email")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from one line of stdin"
    )
    add.add_argument("--sso", action="store_true",
                     help="no password: the user signs in through single sign-on only")
    sub.add_parser("list", help="list users and roles")
    sr = sub.add_parser("set-roles", help="replace a user's roles (audited)")
    sr.add_argument("username")
    sr.add_argument("--role", action="append", required=True, choices=ROLES)
    rm = sub.add_parser("remove", help="remove a user and end their sessions (audited)")
    rm.add_argument("username")
    pw = sub.add_parser("passwd", help="set a user's password and end their sessions (audited)")
    pw.add_argument("username")
    pw.add_argument(
        "--password-stdin", action="store_true", help="read the password from one line of stdin"
    )
    un = sub.add_parser("unlock", help="lift the failed-login locks of a user or an address "
                        "(audited)")
    un.add_argument("username", nargs="?")
    un.add_argument("--address", help="unlock this client address instead of a user")
    te = sub.add_parser("totp-enroll", help="set up (or replace) a user's second factor: "
                        "prints the otpauth:// URI, a QR code and recovery codes (audited)")
    te.add_argument("username")
    tr = sub.add_parser("totp-remove", help="remove a user's second factor (audited)")
    tr.add_argument("username")
    im = sub.add_parser("import-stauth", help="merge a streamlit-authenticator config "
                        "(hashes kept, roles checked; prints what was taken and what was not; "
                        "audited)")
    im.add_argument("config", type=Path)
    return parser


def main(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        path: Path = args.file or _default_path()
        if args.command == "list":
            users = load_users(path)
            if not users:
                print(f"No users in {path}.", file=stdout)
            for u in sorted(users.values(), key=lambda u: u.username):
                print(f"{u.username}\t{u.name}\t{','.join(u.roles)}"
                      + ("\tSSO" if u.sso else ""), file=stdout)
        elif args.command == "passwd":
            _passwd(args, path, stdin, stdout)
        elif args.command == "unlock":
            _unlock(args, path, stdout)
        elif args.command in ("totp-enroll", "totp-remove"):
            _totp(args, path, stdout)
        elif args.command == "import-stauth":
            _import_stauth(args, path, stdout)
        else:
            _audited_change(args, path, stdin, stdout)
    except (UsersError, OperationError) as exc:
        print(f"error: {exc.user_message}", file=stderr)
        return 1
    except AuditUnavailable as exc:
        print(f"error: {exc.user_message}", file=stderr)
        return 2
    return 0


# The users file's names stay importable from here.
__all__ = ["DEFAULT_ROUNDS", "MAX_PASSWORD_BYTES", "MIN_PASSWORD_CHARS", "USERNAME_RE", "User",
           "UsersError", "add_user", "build_parser", "check_password", "credentials_dict",
           "hash_password", "load_users", "main", "remove_user", "replace_password",
           "replace_roles", "save_users", "set_roles", "validate_password", "validate_roles",
           "validate_username"]

if __name__ == "__main__":
    from services.logs import setup

    setup("users")
    raise SystemExit(main())
