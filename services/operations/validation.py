"""Input validation. Every check raises `ValidationError(field, reason)` before any call."""

from __future__ import annotations

import re
from collections.abc import Iterable

from services.operations.errors import ValidationError

GRANT_ID_RE = re.compile(r"^cgrant_[A-Za-z0-9_-]{1,128}$")
SAFE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
PUBLIC_TOKEN_RE = re.compile(r"^public_[A-Za-z0-9_-]{1,256}$")
AUDIT_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
RESYNC_MODES = ("latest", "from_start")
MAX_LIMIT = 10**9
REASON_MIN, REASON_MAX = 5, 500
TICKET_MAX = 100
CUSTOMER_REF_MAX = 200
MAX_BULK = 10_000


def grant_id(value: object, field: str = "grant_id") -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "is required.")
    value = value.strip()
    if not value.startswith("cgrant_"):
        raise ValidationError(field, "must start with 'cgrant_'.")
    if not GRANT_ID_RE.match(value):
        raise ValidationError(
            field, "may contain only letters, digits, '_' and '-' after 'cgrant_' (at most 128)."
        )
    return value


def wallet_id(value: object, field: str = "wallet_id") -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "is required.")
    value = value.strip()
    if not SAFE_ID_RE.match(value):
        raise ValidationError(
            field, "may contain only letters, digits, '_', '-', '.' and ':' (at most 200)."
        )
    return value


def audit_head(value: object) -> tuple[int, str]:
    """A head of the audit chain an auditor noted: (row number >= 1, 64-hex hash)."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ValidationError("expected_head", "must be a pair (row number, hash).")
    seq, hash_ = value
    if isinstance(seq, str) and seq.strip().isdigit():
        seq = int(seq.strip())
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise ValidationError("row", "must be a whole number of at least 1.")
    if not isinstance(hash_, str) or not hash_.strip():
        raise ValidationError("hash", "is required.")
    value = hash_.strip().lower()
    if not AUDIT_HASH_RE.match(value):
        raise ValidationError(
            "hash", "must be the row's whole hash: 64 characters 0-9 and a-f."
        )
    return seq, value


def mode(value: object) -> str:
    if value not in RESYNC_MODES:
        raise ValidationError("mode", "must be 'latest' or 'from_start'.")
    return str(value)


def transaction_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("transaction_limit", "must be a whole number.")
    if value < 1:
        raise ValidationError("transaction_limit", "must be a positive whole number.")
    if value > MAX_LIMIT:
        raise ValidationError("transaction_limit", f"must be at most {MAX_LIMIT:,}.")
    return value


def enable_limiter(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("enable_limiter", "must be true or false.")
    return value


def reason(value: object, *, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(
                "reason", f"is required ({REASON_MIN} to {REASON_MAX} characters)."
            )
        return None
    if not isinstance(value, str):
        raise ValidationError("reason", "must be text.")
    value = value.strip()
    if len(value) < REASON_MIN:
        raise ValidationError("reason", f"must be at least {REASON_MIN} characters.")
    if len(value) > REASON_MAX:
        raise ValidationError("reason", f"must be at most {REASON_MAX} characters.")
    return value


def ticket(value: object) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValidationError("ticket", "must be text.")
    value = value.strip()
    if len(value) > TICKET_MAX or any(ord(c) < 32 for c in value):
        raise ValidationError("ticket", f"must be one line of at most {TICKET_MAX} characters.")
    return value


def customer_ref(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("customer_ref", "is required.")
    value = value.strip()
    if len(value) > CUSTOMER_REF_MAX or any(ord(c) < 32 for c in value):
        raise ValidationError(
            "customer_ref", f"must be one line of at most {CUSTOMER_REF_MAX} characters."
        )
    return value


def public_token(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("public_token", "is required.")
    value = value.strip()
    if not PUBLIC_TOKEN_RE.match(value):
        raise ValidationError(
            "public_token", "must start with 'public_' followed by letters, digits, '_' or '-'."
        )
    return value


def grant_ids(values: Iterable[object]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ValidationError("grant_ids", "must be a list of grant ids.")
    out: list[str] = []
    seen: set[str] = set()
    for i, v in enumerate(values):
        gid = grant_id(v, field=f"grant_ids[{i}]")
        if gid not in seen:
            seen.add(gid)
            out.append(gid)
    if not out:
        raise ValidationError("grant_ids", "select at least one grant.")
    if len(out) > MAX_BULK:
        raise ValidationError("grant_ids", f"at most {MAX_BULK:,} grants per run.")
    return tuple(out)
