"""The checks on what the token vault stores: a Kryptos grant id, a token, the customer's
fields. Shared by `TokenVault` (vault.py) and the CSV import (vault_import.py)."""

from __future__ import annotations

import re

from services.store.errors import StoreError

USER_KINDS = ("guest", "linked")
GRANT_ID_RE = re.compile(r"^cgrant_[A-Za-z0-9_-]{1,128}$")
_SPACE_RE = re.compile(r"\s")  # the same characters as str.isspace()
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
FIELD_LIMITS = {"workspace_id": 200, "kryptos_user_id": 200, "customer_ref": 320}


def clean_field(value: object, name: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise StoreError(f"Vault field '{name}' must be text.")
    value = value.strip()
    if not value:
        return None
    if len(value) > limit:
        raise StoreError(f"Vault field '{name}' is longer than {limit} characters.")
    if _CONTROL_RE.search(value):
        raise StoreError(f"Vault field '{name}' contains a control character (e.g. NUL).")
    return value


def valid_grant_id(value: object) -> str:
    # The same rule as the operations' validation: a Kryptos grant id, nothing else, so that
    # an imported typo can never show up as a "revoked" grant in the console.
    if not isinstance(value, str) or not GRANT_ID_RE.match(value.strip()):
        raise StoreError(
            "A grant id must start with 'cgrant_' followed by 1-128 letters, digits, '_' or '-'."
        )
    return value.strip()


def valid_token(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise StoreError("The access token is empty.")
    value = value.strip()
    if len(value) > 4096 or _SPACE_RE.search(value):
        raise StoreError("The access token contains whitespace or is too long.")
    if _CONTROL_RE.search(value):
        raise StoreError("The access token contains a control character (e.g. NUL).")
    return value


def valid_kind(value: object) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    kind = str(value).strip().lower()
    if kind not in USER_KINDS:
        raise StoreError("The user kind must be Guest or Linked.")
    return kind


def valid_fields(workspace_id: object, kryptos_user_id: object, customer_ref: object,
                 user_kind: object) -> dict[str, str]:
    """The validated non-token fields of a put; None (not given) is left out (kept)."""
    cleaned = {
        "workspace_id": clean_field(workspace_id, "workspace_id", FIELD_LIMITS["workspace_id"]),
        "kryptos_user_id": clean_field(kryptos_user_id, "kryptos_user_id",
                                       FIELD_LIMITS["kryptos_user_id"]),
        "customer_ref": clean_field(customer_ref, "customer_ref", FIELD_LIMITS["customer_ref"]),
        "user_kind": valid_kind(user_kind),
    }
    return {k: v for k, v in cleaned.items() if v is not None}
