"""Each public token is exchanged once: the store's `ExchangeOnce` (shared with the console,
services/store/exchanges.py) with the backend's errors. A 4xx `ApiError` of the exchange is
remembered (the same answer for every later request with the token); anything else is
forgotten, so the customer may retry."""

from __future__ import annotations

from collections.abc import Callable

from backend.errors import ApiError
from services.store import Database
from services.store.exchanges import ExchangeBusy, ExchangeRefused, Refusal
from services.store.exchanges import ExchangeOnce as StoreExchangeOnce


def _refusal(exc: BaseException) -> Refusal | None:
    if isinstance(exc, ApiError) and 400 <= exc.status < 500:
        return Refusal(exc.status, exc.code, exc.message)
    return None


class ExchangeOnce:
    def __init__(self, db: Database, *, wait_s: float = 45.0, stale_s: float = 120.0) -> None:
        self._once = StoreExchangeOnce(db, wait_s=wait_s, stale_s=stale_s)

    def run(self, customer_ref: str, public_token: str, exchange: Callable[[], str]) -> str:
        """The grant id for this token: from `exchange()` (first caller) or remembered; the
        refusals as `ApiError` (409 TOKEN_ALREADY_USED for another customer's token)."""
        try:
            return self._once.run(customer_ref, public_token, exchange,
                                  refusal=_refusal).grant_id
        except ExchangeRefused as exc:
            r = exc.refusal
            raise ApiError(r.status, r.code, r.message) from None
        except ExchangeBusy:
            raise ApiError(503, "UPSTREAM_UNAVAILABLE",
                           "The same connection is still being completed; try again.") from None
