"""Console users, the use cases: list, add, change roles, reset a password or a second
factor, end sessions, unlock, remove, and merge a streamlit-authenticator config. The Users
page (through dashboard/users_admin.py) and `python -m dashboard.users` both call these, so
one set of rules holds wherever a user is changed:

- every change is audited `user.*` (requested, then succeeded or failed, with the roles
  before and after; never a password, a hash or a second-factor secret);
- nobody removes the last admin, or takes the admin role from the last admin;
- in the console nobody removes themselves or takes their own admin role away (an operator
  at the shell acts as `cli:<OS user>`, who is no console user);
- with `admin_grant_second_admin` (setting `CONSOLE_ADMIN_GRANT_SECOND_ADMIN`) an admin who
  gives someone the admin role only asks for it: the user keeps their other roles and the
  file records `admin_requested_by`; another admin grants it (`grant_admin`), audited
  `user.set_roles` with `requested_by`. The operator at the shell is not held: whoever runs
  the command controls the users file already;
- removing a user, resetting their password or second factor and ending their sessions are
  not undone by a click: the console asks first (`ConfirmationRequired`, `confirmed=True`);
- a password the console makes (add, reset) is a one-time password: shown once, it logs
  in once, and the user chooses their own before any page (`choose_own_password`);
- a password change, a role change, a second-factor reset, a removal and "end sessions" end
  every console session of the user (in the database, so on every replica).

Refusals of these rules are raised as `UsersError` inside the audited change, so they are
recorded `failed` with their code (`LAST_ADMIN`, `OWN_ADMIN_ROLE`, `SAME_ADMIN`, ...).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from services.operations.context import OpsContext
from services.operations.errors import ConfirmationRequired, RecordUnavailable
from services.operations.permissions import ROLES, Actor, Permission
from services.operations.users_file import (
    DEFAULT_ROUNDS,
    User,
    UsersError,
    add_user,
    change_user,
    file_lock,
    is_bcrypt_hash,
    load_users,
    remove_user,
    replace_password,
    replace_roles,
    save_users,
    user_from_entry,
    validate_password,
    validate_roles,
    validate_username,
)
from services.operations.users_file import (
    move_to_sso as file_move_to_sso,
)
from services.store.actions import AuditAction
from services.store.cli_audit import CliAudit
from services.store.sessions import (
    END_BY_ADMIN,
    END_PASSWORD_CHANGED,
    END_ROLES_CHANGED,
    END_USER_REMOVED,
    SCOPE_USER,
    LoginFailures,
    SessionStore,
)
from services.store.totp import TotpStore
from services.store.trail import AuditUnavailable, describe_failure

T = TypeVar("T")
Body = Callable[[], tuple[T, Mapping[str, Any] | None, Mapping[str, Any] | None]]

ADMIN = "admin"
#: Characters of a generated one-time password (16 from `token_urlsafe(12)`: 96 bits).
ONE_TIME_PASSWORD_BYTES = 12


class Recorder(Protocol):
    """Who checks and records a change: the console (`ConsoleRecorder`: permission, then
    the audit trail) or the operator's command line (`dashboard.users`: no permission check,
    `CliAudit`)."""

    #: True for the operator at the shell (not a console user; not held for a second admin).
    operator: bool

    def check(self, actor: Actor, action: str, username: str | None) -> None: ...

    def run(self, actor: Actor, action: str, body: Body[T], *, target_id: str | None,
            params: Mapping[str, Any] | None) -> T: ...


class ConsoleRecorder:
    """A console user acting: `MANAGE_USERS` checked (a refusal is audited `denied`), the
    change recorded through the operations' audit trail (not made when it cannot be)."""

    operator = False

    def __init__(self, ctx: OpsContext) -> None:
        self.ctx = ctx

    def __repr__(self) -> str:
        return "ConsoleRecorder()"

    def check(self, actor: Actor, action: str, username: str | None) -> None:
        self.ctx.check(actor, Permission.MANAGE_USERS, action, "user", username)

    def run(self, actor: Actor, action: str, body: Body[T], *, target_id: str | None,
            params: Mapping[str, Any] | None) -> T:
        try:
            return self.ctx.trail.run(actor.username, actor.roles, action, body,
                                      target_type="user", target_id=target_id, params=params,
                                      require_record=True, describe=describe_failure)
        except AuditUnavailable as exc:
            raise RecordUnavailable(exc.user_message, change_made=exc.change_made) from None


class OperatorRecorder:
    """The operator at the shell (`python -m dashboard.users`): no permission check (whoever
    runs it controls the files and the database already; docs/architecture.md, "Decisions
    and why"), the change recorded as `cli:<OS user>` through `CliAudit`."""

    operator = True

    def __init__(self, audit: CliAudit) -> None:
        self.audit = audit

    def __repr__(self) -> str:
        return f"OperatorRecorder({self.audit!r})"

    def actor(self) -> Actor:
        return Actor(self.audit.actor_username, roles=frozenset(self.audit.actor_roles))

    def check(self, actor: Actor, action: str, username: str | None) -> None:
        return None

    def run(self, actor: Actor, action: str, body: Body[T], *, target_id: str | None,
            params: Mapping[str, Any] | None) -> T:
        return self.audit.run(action, body, target_type="user", target_id=target_id,
                              params=params)


@dataclass(frozen=True)
class UserRow:
    """One line of the users list: nothing secret (no hash, no second-factor secret)."""

    username: str
    name: str
    email: str | None
    roles: tuple[str, ...]
    sso: bool
    second_factor: bool
    last_login: datetime | None
    locked_until: datetime | None
    open_sessions: int
    admin_requested_by: str | None = None

    @property
    def sign_in(self) -> str:
        return "SSO" if self.sso else "password"


@dataclass(frozen=True)
class Added:
    """A user just added; `one_time_password` is shown once (None for an SSO-only user)."""

    user: User
    one_time_password: str | None = field(repr=False, default=None)
    #: The admin role was asked for, not granted (a second admin grants it).
    admin_requested: bool = False


@dataclass(frozen=True)
class ImportReport:
    """What a streamlit-authenticator config gave: `taken` (username, roles), `not_taken`
    (username, why)."""

    taken: tuple[tuple[str, tuple[str, ...]], ...]
    not_taken: tuple[tuple[str, str], ...]


def one_time_password() -> str:
    return secrets.token_urlsafe(ONE_TIME_PASSWORD_BYTES)


def _roles(user: User | None) -> dict[str, Any]:
    return {"roles": list(user.roles)} if user is not None else {}


def _admins(users: Mapping[str, User]) -> set[str]:
    return {u.username for u in users.values() if u.is_admin}


class UserOps:
    """The users of one users file, over the login stores (sessions, locks, second factor)
    of the console's database. Shared by every session: holds no per-user state."""

    def __init__(self, path: Path, recorder: Recorder, *, sessions: SessionStore,
                 throttle: LoginFailures | None = None, totp: TotpStore | None = None,
                 admin_grant_second_admin: bool = False, rounds: int = DEFAULT_ROUNDS,
                 idle_timeout: float = 1800.0, session_lifetime: float = 43200.0,
                 sso_enabled: bool = True) -> None:
        self.path = path
        #: Single sign-on is configured, so an account moved to it can still sign in.
        self.sso_enabled = sso_enabled
        self.recorder = recorder
        self.sessions = sessions
        self.throttle = throttle
        self.totp = totp
        self.admin_grant_second_admin = admin_grant_second_admin
        self.rounds = rounds
        self.idle_timeout = idle_timeout
        self.session_lifetime = session_lifetime
        #: The file as last read, by its (mtime, size): the list re-reads it only when it
        #: changed (any process's change replaces the file, so its mtime moves).
        self._read: tuple[tuple[int, int], dict[str, User]] | None = None

    def __repr__(self) -> str:
        return f"UserOps({self.path}, {self.recorder!r})"

    # --- reads -------------------------------------------------------------------------------

    def list_users(self, actor: Actor) -> list[UserRow]:
        """Every user with their roles, sign-in, second factor, last login, lock and open
        sessions: the file and three reads of the database, whatever the number of users."""
        self.recorder.check(actor, AuditAction.PAGE_VIEW, None)
        users = self._users()
        summaries = self.sessions.summaries(idle_timeout=self.idle_timeout,
                                            lifetime=self.session_lifetime)
        enrolled = self.totp.enrolled_usernames() if self.totp is not None else frozenset()
        locks: dict[str, datetime] = {}
        for lock in (self.throttle.locks() if self.throttle is not None else ()):
            if lock.scope == SCOPE_USER and lock.username:
                locks[lock.username] = max(lock.locked_until,
                                           locks.get(lock.username, lock.locked_until))
        rows = []
        for u in sorted(users.values(), key=lambda u: u.username):
            summary = summaries.get(u.username)
            rows.append(UserRow(
                u.username, u.name, u.email, u.roles, u.sso, u.username in enrolled,
                summary.last_login if summary else None, locks.get(u.username),
                summary.open_sessions if summary else 0, u.admin_requested_by))
        return rows

    # --- changes -----------------------------------------------------------------------------

    def add(self, actor: Actor, username: str, roles: Iterable[str], *, sso: bool = False,
            password: str | None = None, name: str | None = None,
            email: str | None = None) -> Added:
        """Add a user. Without `password` (the console) a one-time password is made and
        returned once; `sso`: no password at all, the user signs in through single sign-on.
        The admin role, when a second admin must grant it, is asked for instead."""
        username = validate_username(username)
        self.recorder.check(actor, AuditAction.USER_ADD, username)
        wanted = validate_roles(roles)
        held = self._held(wanted, None)
        given = tuple(r for r in wanted if r != ADMIN) if held else wanted
        if held and not given:
            raise UsersError("A second admin must grant the admin role: give this user "
                             "another role too (viewer, say) until then.", code="ADMIN_ONLY")
        made = None
        if not sso and password is None:
            password = made = one_time_password()

        def body() -> tuple[User, None, dict[str, Any]]:
            user = add_user(self.path, username, None if sso else password, given,
                            name=name or None, email=email or None, rounds=self.rounds, sso=sso,
                            must_change=made is not None)
            if held:
                user = self._mark_admin_requested(username, actor)
            return user, None, {**_roles(user), **({"sso": True} if sso else {}),
                                **({"admin_requested": True} if held else {})}

        params = {"roles": list(wanted), **({"sso": True} if sso else {})}
        user = self.recorder.run(actor, AuditAction.USER_ADD, body, target_id=username,
                                 params=params)
        return Added(user, made, held)

    def set_roles(self, actor: Actor, username: str, roles: Iterable[str]) -> User:
        """Replace a user's roles and end their sessions. Refused for the last admin's admin
        role and one's own admin role; with a second admin required, an added admin role is
        asked for (`user.admin_requested`) while the other roles change at once."""
        username = validate_username(username)
        self.recorder.check(actor, AuditAction.USER_SET_ROLES, username)
        wanted = validate_roles(roles)
        current = load_users(self.path).get(username)
        held = self._held(wanted, current)
        given = tuple(r for r in wanted if r != ADMIN) if held else wanted
        if held and not given:
            raise UsersError("A second admin must grant the admin role: keep at least one "
                             "other role until then.", code="ADMIN_ONLY")

        def check(users: dict[str, User], old: User) -> None:
            if old.is_admin and ADMIN not in given:
                self._may_lose_admin(actor, users, old)

        def body() -> tuple[User, dict[str, Any], dict[str, Any]]:
            old, new = replace_roles(self.path, username, given, check)
            if held:
                new = self._mark_admin_requested(username, actor)
            elif old.admin_requested_by and ADMIN not in given:
                new = self._clear_admin_request(username)
            ended = self.sessions.end_user(username, END_ROLES_CHANGED) \
                if set(old.roles) != set(new.roles) else 0
            return new, _roles(old), {**_roles(new), "sessions_ended": ended,
                                      **({"admin_requested": True} if held else {})}

        return self.recorder.run(actor, AuditAction.USER_SET_ROLES, body, target_id=username,
                                 params={"roles": list(wanted)})

    def grant_admin(self, actor: Actor, username: str) -> User:
        """A second admin grants the admin role another admin asked for (not the one who
        asked: `SAME_ADMIN`)."""
        username = validate_username(username)
        self.recorder.check(actor, AuditAction.USER_SET_ROLES, username)
        requested_by: list[str] = []

        def check(users: dict[str, User], old: User) -> None:
            if not old.admin_requested_by:
                raise UsersError(f"Nobody asked for {username} to become admin.",
                                 code="NOT_REQUESTED")
            if old.admin_requested_by == actor.username:
                raise UsersError("You asked for this admin role: another admin must grant "
                                 "it.", code="SAME_ADMIN")
            requested_by.append(old.admin_requested_by)

        def body() -> tuple[User, dict[str, Any], dict[str, Any]]:
            old, new = change_user(self.path, username, lambda u: replace(
                u, roles=(*u.roles, ADMIN)), check)
            new = self._clear_admin_request(username)
            ended = self.sessions.end_user(username, END_ROLES_CHANGED)
            return new, _roles(old), {**_roles(new), "sessions_ended": ended,
                                      "requested_by": requested_by[0]}

        return self.recorder.run(actor, AuditAction.USER_SET_ROLES, body, target_id=username,
                                 params={"grant_admin": True})

    def reset_password(self, actor: Actor, username: str, *, password: str | None = None,
                       confirmed: bool = False) -> str | None:
        """Set a new password and end the user's sessions. Without `password` (the console)
        a one-time password is made and returned once."""
        username = validate_username(username)
        self.recorder.check(actor, AuditAction.USER_PASSWD, username)
        if self._known(username).sso:
            raise UsersError(f"{username} signs in through single sign-on only: no password "
                             "opens that account (their identity provider manages it).",
                             code="SSO_USER")
        if not confirmed:
            raise ConfirmationRequired(f"Reset the password of {username}? Their current "
                                       "password stops working and their sessions end.")
        made = None
        if password is None:
            password = made = one_time_password()
        new_password = password

        def body() -> tuple[None, None, dict[str, Any]]:
            replace_password(self.path, username, new_password, self.rounds,
                             must_change=made is not None)
            return None, None, {"sessions_ended": self.sessions.end_user(
                username, END_PASSWORD_CHANGED), **({"one_time": True} if made else {})}

        self.recorder.run(actor, AuditAction.USER_PASSWD, body, target_id=username,
                          params=None)
        return made

    def move_to_sso(self, actor: Actor, username: str, *, confirmed: bool = False) -> User:
        """A password account signs in through single sign-on from now on: its password
        stops working, its sessions end, its roles and second factor stay (the provider's
        groups set the roles at the first sign-in, which binds the account)."""
        username = validate_username(username)
        self.recorder.check(actor, AuditAction.USER_TO_SSO, username)
        if self._known(username).sso:
            raise UsersError(f"{username} already signs in through single sign-on.",
                             code="ALREADY_SSO")
        if not self.sso_enabled:
            raise UsersError("Single sign-on is not configured on this console: moved to "
                             f"it, {username} could not sign in at all.", code="SSO_OFF")
        if not confirmed:
            raise ConfirmationRequired(
                f"Move {username} to single sign-on? Their password stops working and "
                "their sessions end; they sign in with SSO, where their groups set their "
                "roles.")

        def body() -> tuple[User, None, dict[str, Any]]:
            moved = file_move_to_sso(self.path, username)
            return moved, None, {"sessions_ended": self.sessions.end_user(
                username, END_PASSWORD_CHANGED)}

        return self.recorder.run(actor, AuditAction.USER_TO_SSO, body, target_id=username,
                                 params=None)

    def choose_own_password(self, actor: Actor, password: str) -> User:
        """A user replaces the one-time password they logged in with by their own (the
        login's step before any page; no permission needed: it is their own). Audited
        `user.passwd` by the user; returns the user as now stored."""
        validate_password(password)
        username = actor.username

        def body() -> tuple[User, None, dict[str, Any]]:
            user = replace_password(self.path, username, password, self.rounds)
            return user, None, {"chosen_by_user": True}

        return self.recorder.run(actor, AuditAction.USER_PASSWD, body, target_id=username,
                                 params=None)

    def reset_second_factor(self, actor: Actor, username: str, *,
                            confirmed: bool = False) -> bool:
        """Remove a user's second factor (a lost phone) and end their sessions; they set
        up a new one at their next login when their role requires it. Returns whether one
        was set up."""
        username = validate_username(username)
        self.recorder.check(actor, AuditAction.USER_TOTP_RESET, username)
        self._known(username)
        if self.totp is None:
            raise UsersError("Second factors are not available here.", code="NO_TOTP_STORE")
        if not confirmed:
            raise ConfirmationRequired(f"Reset the second factor of {username}? Their "
                                       "authenticator app and recovery codes stop working.")
        totp = self.totp

        def body() -> tuple[bool, None, dict[str, Any]]:
            gone = totp.remove(username)
            return gone, None, {"removed": gone,
                                "sessions_ended": self.sessions.end_user(username, END_BY_ADMIN)}

        return self.recorder.run(actor, AuditAction.USER_TOTP_RESET, body, target_id=username,
                                 params=None)

    def end_sessions(self, actor: Actor, username: str, *, confirmed: bool = False) -> int:
        """End every console session of a user (on every replica at its next run)."""
        username = validate_username(username)
        self.recorder.check(actor, AuditAction.USER_END_SESSIONS, username)
        if not confirmed:
            raise ConfirmationRequired(f"End every session of {username}? They must log in "
                                       "again.")

        def body() -> tuple[int, None, dict[str, Any]]:
            ended = self.sessions.end_user(username, END_BY_ADMIN)
            return ended, None, {"sessions_ended": ended}

        return self.recorder.run(actor, AuditAction.USER_END_SESSIONS, body,
                                 target_id=username, params=None)

    def unlock(self, actor: Actor, username: str) -> int:
        """Lift the failed-login locks of a user (from every address); returns how many
        were in force."""
        username = validate_username(username)
        self.recorder.check(actor, AuditAction.USER_UNLOCK, username)
        if self.throttle is None:
            raise UsersError("Login locks are not available here.", code="NO_LOCK_STORE")
        throttle = self.throttle

        def body() -> tuple[int, None, dict[str, Any]]:
            lifted = throttle.unlock(username=username)
            return lifted, None, {"locks_lifted": lifted}

        return self.recorder.run(actor, AuditAction.USER_UNLOCK, body, target_id=username,
                                 params=None)

    def remove(self, actor: Actor, username: str, *, confirmed: bool = False) -> User:
        """Remove a user: their entry, their sessions and their second factor. Refused for
        the last admin and for oneself."""
        username = validate_username(username)
        self.recorder.check(actor, AuditAction.USER_REMOVE, username)
        if not confirmed:
            raise ConfirmationRequired(f"Remove {username}? They can no longer log in; adding "
                                       "them again gives a new password and second factor.")

        def check(users: dict[str, User], old: User) -> None:
            if not self.recorder.operator and old.username == actor.username:
                raise UsersError("You cannot remove yourself: ask another admin.",
                                 code="OWN_USER")
            if old.is_admin:
                self._may_lose_admin(actor, users, old)

        def body() -> tuple[User, dict[str, Any], dict[str, Any]]:
            removed = remove_user(self.path, username, check)
            ended = self.sessions.end_user(username, END_USER_REMOVED)
            totp_removed = self.totp.remove(username) if self.totp is not None else False
            return removed, _roles(removed), {"sessions_ended": ended, **(
                {"second_factor_removed": True} if totp_removed else {})}

        return self.recorder.run(actor, AuditAction.USER_REMOVE, body, target_id=username,
                                 params=None)

    def import_stauth(self, actor: Actor, config: Mapping[str, Any]) -> ImportReport:
        """Merge a streamlit-authenticator config: each user with a bcrypt hash (kept as it
        is) and only console roles is added; a user already here, one without a password
        (its OAuth2 guests), with a plain-text password, with an unknown role or without a
        role is not, with the reason. Audited once, `user.import`, with the report."""
        self.recorder.check(actor, AuditAction.USER_IMPORT, None)
        credentials = config.get("credentials") if isinstance(config, Mapping) else None
        entries = (credentials or {}).get("usernames") if isinstance(credentials, Mapping) \
            else None
        if not isinstance(entries, Mapping):
            raise UsersError("This is not a streamlit-authenticator config: it has no "
                             "'credentials.usernames' mapping.", code="NOT_A_CONFIG")

        def body() -> tuple[ImportReport, None, dict[str, Any]]:
            taken: list[tuple[str, tuple[str, ...]]] = []
            not_taken: list[tuple[str, str]] = []
            with file_lock(self.path):
                users = load_users(self.path)
                for raw, entry in entries.items():
                    name = str(raw)
                    why = self._refusal(name, entry, users)
                    if why:
                        not_taken.append((name, why))
                        continue
                    username = validate_username(name)
                    user = user_from_entry(username, dict(entry), f"User '{name}'")
                    user = replace(user, roles=validate_roles(user.roles), sso=False,
                                   admin_requested_by=None)
                    users[username] = user
                    taken.append((username, user.roles))
                if taken:
                    save_users(self.path, users)
            report = ImportReport(tuple(taken), tuple(not_taken))
            return report, None, {"taken": [{"username": u, "roles": list(r)} for u, r in taken],
                                  "not_taken": [{"username": u, "why": w}
                                                for u, w in not_taken]}

        return self.recorder.run(actor, AuditAction.USER_IMPORT, body, target_id=None,
                                 params={"users_in_config": len(entries)})

    # --- rules -------------------------------------------------------------------------------

    def _held(self, wanted: tuple[str, ...], current: User | None) -> bool:
        """Whether the admin role in `wanted` is only asked for (a second admin grants it)."""
        return (self.admin_grant_second_admin and not self.recorder.operator
                and ADMIN in wanted and not (current is not None and current.is_admin))

    def _may_lose_admin(self, actor: Actor, users: Mapping[str, User], user: User) -> None:
        if not self.recorder.operator and user.username == actor.username:
            raise UsersError("You cannot take away your own admin role: ask another admin.",
                             code="OWN_ADMIN_ROLE")
        if _admins(users) <= {user.username}:
            raise UsersError(f"{user.username} is the last admin: make someone else admin "
                             "first.", code="LAST_ADMIN")

    def _users(self) -> dict[str, User]:
        """The users file, read again only when it changed (a read, not for a change)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        key = (st.st_mtime_ns, st.st_size)
        cached = self._read
        if cached is not None and cached[0] == key:
            return cached[1]
        users = load_users(self.path)
        self._read = (key, users)
        return users

    def _known(self, username: str) -> User:
        user = self._users().get(username)
        if user is None:
            raise UsersError(f"No user '{username}'.", code="USER_NOT_FOUND")
        return user

    def _mark_admin_requested(self, username: str, actor: Actor) -> User:
        def mark(old: User) -> User:
            return replace(old, admin_requested_by=actor.username)

        return self._rewrite(username, mark)

    def _clear_admin_request(self, username: str) -> User:
        return self._rewrite(username, lambda old: replace(old, admin_requested_by=None))

    def _rewrite(self, username: str, change: Callable[[User], User]) -> User:
        return change_user(self.path, username, change, None)[1]

    @staticmethod
    def _refusal(name: str, entry: object, users: Mapping[str, User]) -> str | None:
        """Why a config's user is not taken, or None."""
        if not isinstance(entry, Mapping):
            return "not a mapping"
        password = entry.get("password")
        if password in (None, ""):
            return "no password (a streamlit-authenticator OAuth2 guest): add them as SSO users"
        try:
            username = validate_username(name)
        except UsersError as exc:
            return exc.user_message
        if username in users:
            return "already a console user (left as it is)"
        if not is_bcrypt_hash(password):
            return "a plain-text password: hash it with streamlit-authenticator's Hasher first"
        roles = entry.get("roles") or []
        if isinstance(roles, str):
            roles = [roles]
        unknown = [str(r) for r in roles if str(r).strip().lower() not in ROLES]
        if unknown:
            return f"unknown role(s) {', '.join(unknown)} (console roles: {', '.join(ROLES)})"
        if not roles:
            return f"no role (console roles: {', '.join(ROLES)})"
        return None


__all__ = ["Added", "ConsoleRecorder", "ImportReport", "OperatorRecorder", "Recorder",
           "UserOps", "UserRow", "one_time_password"]
