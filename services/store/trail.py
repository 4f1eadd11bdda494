"""The one audit trail runner: `requested`, the change, then `succeeded` or `failed`.

Used by the console's use cases (`services/operations/context.py`) and by the operator's
command-line tools (`services/store/cli_audit.py`). See docs/architecture.md, "How a use case runs".
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError

from services.logs import log_context
from services.settings import ConfigError
from services.store.audit import AuditEvent, NewAuditEvent
from services.store.errors import StoreError
from services.store.journal import AuditJournal, ReplayTarget

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What a change returns: (value for the caller, `before`, `after` for the audit row).
Outcome = tuple[T, Mapping[str, Any] | None, Mapping[str, Any] | None]

_NOT_MADE = "so nothing was changed: a change that cannot be recorded is not made."
#: Pauses between attempts to write an outcome the store refused (locked, unreachable).
RETRY_DELAYS = (0.05, 0.2, 0.5)
#: No retry starts this many seconds after the first attempt (SQLite's busy handler may
#: already have waited its timeout on a locked database): the journal takes the event.
RETRY_WINDOW = 5.0
#: What a page says when a change was made but its record waits in the journal.
RECORD_PENDING = (
    "The change was made. Its audit record is pending: the audit store is unavailable, so "
    "the record was kept in the console's local journal and will be written to the audit "
    "log when the store is back."
)


@dataclass
class PendingRecords:
    """Correlation ids of the events journalled (not yet in the audit log) while watched."""

    correlation_ids: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.correlation_ids)


_watchers: ContextVar[tuple[PendingRecords, ...]] = ContextVar("audit_pending", default=())


@contextmanager
def watch_pending() -> Iterator[PendingRecords]:
    """Collect the events journalled in this thread (context) while the block runs, e.g.
    `with watch_pending() as pending: ops.grants.revoke_grant(...)`; `if pending: ...`."""
    rec = PendingRecords()
    token = _watchers.set((*_watchers.get(), rec))
    try:
        yield rec
    finally:
        _watchers.reset(token)


def store_unavailable(exc: BaseException) -> bool:
    """The store could not take a write (locked, down, disk): worth a retry, then the
    journal. A refused event (`StoreError`, a constraint) is not."""
    if isinstance(exc, IntegrityError):
        return False
    return isinstance(exc, DBAPIError | OSError)


class AuditSink(Protocol):
    """What the trail needs of an audit log (`AuditLog`, or a test's failing wrapper)."""

    def append(self, event: NewAuditEvent, *, wait_for_disk: bool = True) -> AuditEvent: ...


class AuditUnavailable(Exception):
    """The audit log cannot record a change that must be recorded; `user_message` says why
    and whether the change was made (`change_made`). Never holds a secret."""

    def __init__(self, user_message: str, *, change_made: bool = False) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.change_made = change_made


@dataclass
class Failure:
    """How a failed change is recorded: error code and message (never an exception's raw
    text), the API's request id, and the exception to raise instead of the original one."""

    code: str
    message: str
    request_id: str | None = None
    raise_instead: BaseException | None = None
    outcome: str = "failed"  # or "skipped": refused before any call, nothing to do


def describe_failure(exc: BaseException) -> Failure:
    """The default: the exception's own `code`/`user_message`, else a generic one."""
    if isinstance(exc, KeyboardInterrupt):
        return Failure("INTERRUPTED",
                       "Interrupted before it finished; part of it may have been done.")
    code = getattr(exc, "code", None)
    if not isinstance(code, str) or not code:
        if isinstance(exc, StoreError):
            code = "STORE_ERROR"
        elif isinstance(exc, ConfigError):
            code = "CONFIG_ERROR"
        else:
            code = "INTERNAL"
    message = getattr(exc, "user_message", None)
    if not isinstance(message, str) or not message:
        message = f"An unexpected error ({type(exc).__name__}); see the command's output."
    return Failure(code, message, getattr(exc, "request_id", None))


def _new_cid() -> str:
    """A correlation id, in the store's own format (uuid4 hex)."""
    return uuid.uuid4().hex


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def why_unusable(exc: BaseException) -> str:
    """A short, secret-free description of why the audit log could not be used."""
    if isinstance(exc, (StoreError, ConfigError)):
        return exc.user_message.rstrip(".")
    orig = getattr(exc, "orig", None)  # a SQLAlchemy DBAPIError: the driver's own error
    if orig is not None:
        lines = str(orig).strip().splitlines()
        return f"{type(orig).__name__}: {lines[0]}" if lines else type(orig).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__  # its text might hold the database URL


def build_event(actor_username: str, actor_roles: Iterable[str], action: str, outcome: str,
                correlation_id: str | None = None, **fields: Any) -> NewAuditEvent:
    """An event (a fresh correlation id when none is given; the target id cut to 200)."""
    if fields.get("target_id") is not None:
        fields["target_id"] = str(fields["target_id"])[:200]
    return NewAuditEvent(
        actor_username=actor_username, actor_roles=tuple(sorted(actor_roles)), action=action,
        outcome=outcome, correlation_id=correlation_id or _new_cid(), **fields,
    )


class AuditTrail:
    """Writes audit events to one audit log; `run` wraps a change in its event pair.

    `outcomes_wait_for_disk=False`: the outcome of `run` (and a plain `event`) commits
    without waiting for the disk (`AuditLog.append(wait_for_disk=False)`); `requested`
    always waits, so a change is on disk as asked for before it is made. Such an outcome
    survives a crash of the process; a crash of the machine may lose it, leaving the
    change `requested` without an outcome, as when the process dies during the change."""

    def __init__(self, log: AuditSink, *, secrets: tuple[str, ...] = (),
                 journal: AuditJournal | None = None,
                 retry_delays: tuple[float, ...] = RETRY_DELAYS,
                 outcomes_wait_for_disk: bool = True) -> None:
        self.log = log
        self._secrets = secrets
        self.journal = journal
        self.retry_delays = retry_delays
        self.outcomes_wait_for_disk = outcomes_wait_for_disk

    def __repr__(self) -> str:
        return f"AuditTrail({self.log!r})"

    def event(
        self,
        actor_username: str,
        actor_roles: Iterable[str],
        action: str,
        outcome: str,
        correlation_id: str | None = None,
        *,
        durable: bool = False,
        **fields: Any,
    ) -> AuditEvent | None:
        """Append one event (a fresh correlation id when none is given). `durable`: retry
        a store that is unavailable, then keep the event in the journal (returns None)."""
        event = build_event(actor_username, actor_roles, action, outcome, correlation_id,
                            **fields)
        return self.durable_append(event) if durable else self._append(event)

    def _append(self, event: NewAuditEvent) -> AuditEvent:
        """One append; an outcome waits for the disk unless this trail says otherwise
        (`requested` always does)."""
        if self.outcomes_wait_for_disk or event.outcome == "requested":
            return self.log.append(event)
        return self.log.append(event, wait_for_disk=False)

    def _append_retrying(self, event: NewAuditEvent) -> AuditEvent:
        """Append, retrying (no journal) while the store is unavailable: a `requested` event
        must be in the log before the change is made."""
        start = time.monotonic()
        for delay in self.retry_delays:
            try:
                return self.log.append(event)
            except Exception as exc:
                if not store_unavailable(exc) or time.monotonic() - start + delay > RETRY_WINDOW:
                    raise
                time.sleep(delay)
        return self.log.append(event)

    def durable_append(self, event: NewAuditEvent) -> AuditEvent | None:
        """Append, retrying while the store is unavailable; then journal the event (returns
        None). Raises when there is no journal or it cannot be written either."""
        start = time.monotonic()
        for delay in (*self.retry_delays, None):
            try:
                stored = self._append(event)
            except Exception as exc:
                if not store_unavailable(exc):
                    raise
                if delay is None or time.monotonic() - start + delay > RETRY_WINDOW:
                    if self.journal is None:
                        raise
                    self._journal(event, exc)
                    return None
                time.sleep(delay)
            else:
                self._replay_soon()
                return stored
        raise AssertionError("unreachable")

    def _replay_soon(self) -> None:
        """The store took a write: replay what waits in the journal (in the background)."""
        journal = self.journal
        if journal is None or not journal.has_pending() or not isinstance(self.log, ReplayTarget):
            return
        threading.Thread(target=journal.replay, args=(self.log,), name="journal-replay",
                         daemon=True).start()

    def _journal(self, event: NewAuditEvent, exc: BaseException) -> None:
        assert self.journal is not None
        try:
            self.journal.add(event)
        except OSError:
            log.error("audit journal %s cannot be written either", self.journal.path)
            raise exc from None
        log.warning("audit store unavailable (%s): %s %s kept in the journal",
                    self._reason(exc), event.action, event.outcome)
        for rec in _watchers.get():
            rec.correlation_ids.append(event.correlation_id or "")

    def run(
        self,
        actor_username: str,
        actor_roles: Iterable[str],
        action: str,
        body: Callable[[], Outcome[T]],
        *,
        target_type: str | None = None,
        target_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        reason: str | None = None,
        ticket: str | None = None,
        correlation_id: str | None = None,
        require_record: bool = False,
        describe: Callable[[BaseException], Failure] = describe_failure,
        target_of: Callable[[T], str | None] | None = None,
    ) -> T:
        """`requested` -> body() -> `succeeded`(before, after) | `failed`(code, message).

        `body` makes the change and returns (value, before, after); on an exception,
        `describe` says how to record it and what to raise. `require_record`: a change that
        cannot be recorded is not made (`AuditUnavailable` before `body`), and a failure to
        record the outcome raises `AuditUnavailable` (with `change_made` after a success).
        Without it, a failure to write an event propagates as it is. `target_of`: the
        target id of the `succeeded` event, from the value (a grant known only afterwards)."""
        cid = correlation_id or _new_cid()
        roles = tuple(actor_roles)
        common: dict[str, Any] = dict(target_type=target_type, target_id=target_id,
                                      reason=reason, ticket=ticket)
        # Every line logged while the use case runs names its correlation id.
        with log_context(correlation_id=cid):
            return self._run(actor_username, roles, action, body, cid, common, params,
                             require_record, describe, target_of)

    def _run(self, actor_username: str, roles: tuple[str, ...], action: str,
             body: Callable[[], Outcome[T]], cid: str, common: dict[str, Any],
             params: Mapping[str, Any] | None, require_record: bool,
             describe: Callable[[BaseException], Failure],
             target_of: Callable[[T], str | None] | None) -> T:
        def write(outcome: str, **fields: Any) -> None:
            # Outcomes are durable: the change (or its failure) happened whatever the store.
            self.event(actor_username, roles, action, outcome, cid,
                       durable=outcome != "requested", **fields, **common)

        try:
            self._append_retrying(build_event(
                actor_username, roles, action, "requested", cid,
                params=dict(params) if params else None, **common))
        except Exception as exc:
            if not require_record:
                raise
            raise AuditUnavailable(
                f"The audit log cannot be written ({self._reason(exc)}), {_NOT_MADE}"
            ) from None
        try:
            value, before, after = body()
        except BaseException as exc:
            failure = describe(exc)
            self._record_failure(write, failure, cid, require_record)
            if failure.raise_instead is not None:
                raise failure.raise_instead from None
            raise
        if target_of is not None:
            common["target_id"] = target_of(value) or common["target_id"]
        try:
            write("succeeded", before=dict(before) if before is not None else None,
                  after=dict(after) if after is not None else None)
        except Exception as exc:
            if not require_record and not store_unavailable(exc):
                raise
            raise AuditUnavailable(
                f"The change WAS made, but the audit log could not record its outcome "
                f"({self._reason(exc)}): it holds the request (correlation id {cid}) without "
                "an outcome. Tell whoever audits the console.",
                change_made=True,
            ) from None
        return value

    def _record_failure(self, write: Callable[..., None], failure: Failure, cid: str,
                        require_record: bool) -> None:
        try:
            write(failure.outcome, error_code=failure.code, error_message=failure.message,
                  request_id=failure.request_id)
        except Exception as exc:
            if not require_record:
                raise
            raise AuditUnavailable(
                f"{failure.message} The audit log could not record this failure "
                f"({self._reason(exc)}): it holds the request (correlation id "
                f"{cid}) without an outcome."
            ) from None

    def _reason(self, exc: BaseException) -> str:
        return scrub(why_unusable(exc), self._secrets)


__all__ = [
    "RECORD_PENDING",
    "RETRY_DELAYS",
    "RETRY_WINDOW",
    "AuditSink",
    "PendingRecords",
    "AuditTrail",
    "AuditUnavailable",
    "Failure",
    "Outcome",
    "describe_failure",
    "scrub",
    "store_unavailable",
    "watch_pending",
    "why_unusable",
]
