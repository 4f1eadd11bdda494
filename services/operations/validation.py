"""Input validation. Every check raises `ValidationError(field, reason)` before any call."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime

from services.operations.errors import ValidationError
from services.store.audit import OUTCOMES, AuditFilter

GRANT_ID_RE = re.compile(r"^cgrant_[A-Za-z0-9_-]{1,128}$")
SAFE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
PUBLIC_TOKEN_RE = re.compile(r"^public_[A-Za-z0-9_-]{1,256}$")
AUDIT_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
ACTION_FILTER_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.?\*)?$")
FILTER_TEXT_MAX = 200
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


def bulk_id(value: object) -> str:
    try:
        return str(uuid.UUID(str(value).strip()))
    except ValueError:
        raise ValidationError("bulk_id", "must be a bulk run's id (a UUID).") from None


def _filter_text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(name, "must be text.")
    value = value.strip()
    if len(value) > FILTER_TEXT_MAX or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError(name, f"must be one line of at most {FILTER_TEXT_MAX} characters.")
    return value or None


def audit_filter(flt: object) -> AuditFilter:
    """An audit log filter with every value checked (the store's own errors never reach a
    page)."""
    if flt is None:
        return AuditFilter()
    if not isinstance(flt, AuditFilter):
        raise ValidationError("filters", "must be an AuditFilter.")
    for name in ("since", "until"):
        value = getattr(flt, name)
        if value is not None and not isinstance(value, datetime):
            raise ValidationError(name, "must be a date and time.")
    if flt.since is not None and flt.until is not None and (
            flt.since.tzinfo is None) != (flt.until.tzinfo is None):
        raise ValidationError("until", "since and until must both have a time zone, or neither.")
    action = _filter_text(flt.action, "action")
    if action is not None and not ACTION_FILTER_RE.match(action):
        raise ValidationError("action", "must be an action like grant.revoke, or a prefix "
                                        "ending in * like grant.*")
    outcome = _filter_text(flt.outcome, "outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise ValidationError("outcome", f"must be one of {', '.join(OUTCOMES)}.")
    return AuditFilter(since=flt.since, until=flt.until,
                       actor=_filter_text(flt.actor, "actor"), action=action,
                       target_id=_filter_text(flt.target_id, "target_id"), outcome=outcome)
