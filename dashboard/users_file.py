"""The console's users file: a YAML file of bcrypt hashes and roles, its checks and changes.
The command line over it is `python -m dashboard.users` (dashboard/users.py).

The file has the shape streamlit-authenticator reads (`credentials.usernames.<name>` with
`name`, `email`, `password` (a bcrypt hash, never plain text) and `roles`). A user who signs
in through single sign-on only is marked `sso: true` and has no `password` (no password
opens that account). The cookie key is not stored here: it comes from the settings (secrets
or environment)."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import yaml

from services.operations import ROLES, canonical_username
from services.private_files import private_dir

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_BYTES = 72  # bcrypt's limit; bcrypt 5 raises beyond it
DEFAULT_ROUNDS = 12


class UsersError(Exception):
    """A user-management request cannot be done; `user_message` says why, `code` (for the
    audit log) what kind of refusal it is."""

    def __init__(self, user_message: str, code: str = "USERS_ERROR") -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.code = code


@dataclass(frozen=True)
class User:
    username: str
    name: str
    email: str | None
    password_hash: str
    roles: tuple[str, ...]
    #: Signs in through single sign-on only (`password_hash` is empty: no password works).
    sso: bool = False

    def __repr__(self) -> str:  # never show the hash
        return f"User(username={self.username!r}, name={self.name!r}, roles={self.roles!r})"


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
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
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
        sso = entry.get("sso") is True
        pw = "" if sso else str(entry.get("password") or "")
        if not sso and not pw.startswith(("$2a$", "$2b$", "$2y$")):
            raise UsersError(
                f"User '{raw_name}' in {path} has no bcrypt hash; set the password with "
                "`python -m dashboard.users add` instead of writing it in the file."
            )
        roles = entry.get("roles") or []
        users[username] = User(
            username=username,
            name=str(entry.get("name") or username),
            email=entry.get("email"),
            password_hash=pw,
            roles=tuple(str(r) for r in roles),
            sso=sso,
        )
    return users


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
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise UsersError(f"Cannot read the users file {path}: {type(exc).__name__}.") \
                from None
        usernames = data["credentials"]["usernames"]
        key = next((k for k in usernames if canonical_username(str(k)) == username), None)
        if key is None or usernames[key].get("password") != old_hash:
            return False
        usernames[key]["password"] = new_hash
        _write_atomically(path, data, mode)
    return True


def _write_atomically(path: Path, data: dict, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".users-", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(data, fh, sort_keys=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_users(path: Path, users: dict[str, User]) -> None:
    """Write the users atomically, readable by the owner only (0600)."""
    private_dir(path.parent)
    _write_atomically(path, {"credentials": credentials_dict(users)}, 0o600)


def credentials_dict(users: dict[str, User]) -> dict:
    """The `credentials` mapping streamlit-authenticator takes (a fresh copy each call)."""
    return {"usernames": {u.username: _entry(u)
                          for u in sorted(users.values(), key=lambda u: u.username)}}


def _entry(user: User) -> dict:
    if user.sso:
        return {"name": user.name, "email": user.email, "sso": True, "roles": list(user.roles)}
    return {"name": user.name, "email": user.email, "password": user.password_hash,
            "roles": list(user.roles)}


def add_user(
    path: Path,
    username: str,
    password: str,
    roles: Iterable[str],
    *,
    name: str | None = None,
    email: str | None = None,
    rounds: int = DEFAULT_ROUNDS,
) -> User:
    username = validate_username(username)
    role_tuple = validate_roles(roles)
    password_hash = hash_password(password, rounds)
    with file_lock(path):
        users = load_users(path)
        if username in users:
            raise UsersError(f"User '{username}' already exists; use set-roles or remove it "
                             "first.", code="USER_EXISTS")
        user = User(username, name or username, email, password_hash, role_tuple)
        users[username] = user
        save_users(path, users)
    return user


def replace_roles(path: Path, username: str, roles: Iterable[str]) -> tuple[User, User]:
    """Set a user's roles; returns the user (before, after)."""
    username = validate_username(username)
    role_tuple = validate_roles(roles)
    with file_lock(path):
        users = load_users(path)
        if username not in users:
            raise UsersError(f"No user '{username}' in {path}.", code="USER_NOT_FOUND")
        old = users[username]
        users[username] = dataclasses.replace(old, roles=role_tuple)
        save_users(path, users)
    return old, users[username]


def replace_password(path: Path, username: str, password: str,
                     rounds: int = DEFAULT_ROUNDS) -> User:
    """Set a user's password (validated, bcrypt); returns the user."""
    username = validate_username(username)
    password_hash = hash_password(password, rounds)
    with file_lock(path):
        users = load_users(path)
        if username not in users:
            raise UsersError(f"No user '{username}' in {path}.", code="USER_NOT_FOUND")
        old = users[username]
        users[username] = dataclasses.replace(old, password_hash=password_hash, sso=False)
        save_users(path, users)
    return users[username]


def set_roles(path: Path, username: str, roles: Iterable[str]) -> User:
    return replace_roles(path, username, roles)[1]


def remove_user(path: Path, username: str) -> User:
    """Remove a user; returns the user removed."""
    username = validate_username(username)
    with file_lock(path):
        users = load_users(path)
        if username not in users:
            raise UsersError(f"No user '{username}' in {path}.", code="USER_NOT_FOUND")
        removed = users.pop(username)
        save_users(path, users)
    return removed


def save_sso_user(path: Path, username: str, roles: Iterable[str], *, name: str | None = None,
                  email: str | None = None) -> tuple[User | None, User]:
    """Single sign-on: add the user (marked `sso`, no password) or set the roles the
    provider's groups give now; returns (before, after), before None for a new entry. A
    password account of that name is refused (`LOCAL_ACCOUNT`): the sign-in checked that
    already, this closes the race with a `users add` in between. The file is written only
    when something changed."""
    username = validate_username(username)
    role_tuple = validate_roles(roles)
    with file_lock(path):
        users = load_users(path)
        old = users.get(username)
        if old is not None and not old.sso:
            raise UsersError(f"User '{username}' has a password account.", code="LOCAL_ACCOUNT")
        if old is not None and old.roles == role_tuple:
            return old, old
        new = (dataclasses.replace(old, roles=role_tuple) if old is not None else
               User(username, name or username, email, "", role_tuple, sso=True))
        users[username] = new
        save_users(path, users)
    return old, new
