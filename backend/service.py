"""What each customer endpoint does, without HTTP: `CustomerService`.

Each method takes the authenticated customer reference, audits itself through
`backend.audit.audited`, and raises `ApiError` for every failure. `admit(ref)` is the
per-customer rate limit that the HTTP layer runs before every customer endpoint (with
`link_token=True` before create-link-token: its own limit too, in the same transaction)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from backend import audit as A
from backend.errors import ApiError, from_kryptos, no_grant, rate_limited
from backend.exchange import ExchangeOnce
from backend.models import HoldingsAnswer, LinkTokenAnswer, SessionAnswer, Success
from backend.ratelimit import RateLimiter, customer_bucket, take
from backend.shapes import holdings_answer, session_answer
from services.kryptos.client import KryptosClient
from services.kryptos.errors import InvalidTokenError, KryptosError, NotFoundError
from services.store import AuditAction, AuditTrail, StoreError, TokenVault, VaultEntry
from services.store.readmodel import ReadModel

log = logging.getLogger("backend")

T = TypeVar("T")
#: Kryptos answers for a grant that is already gone: a disconnect then only records it.
GONE_CODES = frozenset({"INVALID_GRANT", "GRANT_NOT_FOUND"})


def _kryptos(call: Callable[[], T], *, token_conflict: bool = False) -> T:
    try:
        return call()
    except KryptosError as exc:
        raise from_kryptos(exc, token_conflict=token_conflict) from None


def _store_failed(what: str) -> ApiError:
    return ApiError(500, "STORE_ERROR", f"The backend could not {what}; try again later.")


@dataclass
class CustomerService:
    client: KryptosClient
    vault: TokenVault
    trail: AuditTrail
    limiter: RateLimiter
    exchanges: ExchangeOnce
    #: Called with (Kryptos user id, grant id) once a new grant's user is known.
    on_user_learned: Callable[[str, str], Any] | None = None
    #: The console's read model: a new grant shows there at once, a disconnect too.
    readmodel: ReadModel | None = None
    #: Calls to any customer endpoint per customer (see `admit`); None: no such limit.
    customer_limiter: RateLimiter | None = None

    def admit(self, ref: str, request_id: str | None = None, *,
              link_token: bool = False) -> None:
        """Every customer endpoint starts here: 429 RATE_LIMITED (with Retry-After) once the
        customer (its reference compared case-insensitively) has used its calls of the
        window. Not audited: an authenticated flood must not grow the audit chain.

        `link_token`: then the link-token limit (`limiter`), in the same transaction; its
        refusal is audited (`denied`), as a refused request for a link token."""
        checks: list[tuple[RateLimiter | None, str]] = [
            (self.customer_limiter, customer_bucket("customer", ref))]
        if link_token:
            checks.append((self.limiter, customer_bucket("link_token", ref)))
        full, wait = take(self.limiter.db, checks)
        if full < 0:
            return
        err = rate_limited(wait)
        if full == 1:
            A.denied(self.trail, ref, A.A_LINK, err, request_id=request_id,
                     params={"customer_ref": ref})
        raise err

    def _show(self, grant_id: str, *, revoked: bool = False) -> None:
        """Best effort (the customer's call succeeded; the worker's next sync catches up)."""
        if self.readmodel is None:
            return
        try:
            if revoked:
                self.readmodel.mark_revoked(grant_id)
            else:
                entry = self.vault.get(grant_id)
                if entry is not None:
                    self.readmodel.apply_grant(None, entry)
        except (StoreError, SQLAlchemyError) as exc:
            log.warning("read model not updated for %s: %s", grant_id, type(exc).__name__)

    def _run(self, ref: str, action: AuditAction, body: Callable[[], tuple[T, Any]], *,
             request_id: str | None, read: bool = False, target_type: str = "customer",
             target_id: str | None = None, params: dict[str, Any] | None = None) -> T:
        return A.audited(self.trail, ref, action, body, target_type=target_type,
                         target_id=target_id or ref, params={"customer_ref": ref, **(params or {})},
                         request_id=request_id, read=read)

    def _stored(self, ref: str) -> tuple[VaultEntry, str] | None:
        try:
            return self.vault.reveal_for_customer(ref)
        except StoreError:
            log.exception("vault read failed")
            raise _store_failed("read the stored connection") from None

    # --- endpoints ------------------------------------------------------------------------

    def create_link_token(self, ref: str, request_id: str | None = None) -> LinkTokenAnswer:
        """A link token (the caller has run `admit(ref, link_token=True)`)."""

        def body() -> tuple[LinkTokenAnswer, dict[str, Any]]:
            stored = self._stored(ref)
            token = stored[1] if stored else None
            dropped = None
            try:
                lt = self.client.create_link_token(access_token=token)
            except InvalidTokenError as exc:
                if stored is None:
                    raise from_kryptos(exc) from None
                # The stored token no longer works (revoked elsewhere): a fresh connection.
                dropped = stored[0].grant_id
                self.vault.mark_revoked(dropped)
                stored, token = None, None
                lt = _kryptos(self.client.create_link_token)
            except KryptosError as exc:
                raise from_kryptos(exc) from None
            after = {"resumed": token is not None,
                     "grant_id": stored[0].grant_id if stored else None,
                     "stale_grant_marked_revoked": dropped}
            return LinkTokenAnswer(link_token=lt.link_token, isAuthorized=token is not None), after

        return self._run(ref, A.A_LINK, body, request_id=request_id)

    def exchange_token(self, ref: str, public: str | None, request_id: str | None = None
                       ) -> Success:
        """`public`: a validated public token (`ExchangeRequest`), or None."""

        def body() -> tuple[Success, dict[str, Any]]:
            if public is None:  # a returning customer's widget run: nothing to exchange
                return Success(), {"exchanged": False}
            gid = self.exchanges.run(ref, public, lambda: self._exchange(ref, public))
            return Success(), {"exchanged": True, "grant_id": gid}

        return self._run(ref, A.A_EXCHANGE, body, request_id=request_id,
                         params={"returning": public is None})

    def _exchange(self, ref: str, public: str) -> str:
        ex = _kryptos(lambda: self.client.exchange_public_token(public),
                      token_conflict=True)
        try:
            self.vault.put_for_customer(ex.grant_id, ex.access_token, ref,
                                        workspace_id=ex.workspace_id)
        except StoreError:
            log.exception("vault write failed for a new grant")
            raise _store_failed("store the new connection") from None
        self._learn(ex.grant_id, ex.access_token)
        return ex.grant_id

    def _learn(self, grant_id: str, token: str) -> None:
        """Best effort: the Kryptos user id (webhooks name users) and Guest or Linked."""
        user = None
        try:
            info = self.client.get_userinfo(token)
            self.vault.update(grant_id, kryptos_user_id=info.sub,
                              user_kind="guest" if info.is_guest else "linked")
            user = info.sub
        except (KryptosError, StoreError) as exc:
            log.info("exchange: user info of %s unreadable: %s", grant_id, type(exc).__name__)
        if user is None:
            try:
                session = self.client.check_session(token)
                if session.user_id:
                    self.vault.update(grant_id, kryptos_user_id=session.user_id)
                    user = session.user_id
            except (KryptosError, StoreError) as exc:
                log.info("exchange: session of %s unreadable: %s", grant_id,
                         type(exc).__name__)
        self._show(grant_id)  # before the hub ties earlier webhooks to it
        if user and self.on_user_learned is not None:
            try:
                self.on_user_learned(user, grant_id)
            except (StoreError, SQLAlchemyError) as exc:  # the exchange itself succeeded
                log.warning("exchange: earlier webhooks of %s not tied to it: %s", grant_id,
                            type(exc).__name__)

    def session(self, ref: str, request_id: str | None = None) -> SessionAnswer:
        def body() -> tuple[SessionAnswer, dict[str, Any]]:
            stored = self._stored(ref)
            if stored is None:
                return SessionAnswer(has_valid_session=False, reason="no_token"), {"stored": False}
            answer = session_answer(_kryptos(lambda: self.client.check_session(stored[1])))
            return answer, {"has_valid_session": answer.has_valid_session}

        return self._run(ref, A.A_SESSION, body, request_id=request_id, read=True)

    def disconnect(self, ref: str, request_id: str | None = None) -> Success:
        entry = self.vault.for_customer(ref)

        def body() -> tuple[Success, dict[str, Any]]:
            if entry is None:
                raise no_grant()
            already = False
            try:
                self.client.revoke_grant(entry.grant_id)
            except (InvalidTokenError, NotFoundError) as exc:
                if exc.code not in GONE_CODES:
                    raise from_kryptos(exc) from None
                already = True
            except KryptosError as exc:
                raise from_kryptos(exc) from None
            self.vault.mark_revoked(entry.grant_id)
            self._show(entry.grant_id, revoked=True)
            return Success(), {"revoked": True, "already_revoked": already}

        return self._run(ref, A.A_DISCONNECT, body, request_id=request_id, target_type="grant",
                         target_id=entry.grant_id if entry else None)

    def holdings(self, ref: str, request_id: str | None = None) -> HoldingsAnswer:
        def body() -> tuple[HoldingsAnswer, dict[str, Any]]:
            stored = self._stored(ref)
            if stored is None:
                raise no_grant()
            h = _kryptos(lambda: self.client.get_holdings(stored[1]), token_conflict=True)
            return holdings_answer(h), {"grant_id": stored[0].grant_id, "rows": len(h.holdings)}

        return self._run(ref, A.A_HOLDINGS, body, request_id=request_id, read=True)

