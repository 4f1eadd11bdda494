"""Console logins kept in the database, so that every replica sees the same state:
server-side sessions (`SessionStore`, table `console_sessions`) and failed-login counters
with their locks (`LoginFailures`, table `login_failures`). Migration 0005_auth.

A session id is a bearer secret: the browser's cookie holds it, the table only its SHA-256
(`id_hash`, migration 0010_session_hash), so a copy of the database names no usable session.

"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from services.counters import LOGIN_FAILURES
from services.store.db import Database
from services.store.schema import console_sessions, login_failures

# Why a session ended (`console_sessions.end_reason`).
END_LOGOUT = "logout"
END_IDLE = "idle"
END_LIFETIME = "lifetime"
END_ROLES_CHANGED = "roles_changed"
END_PASSWORD_CHANGED = "password_changed"
END_USER_REMOVED = "user_removed"
END_BY_ADMIN = "ended_by_admin"  # an admin ended them (Users page, or a second factor reset)

#: The address recorded when the client's address is not known (AppTest, no header).
UNKNOWN_ADDRESS = "unknown"

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def credential_stamp(password_hash: str) -> str:
    """What a session remembers of the password it was opened with (a hash of its hash)."""
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()


def session_id_hash(sid: str) -> str:
    """What the table keeps of a session id. A plain SHA-256 suffices: the id is 32 random
    bytes, so there is nothing to guess from the hash."""
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def roles_text(roles: Iterable[str]) -> str:
    return ",".join(sorted(set(roles)))


@dataclass(frozen=True)
class ConsoleSession:
    #: The session id: known from `create` and `get(id)` only (None from `open_sessions`).
    id: str | None
    username: str
    roles: tuple[str, ...]
    credential_stamp: str
    created_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    client_address: str | None
    id_hash: str | None = None

    def __repr__(self) -> str:  # the id is a bearer secret
        return (f"ConsoleSession(username={self.username!r}, created_at={self.created_at!r}, "
                f"ended_at={self.ended_at!r}, end_reason={self.end_reason!r})")


@dataclass(frozen=True)
class SessionSummary:
    """One user's sessions at a glance: the newest login and the sessions open now."""

    last_login: datetime | None
    open_sessions: int


class SessionStore:
    """Server-side sessions: the login cookie names one (`id`, 32 random bytes, kept in the
    table as `id_hash` only)."""

    def __init__(self, db: Database, *, clock: Clock = _utcnow) -> None:
        self._db = db
        #: The time source of every check and write (a test injects its own).
        self.clock = clock

    def __repr__(self) -> str:
        return f"SessionStore({self._db!r})"

    def now(self) -> datetime:
        return self.clock()

    def create(self, username: str, roles: Iterable[str], password_hash: str,
               client_address: str | None = None) -> ConsoleSession:
        now = self.clock()
        sid = secrets.token_urlsafe(32)
        row = dict(id_hash=session_id_hash(sid), username=username, roles=roles_text(roles),
                   credential_stamp=credential_stamp(password_hash), created_at=now,
                   last_seen_at=now, ended_at=None, end_reason=None,
                   client_address=(client_address or None) and client_address[:64])
        with self._db.write() as conn:
            conn.execute(insert(console_sessions).values(**row))
        return _session(row, sid)

    def get(self, sid: str) -> ConsoleSession | None:
        if not isinstance(sid, str) or not 20 <= len(sid) <= 64:
            return None
        with self._db.read() as conn:
            row = conn.execute(select(console_sessions)
                               .where(console_sessions.c.id_hash == session_id_hash(sid))
                               ).mappings().first()
        return _session(dict(row), sid) if row is not None else None

    def touch(self, sid: str) -> None:
        """Record that the session was used now (callers throttle it: dashboard/session_cookie.py
        `touch_interval`)."""
        with self._db.write() as conn:
            conn.execute(update(console_sessions)
                         .where(console_sessions.c.id_hash == session_id_hash(sid),
                                console_sessions.c.ended_at.is_(None))
                         .values(last_seen_at=self.clock()))

    def opened_since(self, username: str, since: datetime) -> bool:
        """Whether the user opened a session at or after `since` (single sign-on: an
        identity issued before it was used already; one indexed read by username)."""
        with self._db.read() as conn:
            row = conn.execute(select(console_sessions.c.id_hash)
                               .where(console_sessions.c.username == username,
                                      console_sessions.c.created_at >= since)
                               .limit(1)).first()
        return row is not None

    def end(self, sid: str, reason: str) -> bool:
        """End one session; False when it had already ended (or never existed)."""
        with self._db.write() as conn:
            result = conn.execute(
                update(console_sessions)
                .where(console_sessions.c.id_hash == session_id_hash(sid),
                       console_sessions.c.ended_at.is_(None))
                .values(ended_at=self.clock(), end_reason=reason))
        return bool(result.rowcount)

    def end_user(self, username: str, reason: str) -> int:
        """End every open session of a user (all replicas see it at their next run)."""
        with self._db.write() as conn:
            result = conn.execute(
                update(console_sessions)
                .where(console_sessions.c.username == username,
                       console_sessions.c.ended_at.is_(None))
                .values(ended_at=self.clock(), end_reason=reason))
        return int(result.rowcount or 0)

    def restamp(self, username: str, old_hash: str, new_hash: str) -> int:
        """The user's password was rehashed (same password, another bcrypt cost): their open
        sessions opened with the old hash stay valid under the new one."""
        with self._db.write() as conn:
            result = conn.execute(
                update(console_sessions)
                .where(console_sessions.c.username == username,
                       console_sessions.c.credential_stamp == credential_stamp(old_hash),
                       console_sessions.c.ended_at.is_(None))
                .values(credential_stamp=credential_stamp(new_hash)))
        return int(result.rowcount or 0)

    def summaries(self, *, idle_timeout: float, lifetime: float) -> dict[str, SessionSummary]:
        """Per username: the newest session's start and how many are open now (not ended,
        used within `idle_timeout` seconds, younger than `lifetime`). One grouped query over
        the table, for the Users page's list."""
        now = self.clock()
        c = console_sessions.c
        live = and_(c.ended_at.is_(None),
                    c.last_seen_at > now - timedelta(seconds=idle_timeout),
                    c.created_at > now - timedelta(seconds=lifetime))
        with self._db.read() as conn:
            rows = conn.execute(
                select(c.username, func.max(c.created_at),
                       func.sum(case((live, 1), else_=0))).group_by(c.username)).all()
        return {r[0]: SessionSummary(_aware(r[1]) if r[1] else None, int(r[2] or 0))
                for r in rows}

    def open_sessions(self, username: str) -> list[ConsoleSession]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(console_sessions)
                .where(console_sessions.c.username == username,
                       console_sessions.c.ended_at.is_(None))
                .order_by(console_sessions.c.created_at)).mappings().all()
        return [_session(dict(r)) for r in rows]


def _session(row: Mapping[str, Any], sid: str | None = None) -> ConsoleSession:
    created = _aware(row["created_at"])
    return ConsoleSession(
        id=sid, id_hash=row["id_hash"], username=row["username"],
        roles=tuple(r for r in str(row["roles"]).split(",") if r),
        credential_stamp=row["credential_stamp"], created_at=created,
        last_seen_at=_aware(row["last_seen_at"]),
        ended_at=_aware(row["ended_at"]) if row["ended_at"] else None,
        end_reason=row["end_reason"], client_address=row["client_address"])


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- failed logins ------------------------------------------------------------------------

SCOPE_PAIR = "user_address"  # one username from one address (not written; cleared only)
SCOPE_USER = "user"  # one username from all addresses: the small limit
SCOPE_ADDRESS = "address"  # one address, all usernames: the wide limit


@dataclass(frozen=True)
class Lock:
    scope: str
    key: str
    username: str | None
    client_address: str | None
    failures: int
    locked_until: datetime


class LoginFailures:
    """Failed-login counters and locks in the database.

    A failure counts for the username, whatever the address (`max_failures`: a lock that
    a made-up address cannot get round), and for the address, whatever the username
    (`max_failures_wide`; an unknown address counts only for the username: no shared
    "unknown" bucket). A counter that reaches its limit within `lock_seconds` locks its key
    until `locked_until`; nothing but that time or an administrator's `unlock` lifts a lock
    (a successful login cannot happen while locked, and it clears only the username's
    counters, never the address's). Rows of scope `user_address` (one username from one
    address) are not written; `success` and `unlock` clear those a database still holds.
    """

    def __init__(self, db: Database, *, max_failures: int = 5, max_failures_wide: int = 20,
                 lock_seconds: float = 900.0, clock: Clock = _utcnow) -> None:
        self._db = db
        self.max_failures = max_failures
        self.max_failures_wide = max_failures_wide
        self.lock_seconds = lock_seconds
        self._clock = clock

    def __repr__(self) -> str:
        return f"LoginFailures({self._db!r}, max_failures={self.max_failures})"

    def _keys(self, username: str, address: str | None) -> list[tuple[str, str, int]]:
        keys = [(SCOPE_USER, username, self.max_failures)]
        if address and address != UNKNOWN_ADDRESS:
            keys.append((SCOPE_ADDRESS, address, self.max_failures_wide))
        return keys

    def locked_for(self, username: str, address: str | None) -> float:
        """Seconds until this username may try from this address (0 when not locked)."""
        now = self._clock()
        conds = [and_(login_failures.c.scope == s, login_failures.c.key == k)
                 for s, k, _ in self._keys(username, address)]
        with self._db.read() as conn:
            rows = conn.execute(select(login_failures.c.locked_until)
                                .where(or_(*conds), login_failures.c.locked_until.is_not(None))
                                ).scalars().all()
        waits = [(_aware(u) - now).total_seconds() for u in rows]
        return max([0.0, *waits])

    def failure(self, username: str, address: str | None) -> int:
        """Count a failure; returns the attempts left for this username before a lock (0: it
        is locked now)."""
        LOGIN_FAILURES.inc()
        now = self._clock()
        window = timedelta(seconds=self.lock_seconds)
        left = self.max_failures
        with self._db.write() as conn:
            for scope, key, limit in self._keys(username, address):
                cond = and_(login_failures.c.scope == scope, login_failures.c.key == key)
                row = conn.execute(select(login_failures).where(cond).with_for_update()
                                   ).mappings().first()
                if row is None:
                    try:
                        with conn.begin_nested():
                            conn.execute(insert(login_failures).values(
                                scope=scope, key=key[:200], failures=0, window_start=now,
                                locked_until=None,
                                username=username if scope != SCOPE_ADDRESS else None,
                                client_address=(address or None) and address[:64]))
                    except IntegrityError:  # another replica inserted it meanwhile
                        pass
                    row = conn.execute(select(login_failures).where(cond).with_for_update()
                                       ).mappings().one()
                count, start = int(row["failures"]), _aware(row["window_start"])
                locked_until = row["locked_until"]
                if locked_until is not None and _aware(locked_until) > now:
                    values: dict[str, Any] = {"failures": count + 1}  # the lock keeps its end time
                else:
                    if now - start >= window or locked_until is not None:
                        count, start = 0, now
                    count += 1
                    values = {"failures": count, "window_start": start, "locked_until":
                              now + window if count >= limit else None}
                conn.execute(update(login_failures).where(cond).values(**values))
                if scope == SCOPE_USER:
                    left = max(0, limit - count)
        return left

    def success(self, username: str) -> None:
        """A login succeeded (never while locked): forget the username's past failures."""
        with self._db.write() as conn:
            conn.execute(delete(login_failures).where(
                login_failures.c.username == username,
                login_failures.c.scope.in_((SCOPE_PAIR, SCOPE_USER)),
                or_(login_failures.c.locked_until.is_(None),
                    login_failures.c.locked_until <= self._clock())))

    def locks(self) -> list[Lock]:
        """The locks in force, newest end first."""
        now = self._clock()
        with self._db.read() as conn:
            rows = conn.execute(select(login_failures)
                                .where(login_failures.c.locked_until > now)
                                .order_by(login_failures.c.locked_until.desc())).mappings().all()
        return [Lock(r["scope"], r["key"], r["username"], r["client_address"], r["failures"],
                     _aware(r["locked_until"])) for r in rows]

    def unlock(self, username: str | None = None, address: str | None = None) -> int:
        """Lift the locks (and counters) of a username (from every address) or of an
        address; returns how many were in force."""
        if not username and not address:
            raise ValueError("unlock needs a username or an address")
        now = self._clock()
        if username:
            cond = and_(login_failures.c.username == username,
                        login_failures.c.scope.in_((SCOPE_PAIR, SCOPE_USER)))
        else:
            cond = and_(login_failures.c.scope == SCOPE_ADDRESS,
                        login_failures.c.key == address)
        with self._db.write() as conn:
            active = conn.execute(select(login_failures.c.key).where(
                cond, login_failures.c.locked_until > now)).scalars().all()
            conn.execute(delete(login_failures).where(cond))
        return len(active)
