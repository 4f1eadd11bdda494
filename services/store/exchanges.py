"""Public tokens already exchanged: which grant each one created.

A public token is good for one exchange; a second click on "Exchange" must answer the grant
the first one created, not an error (following "reconnect" makes a duplicate grant). Only
the token's SHA-256 is kept, never the token."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from services.store.db import Database
from services.store.schema import token_exchanges


def token_digest(public_token: str) -> str:
    return hashlib.sha256(public_token.encode("utf-8")).hexdigest()


class ExchangeLedger:
    """public token (by digest) -> the grant its exchange created."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return "ExchangeLedger()"

    def grant_for(self, public_token: str) -> str | None:
        """The grant this public token's exchange created, or None."""
        with self._db.read() as conn:
            return conn.execute(
                select(token_exchanges.c.grant_id).where(
                    token_exchanges.c.public_token_sha256 == token_digest(public_token))
            ).scalar_one_or_none()

    def remember(self, public_token: str, grant_id: str) -> str:
        """Record the exchange; returns the grant on record (the first one, if two raced)."""
        try:
            with self._db.write() as conn:
                conn.execute(insert(token_exchanges).values(
                    public_token_sha256=token_digest(public_token), grant_id=grant_id,
                    created_at=datetime.now(UTC)))
        except IntegrityError:
            existing = self.grant_for(public_token)
            return existing or grant_id
        return grant_id


__all__ = ["ExchangeLedger", "token_digest"]
