"""The console's users file: a YAML file of bcrypt hashes and roles, its checks and changes.
The rules over it (who may change whom, audit) are `users.py` (`UserOps`); the command line
is `python -m dashboard.users`, the Users page `pages/users.py`.

The file has streamlit-authenticator's config format, both ways (`credentials.usernames.<name>`
with `name` or `first_name`/`last_name`, `email`, `password` (a bcrypt hash, never plain text)
and `roles`): a config it wrote loads here, its bookkeeping (`failed_login_attempts`,
`logged_in`, `password_hint`) and other sections (`cookie`, ...) ignored but kept when the file
is rewritten; the file written here loads in its `Authenticate`. A user who signs in only
through single sign-on has `sso: true` and no `password` (streamlit-authenticator's own shape of
a user without a password). The cookie key is not stored here: it comes from the settings."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from services.operations.errors import OperationError
from services.operations.permissions import ROLES, canonical_username
from services.private_files import private_dir

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_BYTES = 72  # bcrypt's limit; bcrypt 5 raises beyond it
DEFAULT_ROUNDS = 12


# libyaml's safe loader and dumper when PyYAML has them (its wheels do): the same documents,
# about ten times faster than the pure-Python ones on a file of hundreds of users.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# A YAML mapping as loaded: string keys in practice, values of any YAML type.
YamlMap = dict[str, Any]


def _read_yaml(path: Path) -> object:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader)  # noqa: S506 - safe


class UsersError(OperationError):
    """A user-management request cannot be done; `user_message` says why, `code` (for the
    audit log) what kind of refusal it is."""

    code: str

    def __init__(self, user_message: str, code: str = "USERS_ERROR") -> None:
        super().__init__(user_message, code=code)


#: The fields of an entry this module writes; every other field of an entry is kept as found.
MANAGED_FIELDS = ("name", "email", "password", "roles", "sso", "sso_subject", "admin_requested_by",
                  "must_change_password")
#: streamlit-authenticator's bookkeeping of its own login widget: never read here.
STAUTH_BOOKKEEPING = ("failed_login_attempts", "logged_in", "password_hint")


@dataclass(frozen=True)
class User:
    username: str
    name: str
    email: str | None
    #: The bcrypt hash; "" for a user who signs in only through SSO (no password login).
    password_hash: str
    roles: tuple[str, ...]
    #: Signs in through single sign-on only (`sso: true` in the file).
    sso: bool = False
    #: The identity provider's account this SSO user is bound to (`issuer subject`), set at
    #: the first sign-in: another account whose user name maps to the same username (say
    #: `alice@other.example` beside `alice@corp.example`) is refused.
    sso_subject: str | None = None
    #: The admin who asked for this user to become admin, while a second admin has not
    #: granted it (`CONSOLE_ADMIN_GRANT_SECOND_ADMIN`; services/operations/users.py).
    admin_requested_by: str | None = None
    #: The password is a one-time password an admin was shown: the user chooses their own
    #: at the next login before reaching any page.
    must_change_password: bool = False

    def __repr__(self) -> str:  # never show the hash
        return f"User(username={self.username!r}, name={self.name!r}, roles={self.roles!r})"

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


def validate_username(username: str) -> str:
    """The username in its one stored form (`canonical_username`: `Sam` is `sam`), checked."""
    name = canonical_username(username)
    if not USERNAME_RE.match(name):
        raise UsersError(
            "A username is 1 to 64 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return name


def validate_password(password: str) -> None:
    if password != password.strip():
        raise UsersError("A password must not start or end with spaces.")
    if len(password) < MIN_PASSWORD_CHARS:
        raise UsersError(f"A password needs at least {MIN_PASSWORD_CHARS} characters.")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise UsersError(f"A password can be at most {MAX_PASSWORD_BYTES} bytes (bcrypt's limit).")


def validate_roles(roles: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for role in roles:
        role = role.strip().lower()
        if role not in ROLES:
            raise UsersError(f"Unknown role '{role}'. Roles: {', '.join(ROLES)}.")
        if role not in out:
            out.append(role)
    if not out:
        raise UsersError(f"Give at least one role (--role), one of: {', '.join(ROLES)}.")
    return tuple(out)


def hash_password(password: str, rounds: int = DEFAULT_ROUNDS) -> str:
    """A bcrypt hash of the password (validated first)."""
    validate_password(password)
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=rounds)).decode("ascii")


def check_password(password: str, password_hash: str) -> bool:
    raw = password.encode("utf-8")
    if len(raw) > MAX_PASSWORD_BYTES or not password_hash:
        return False
    try:
        return bcrypt.checkpw(raw, password_hash.encode("ascii"))
    except ValueError:
        return False


def load_users(path: Path) -> dict[str, User]:
    """The users in the file (an empty dict when the file does not exist).

    Raises `UsersError` when the file cannot be read or is not in the expected shape.
    """
    if not path.exists():
        return {}
    try:
        data = _read_yaml(path) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsersError(f"Cannot read the users file {path}: {type(exc).__name__}.") from None
    usernames = (data.get("credentials") or {}).get("usernames") if isinstance(data, dict) else None
    if usernames is None:
        usernames = {}
    if not isinstance(usernames, dict):
        raise UsersError(f"The users file {path} has no 'credentials.usernames' mapping.")
    users: dict[str, User] = {}
    spelled: dict[str, str] = {}
    for raw_name, entry in usernames.items():
        if not isinstance(entry, dict):
            raise UsersError(f"User '{raw_name}' in {path} is not a mapping.")
        username = canonical_username(str(raw_name))
        if username in spelled:
            # Two entries would be one person at login and in the audit log: which password
            # and roles hold is not for the console to guess.
            raise UsersError(
                f"The users file {path} has both '{spelled[username]}' and '{raw_name}': "
                "usernames are compared without regard to case, so these are one user. "
                "Keep one of them: delete the other entry from the file.",
                code="DUPLICATE_USER")
        spelled[username] = str(raw_name)
        users[username] = user_from_entry(username, entry, f"User '{raw_name}' in {path}")
    return users


def is_bcrypt_hash(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("$2a$", "$2b$", "$2y$"))


def display_name(username: str, entry: YamlMap) -> str:
    """`name`, else streamlit-authenticator's `first_name last_name`, else the username."""
    if entry.get("name"):
        return str(entry["name"])
    joined = f"{entry.get('first_name') or ''} {entry.get('last_name') or ''}".strip()
    return joined or username


def user_from_entry(username: str, entry: YamlMap, where: str) -> User:
    """One entry of `credentials.usernames` as a `User` (`where` names it in errors)."""
    sso = entry.get("sso") is True
    pw = None if sso else entry.get("password")  # no password opens an SSO-only account
    if not sso and not is_bcrypt_hash(pw):
        raise UsersError(
            f"{where} has no bcrypt hash; set the password with "
            "`python -m dashboard.users add` instead of writing it in the file."
        )
    roles = entry.get("roles") or []
    if isinstance(roles, str):
        roles = [roles]
    email = entry.get("email")
    return User(username=username, name=display_name(username, entry),
                email=str(email) if email else None, password_hash=str(pw or ""),
                roles=tuple(str(r) for r in roles), sso=sso,
                sso_subject=str(entry["sso_subject"])
                if sso and entry.get("sso_subject") else None,
                admin_requested_by=str(entry["admin_requested_by"])
                if entry.get("admin_requested_by") else None,
                must_change_password=entry.get("must_change_password") is True)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold the users file's lock (`<file>.lock`, 0600) for a read-modify-write: the CLI's
    changes and the console's rehash at login never overwrite each other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def hash_cost(password_hash: str) -> int | None:
    """The bcrypt cost of a hash (`$2b$12$...` -> 12), None when it is not bcrypt's."""
    parts = password_hash.split("$")
    return int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else None


def rehash_password(path: Path, username: str, old_hash: str, new_hash: str) -> bool:
    """Replace a user's hash by one of the same password at another cost, if the file still
    holds `old_hash` for them (a password changed meanwhile wins). Only that entry's
    `password` changes: the file's other keys and fields, order and mode are kept, and the
    new file replaces the old atomically. Returns whether the file was changed."""
    username = canonical_username(username)
    with file_lock(path):
        try:
            mode = path.stat().st_mode & 0o777
            data = _read_yaml(path)
        except (OSError, yaml.YAMLError) as exc:
            raise UsersError(f"Cannot read the users file {path}: {type(exc).__name__}.") \
                from None
        credentials = data.get("credentials") if isinstance(data, dict) else None
        usernames = credentials.get("usernames") if isinstance(credentials, dict) else None
        if not isinstance(data, dict) or not isinstance(usernames, dict):
            raise UsersError(f"The users file {path} has no 'credentials.usernames' mapping.")
        key = next((k for k in usernames if canonical_username(str(k)) == username), None)
        if key is None or not isinstance(usernames[key], dict) \
                or usernames[key].get("password") != old_hash:
            return False
        usernames[key]["password"] = new_hash
        _write_atomically(path, data, mode)
    return True


def _write_atomically(path: Path, data: YamlMap, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".users-", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.dump(data, fh, Dumper=_SafeDumper, sort_keys=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_users(path: Path, users: dict[str, User]) -> None:
    """Write the users atomically, readable by the owner only (0600). What the file held
    beyond the fields this module manages is kept: its other sections (a streamlit-
    authenticator `cookie`, ...) and each remaining user's other fields (`first_name`, ...)."""
    private_dir(path.parent)
    data, entries = _raw_file(path)
    data["credentials"] = {**(data.get("credentials") or {}),
                           **credentials_dict(users, entries)}
    _write_atomically(path, data, 0o600)


def _raw_file(path: Path) -> tuple[YamlMap, dict[str, YamlMap]]:
    """The file as found (an empty dict when absent or unreadable: `load_users` said why
    before any change) and its entries by canonical username."""
    try:
        data = _read_yaml(path) or {}
    except (OSError, yaml.YAMLError):
        return {}, {}
    if not isinstance(data, dict):
        return {}, {}
    usernames = (data.get("credentials") or {}).get("usernames") or {}
    entries = {canonical_username(str(k)): v for k, v in usernames.items() if isinstance(v, dict)}
    return data, entries


def entry_of(user: User, found: YamlMap | None = None) -> YamlMap:
    """The file's entry of a user: `found` (the entry as it was) with the managed fields
    replaced; an SSO-only user has no `password` key, a password user no `sso` key."""
    kept = {k: v for k, v in (found or {}).items() if k not in MANAGED_FIELDS}
    entry: YamlMap = {"name": user.name, "email": user.email}
    if user.password_hash:
        entry["password"] = user.password_hash
    entry["roles"] = list(user.roles)
    if user.sso:
        entry["sso"] = True
        if user.sso_subject:
            entry["sso_subject"] = user.sso_subject
    if user.admin_requested_by:
        entry["admin_requested_by"] = user.admin_requested_by
    if user.must_change_password:
        entry["must_change_password"] = True
    return {**entry, **kept}


def credentials_dict(users: dict[str, User],
                     found: dict[str, YamlMap] | None = None) -> YamlMap:
    """The `credentials` mapping streamlit-authenticator takes (a fresh copy each call);
    `found`: the file's entries as they were, whose other fields are kept."""
    found = found or {}
    return {
        "usernames": {
            u.username: entry_of(u, found.get(u.username))
            for u in sorted(users.values(), key=lambda u: u.username)
        }
    }


def add_user(
    path: Path,
    username: str,
    password: str | None,
    roles: Iterable[str],
    *,
    name: str | None = None,
    email: str | None = None,
    rounds: int = DEFAULT_ROUNDS,
    sso: bool = False,
    must_change: bool = False,
) -> User:
    """Add a user: with a password, or (`sso`, password None) one who signs in through
    single sign-on only."""
    username = validate_username(username)
    role_tuple = validate_roles(roles)
    if sso != (password is None):
        raise ValueError("a password user needs a password; an SSO-only user has none")
    password_hash = "" if password is None else hash_password(password, rounds)
    with file_lock(path):
        users = load_users(path)
        if username in users:
            raise UsersError(f"User '{username}' already exists; use set-roles or remove it "
                             "first.", code="USER_EXISTS")
        user = User(username, name or username, email, password_hash, role_tuple, sso=sso,
                    must_change_password=must_change)
        users[username] = user
        save_users(path, users)
    return user


def replace_roles(path: Path, username: str, roles: Iterable[str],
                  check: Callable[[dict[str, User], User], None] | None = None
                  ) -> tuple[User, User]:
    """Set a user's roles; returns the user (before, after). `check(users, old)` runs under
    the file's lock before the change and may refuse it (the last admin, say)."""
    role_tuple = validate_roles(roles)
    return change_user(path, username, lambda old: replace(old, roles=role_tuple), check)


def change_user(path: Path, username: str, change: Callable[[User], User],
             check: Callable[[dict[str, User], User], None] | None) -> tuple[User, User]:
    """Read, check (`check(users, old)` may refuse), change one user and write, under the
    file's lock; returns the user (before, after)."""
    username = validate_username(username)
    with file_lock(path):
        users = load_users(path)
        if username not in users:
            raise UsersError(f"No user '{username}' in {path}.", code="USER_NOT_FOUND")
        old = users[username]
        if check is not None:
            check(users, old)
        users[username] = change(old)
        save_users(path, users)
    return old, users[username]


def replace_password(path: Path, username: str, password: str,
                     rounds: int = DEFAULT_ROUNDS, *, must_change: bool = False) -> User:
    """Set a user's password (validated, bcrypt); returns the user. `must_change`: it is a
    one-time password, to be replaced by the user at their next login."""
    password_hash = hash_password(password, rounds)
    return change_user(path, username, lambda old: replace(
        old, password_hash=password_hash, must_change_password=must_change), None)[1]


def move_to_sso(path: Path, username: str) -> User:
    """Turn a password account into one that signs in only through single sign-on: its
    password is dropped (no password opens it again), its roles kept; the first SSO
    sign-in with that username binds it to the provider's account."""
    def check(_users: dict[str, User], old: User) -> None:
        if old.sso:
            raise UsersError(f"{old.username} already signs in through single sign-on.",
                             code="ALREADY_SSO")

    return change_user(path, username, lambda old: replace(
        old, password_hash="", sso=True, sso_subject=None, must_change_password=False),
        check)[1]


def set_roles(path: Path, username: str, roles: Iterable[str]) -> User:
    return replace_roles(path, username, roles)[1]


def remove_user(path: Path, username: str,
                check: Callable[[dict[str, User], User], None] | None = None) -> User:
    """Remove a user; returns the user removed. `check(users, user)` runs under the file's
    lock first and may refuse it."""
    username = validate_username(username)
    with file_lock(path):
        users = load_users(path)
        if username not in users:
            raise UsersError(f"No user '{username}' in {path}.", code="USER_NOT_FOUND")
        if check is not None:
            check(users, users[username])
        removed = users.pop(username)
        save_users(path, users)
    return removed


def save_sso_user(path: Path, username: str, roles: Iterable[str], *, name: str | None = None,
                  email: str | None = None, subject: str | None = None
                  ) -> tuple[User | None, User]:
    """Single sign-on: add the user (marked `sso`, no password) or set the roles the
    provider's groups give now; returns (before, after), before None for a new entry. A
    password account of that name is refused (`LOCAL_ACCOUNT`): the sign-in checked that
    already, this closes the race with a `users add` in between. `subject` (the provider's
    `iss` and `sub`) binds the entry to one account at its first sign-in; an entry bound to
    another account is refused (`SUBJECT_MISMATCH`). The file is written only when
    something changed."""
    username = validate_username(username)
    role_tuple = validate_roles(roles)
    with file_lock(path):
        users = load_users(path)
        old = users.get(username)
        if old is not None and not old.sso:
            raise UsersError(f"User '{username}' has a password account.", code="LOCAL_ACCOUNT")
        if (old is not None and old.sso_subject and subject
                and old.sso_subject != subject):
            raise UsersError(f"User '{username}' belongs to another single sign-on account.",
                             code="SUBJECT_MISMATCH")
        bound = (old.sso_subject if old is not None and old.sso_subject else subject)
        if old is not None and old.roles == role_tuple and old.sso_subject == bound:
            return old, old
        new = (dataclasses.replace(old, roles=role_tuple, sso_subject=bound)
               if old is not None else
               User(username, name or username, email, "", role_tuple, sso=True,
                    sso_subject=bound))
        users[username] = new
        save_users(path, users)
    return old, new
