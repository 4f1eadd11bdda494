"""Each public token is exchanged once, whichever replica or thread receives it.

The first request for a token inserts a `pending` row in `backend_exchanges` (keyed by the
token's SHA-256; the token itself is never stored); a concurrent request for the same token
finds the row and waits for its outcome, then answers the same: success with the same grant
for the same customer, the same 4xx error, or 409 TOKEN_ALREADY_USED for another customer.
A transient failure (Kryptos unreachable, 5xx) deletes the row, so the customer may retry;
Kryptos itself then says whether the token was consumed."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from backend.errors import ApiError
from services.store import Database
from services.store.schema import backend_exchanges

KEEP = timedelta(days=1)
POLL_S = 0.05


def token_hash(public_token: str) -> str:
    return hashlib.sha256(public_token.encode("utf-8")).hexdigest()


class ExchangeOnce:
    def __init__(self, db: Database, *, wait_s: float = 45.0, stale_s: float = 120.0) -> None:
        self._db = db
        self.wait_s = wait_s
        self.stale = timedelta(seconds=stale_s)

    def run(self, customer_ref: str, public_token: str, exchange: Callable[[], str]) -> str:
        """The grant id for this token: from `exchange()` (first caller) or remembered."""
        digest = token_hash(public_token)
        deadline = time.monotonic() + self.wait_s
        while True:
            if self._claim(digest, customer_ref):
                return self._first(digest, exchange)
            outcome = self._outcome(digest, customer_ref)
            if outcome is not None:
                return outcome
            if time.monotonic() > deadline:
                raise ApiError(503, "UPSTREAM_UNAVAILABLE",
                               "The same connection is still being completed; try again.")
            time.sleep(POLL_S)

    def _claim(self, digest: str, customer_ref: str) -> bool:
        now = datetime.now(UTC)
        try:
            with self._db.write() as conn:
                conn.execute(delete(backend_exchanges)
                             .where(backend_exchanges.c.created_at < now - KEEP))
                conn.execute(insert(backend_exchanges).values(
                    token_hash=digest, customer_ref=customer_ref, state="pending",
                    created_at=now, updated_at=now))
            return True
        except IntegrityError:
            return False

    def _first(self, digest: str, exchange: Callable[[], str]) -> str:
        try:
            grant_id = exchange()
        except ApiError as err:
            if 400 <= err.status < 500:
                self._finish(digest, "failed", error=err)
            else:
                self._forget(digest)
            raise
        except BaseException:
            self._forget(digest)
            raise
        self._finish(digest, "done", grant_id=grant_id)
        return grant_id

    def _finish(self, digest: str, state: str, *, grant_id: str | None = None,
                error: ApiError | None = None) -> None:
        with self._db.write() as conn:
            conn.execute(update(backend_exchanges).where(backend_exchanges.c.token_hash == digest)
                         .values(state=state, grant_id=grant_id, updated_at=datetime.now(UTC),
                                 error_status=error.status if error else None,
                                 error_code=error.code if error else None,
                                 error_message=error.message if error else None))

    def _forget(self, digest: str) -> None:
        with self._db.write() as conn:
            conn.execute(delete(backend_exchanges).where(backend_exchanges.c.token_hash == digest))

    def _outcome(self, digest: str, customer_ref: str) -> str | None:
        """The remembered grant id; raises the remembered error; None while pending."""
        with self._db.read() as conn:
            row = conn.execute(select(backend_exchanges)
                               .where(backend_exchanges.c.token_hash == digest)).first()
        if row is None:  # forgotten after a transient failure: claim it again
            return None
        if row.customer_ref != customer_ref and row.state != "pending":
            raise ApiError(409, "TOKEN_ALREADY_USED",
                           "This public token was already used; connect again.")
        if row.state == "done":
            return str(row.grant_id)
        if row.state == "failed":
            raise ApiError(int(row.error_status), str(row.error_code), str(row.error_message))
        if datetime.now(UTC) - row.created_at > self.stale:
            raise ApiError(409, "EXCHANGE_UNFINISHED",
                           "An earlier attempt with this public token did not finish; "
                           "connect again.")
        return None
