"""Each public token is exchanged once, whichever process, replica or thread receives it: the
one mechanism of the console (services/operations/connect.py) and of the customer backend
(backend/exchange.py), over table `backend_exchanges`.

The first request for a token inserts a `pending` row (keyed by the token's SHA-256; the
token itself is never stored) and runs the exchange; a concurrent request for the same token
finds the row and waits for its outcome, then answers the same: the same grant (`Exchanged`
with `first=False`: a double click answers the grant the first click created, not an error),
the same remembered refusal, or, for another customer, TOKEN_ALREADY_USED (`ExchangeRefused`).
A failure that is not a refusal (Kryptos unreachable, 5xx) deletes the row, so the customer
may retry; Kryptos itself then says whether the token was consumed. A `pending` row older than
`stale_s` (a crashed process) is refused as EXCHANGE_UNFINISHED. Rows are kept one day: a
public token is long expired by then."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from services.store.db import Database
from services.store.schema import backend_exchanges

KEEP = timedelta(days=1)
POLL_S = 0.05


def token_digest(public_token: str) -> str:
    return hashlib.sha256(public_token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Refusal:
    """A remembered client-side outcome (a 4xx): every later request for the token gets it."""

    status: int
    code: str
    message: str


class ExchangeRefused(Exception):
    """The token's exchange was refused (now or remembered from an earlier request)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


class ExchangeBusy(Exception):
    """Another request's exchange of the same token did not finish within the wait."""


@dataclass(frozen=True)
class Exchanged:
    grant_id: str
    #: True: this call ran the exchange; False: the grant an earlier exchange created.
    first: bool


def _no_refusal(exc: BaseException) -> Refusal | None:
    return None


class ExchangeOnce:
    def __init__(self, db: Database, *, wait_s: float = 45.0, stale_s: float = 120.0) -> None:
        self._db = db
        self.wait_s = wait_s
        self.stale = timedelta(seconds=stale_s)

    def __repr__(self) -> str:
        return "ExchangeOnce()"

    def run(self, customer_ref: str, public_token: str, exchange: Callable[[], str], *,
            refusal: Callable[[BaseException], Refusal | None] = _no_refusal,
            any_customer: bool = False) -> Exchanged:
        """The grant for this token: from `exchange()` (the first caller) or remembered.
        `refusal(exc)`: whether an error of `exchange()` is to be remembered (a Refusal) or
        forgotten (None: the next request tries again). `any_customer`: answer the grant to
        any customer (the console's staff act for all), not only to the one it was made for.
        Raises `ExchangeRefused`, `ExchangeBusy`, or what `exchange()` raised."""
        digest = token_digest(public_token)
        deadline = time.monotonic() + self.wait_s
        while True:
            if self._claim(digest, customer_ref):
                return Exchanged(self._first(digest, exchange, refusal), True)
            grant_id = self._outcome(digest, customer_ref, any_customer)
            if grant_id is not None:
                return Exchanged(grant_id, False)
            if time.monotonic() > deadline:
                raise ExchangeBusy("The same connection is still being completed; try again.")
            time.sleep(POLL_S)

    def grant_for(self, public_token: str) -> str | None:
        """The grant this public token's exchange created, or None."""
        with self._db.read() as conn:
            return conn.execute(
                select(backend_exchanges.c.grant_id).where(
                    backend_exchanges.c.token_hash == token_digest(public_token),
                    backend_exchanges.c.state == "done")
            ).scalar_one_or_none()

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

    def _first(self, digest: str, exchange: Callable[[], str],
               refusal: Callable[[BaseException], Refusal | None]) -> str:
        try:
            grant_id = exchange()
        except BaseException as exc:
            refused = refusal(exc)
            if refused is not None:
                self._finish(digest, "failed", refused=refused)
            else:
                self._forget(digest)
            raise
        self._finish(digest, "done", grant_id=grant_id)
        return grant_id

    def _finish(self, digest: str, state: str, *, grant_id: str | None = None,
                refused: Refusal | None = None) -> None:
        with self._db.write() as conn:
            conn.execute(update(backend_exchanges)
                         .where(backend_exchanges.c.token_hash == digest)
                         .values(state=state, grant_id=grant_id, updated_at=datetime.now(UTC),
                                 error_status=refused.status if refused else None,
                                 error_code=refused.code if refused else None,
                                 error_message=refused.message if refused else None))

    def _forget(self, digest: str) -> None:
        with self._db.write() as conn:
            conn.execute(delete(backend_exchanges)
                         .where(backend_exchanges.c.token_hash == digest))

    def _outcome(self, digest: str, customer_ref: str, any_customer: bool) -> str | None:
        """The remembered grant id; raises the remembered refusal; None while pending."""
        with self._db.read() as conn:
            row = conn.execute(select(backend_exchanges)
                               .where(backend_exchanges.c.token_hash == digest)).first()
        if row is None:  # forgotten after a transient failure: claim it again
            return None
        if row.state != "pending" and row.customer_ref != customer_ref and not any_customer:
            raise ExchangeRefused(Refusal(409, "TOKEN_ALREADY_USED",
                                          "This public token was already used; connect again."))
        if row.state == "done":
            return str(row.grant_id)
        if row.state == "failed":
            raise ExchangeRefused(Refusal(int(row.error_status), str(row.error_code),
                                          str(row.error_message)))
        if datetime.now(UTC) - row.created_at > self.stale:
            raise ExchangeRefused(Refusal(409, "EXCHANGE_UNFINISHED",
                                          "An earlier attempt with this public token did not "
                                          "finish; connect again."))
        return None


__all__ = ["ExchangeBusy", "ExchangeOnce", "ExchangeRefused", "Exchanged", "Refusal",
           "token_digest"]
