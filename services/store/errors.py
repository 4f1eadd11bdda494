"""Errors of the store layer. Messages never contain a key or a token."""

from __future__ import annotations

from services.settings import ConfigError


class StoreError(Exception):
    """Something went wrong in the console's own database; `user_message` says what."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class VaultKeyError(StoreError, ConfigError):
    """The vault key is malformed, or is not the key the tokens were stored with."""


class VaultEntryNotFound(StoreError):
    """No token is stored for this grant."""

    def __init__(self, grant_id: str) -> None:
        super().__init__(f"No access token is stored for grant {grant_id}.")
        self.grant_id = grant_id
