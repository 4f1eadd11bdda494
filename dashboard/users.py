"""The command to manage the console's users. The users file itself (load, save, checks,
hashing) is `dashboard/users_file.py`; its names stay importable from here.

    python -m dashboard.users add NAME --role support [--role finance] [--password-stdin]
    python -m dashboard.users list
    python -m dashboard.users set-roles NAME --role admin
    python -m dashboard.users remove NAME
    python -m dashboard.users passwd NAME [--password-stdin]
    python -m dashboard.users unlock NAME | unlock --address ADDRESS
    python -m dashboard.users totp-enroll NAME
    python -m dashboard.users totp-remove NAME

`--file PATH` chooses the file; by default it is the settings' auth file
(`CONSOLE_AUTH_FILE`, else `<data_dir>/users.yaml`).

`set-roles`, `remove` and `passwd` end every console session of the user at once (in the
database, so on every replica). `unlock` lifts the failed-login locks of a user (or of an
address). `totp-enroll` sets up a user's second factor: it prints the otpauth:// URI, a QR
code for the terminal and 10 one-time recovery codes (stored hashed; the secret is stored
encrypted with the vault key). All of these are audited like `add`.

`add`, `set-roles` and `remove` are audited: each writes `requested`, then `succeeded` or
`failed`, to the console's audit log (`DATABASE_URL`, else `<data_dir>/console.db`), actions
`user.add`, `user.set_roles`, `user.remove`, as the operator `cli:<OS user>` (role `cli`),
with the user's roles before and after (never a password or hash). When the audit log cannot
be written they change nothing and exit 2. See services/store/cli_audit.py. Exit codes:
0 done, 1 refused (bad input, unknown or existing user, unreadable file), 2 audit log
unavailable.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from dashboard.users_file import (
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
from services.operations import ROLES
from services.store.actions import AuditAction
from services.store.cli_audit import AuditUnavailable, CliAudit
from services.store.sessions import (
    END_PASSWORD_CHANGED,
    END_ROLES_CHANGED,
    END_USER_REMOVED,
)


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


def _roles_of(user: User) -> dict[str, list[str]]:
    return {"roles": list(user.roles)}  # what the audit log gets: never the hash


def _audited_change(args: argparse.Namespace, path: Path, stdin: TextIO, stdout: TextIO) -> None:
    """add / set-roles / remove, recorded in the audit log (services/store/cli_audit.py).

    Input is checked first (a bad name, role or password is refused without an event, as in
    the console); then the audit log is opened, before the password is asked for, so that
    nothing is asked or changed when it cannot be written (`AuditUnavailable`)."""
    username = validate_username(args.username)
    roles = validate_roles(args.role) if args.command in ("add", "set-roles") else ()
    with CliAudit.open() as audit:
        if args.command == "add":
            password = _read_new_password(stdin, args.password_stdin)
            validate_password(password)

            def add() -> tuple[User, None, dict[str, Any]]:
                user = add_user(path, username, password, roles, name=args.name,
                                email=args.email)
                return user, None, _roles_of(user)

            user = audit.run(AuditAction.USER_ADD, add, target_type="user", target_id=username,
                             params={"roles": list(roles)})
            print(f"Added {user.username} ({', '.join(user.roles)}) to {path}.", file=stdout)
        elif args.command == "set-roles":

            def change() -> tuple[User, dict[str, Any], dict[str, Any]]:
                old, new = replace_roles(path, username, roles)
                ended = _end_sessions(audit, username, END_ROLES_CHANGED)
                return new, _roles_of(old), {**_roles_of(new), "sessions_ended": ended}

            user = audit.run(AuditAction.USER_SET_ROLES, change, target_type="user",
                             target_id=username, params={"roles": list(roles)})
            print(f"{user.username} now has roles: {', '.join(user.roles)}.", file=stdout)
        else:

            def remove() -> tuple[None, dict[str, Any], dict[str, Any]]:
                removed = _roles_of(remove_user(path, username))
                return None, removed, {"sessions_ended": _end_sessions(audit, username,
                                                                       END_USER_REMOVED)}

            audit.run(AuditAction.USER_REMOVE, remove, target_type="user", target_id=username)
            print(f"Removed {username} from {path}.", file=stdout)


def _end_sessions(audit: CliAudit, username: str, reason: str) -> int:
    from services.store.sessions import SessionStore

    return SessionStore(audit.db).end_user(username, reason)


def _passwd(args: argparse.Namespace, path: Path, stdin: TextIO, stdout: TextIO) -> None:
    username = validate_username(args.username)
    if username not in load_users(path):
        raise UsersError(f"No user '{username}' in {path}.", code="USER_NOT_FOUND")
    with CliAudit.open() as audit:
        password = _read_new_password(stdin, args.password_stdin)
        validate_password(password)

        def change() -> tuple[User, None, dict[str, Any]]:
            user = replace_password(path, username, password)
            return user, None, {"sessions_ended": _end_sessions(audit, username,
                                                               END_PASSWORD_CHANGED)}

        audit.run(AuditAction.USER_PASSWD, change, target_type="user", target_id=username)
    print(f"Password of {username} changed; their sessions were ended.", file=stdout)


def _unlock(args: argparse.Namespace, path: Path, stdout: TextIO) -> None:
    from services.store.sessions import LoginFailures

    if bool(args.username) == bool(args.address):
        raise UsersError("Give a username or --address ADDRESS (one of them).")
    username = validate_username(args.username) if args.username else None
    settings = _settings()
    with CliAudit.open(settings) as audit:
        throttle = LoginFailures(audit.db, max_failures=settings.login_max_failures,
                                 max_failures_wide=settings.login_max_failures_wide,
                                 lock_seconds=settings.login_lock_seconds)

        def lift() -> tuple[int, None, dict[str, Any]]:
            lifted = throttle.unlock(username=username, address=args.address)
            return lifted, None, {"locks_lifted": lifted}

        lifted = audit.run(AuditAction.UNLOCK, lift, target_type="user" if username else "address",
                           target_id=username,
                           params={"address": args.address} if args.address else None)
    print(f"Unlocked {username or args.address} ({lifted} lock(s) were in force).",
          file=stdout)


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

            def remove() -> tuple[bool, None, dict[str, Any]]:
                return (gone := store.remove(username)), None, {"removed": gone}

            gone = audit.run(AuditAction.TOTP_REMOVED, remove, target_type="user",
                             target_id=username)
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
                print(f"{u.username}\t{u.name}\t{','.join(u.roles)}", file=stdout)
        elif args.command == "passwd":
            _passwd(args, path, stdin, stdout)
        elif args.command == "unlock":
            _unlock(args, path, stdout)
        elif args.command in ("totp-enroll", "totp-remove"):
            _totp(args, path, stdout)
        else:
            _audited_change(args, path, stdin, stdout)
    except UsersError as exc:
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
