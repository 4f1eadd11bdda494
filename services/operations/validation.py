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
ACTION_WORDS_RE = re.compile(r"^[a-z0-9_.]+( +[a-z0-9_.]+)*$")  # "revoke", "limit bulk"
FILTER_TEXT_MAX = 200
RESYNC_MODES = ("latest", "from_start")
MAX_LIMIT = 10**9
#: What a transaction limit counts, for every field and column that shows one (the guide and
#: the API notes: the effective limit of the user info; an integration past it reports
#: "transaction limit reached" and imports no more transactions).
LIMIT_UNIT_HELP = (
    "A number of transactions: how many transactions Kryptos imports for this Guest from "
    "their wallets and exchanges. Past it, a sync stops fetching transactions and the "
    "integration says \"transaction limit reached\". A whole number up to "
    f"{MAX_LIMIT:,}; the limiter must be on for it to apply (off: no cap)."
)
REASON_MIN, REASON_MAX = 5, 500
TICKET_MAX = 100
CUSTOMER_REF_MAX = 200
#: A customer reference (your own id for the customer, the backend's JWT `sub`): one rule
#: for the console and the backend, and the help text the pages show is made from it. It
#: starts with a letter or digit, so it never starts a spreadsheet formula, and it allows the
#: characters of e-mail addresses and `provider:id` subjects.
CUSTOMER_REF_CHARS = "- _ . @ : +"
CUSTOMER_REF_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.@:+-]{{0,{CUSTOMER_REF_MAX - 1}}}$")
CUSTOMER_REF_HELP = (f"Your own id for the customer (e.g. a CRM id or an e-mail address): up "
                     f"to {CUSTOMER_REF_MAX} letters, digits and {CUSTOMER_REF_CHARS}, "
                     "starting with a letter or digit.")
MAX_BULK = 10_000


def grant_id(value: object, field: str = "grant_id") -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "Please give a grant id (it starts with cgrant_).")
    value = value.strip()
    if not value.startswith("cgrant_") or not GRANT_ID_RE.match(value):
        shown = _shown(value)
        raise ValidationError(
            field, f"{shown} is not a grant id: a grant id is cgrant_ followed by up to 128 "
                   "letters, digits, _ or -."
        )
    return value


def _shown(value: str) -> str:
    """A typed value quoted for a message, cut short (never echo a long paste)."""
    return f"“{value[:40]}…”" if len(value) > 40 else f"“{value}”"


def wallet_id(value: object, field: str = "wallet_id") -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "Please choose a wallet.")
    value = value.strip()
    if not SAFE_ID_RE.match(value):
        raise ValidationError(
            field, "A wallet id has only letters, digits, _, -, . and : (at most 200)."
        )
    return value


def audit_head(value: object) -> tuple[int, str]:
    """A head of the audit chain an auditor noted: (row number >= 1, 64-hex hash)."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ValidationError("expected_head", "Please give the row number and the hash you "
                                               "noted.")
    seq, hash_ = value
    if isinstance(seq, str) and seq.strip().isdigit():
        seq = int(seq.strip())
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise ValidationError("row", "The row number is a whole number of at least 1: "
                                     "check what you typed.")
    if not isinstance(hash_, str) or not hash_.strip():
        raise ValidationError("hash", "Please give the hash you noted.")
    value = hash_.strip().lower()
    if not AUDIT_HASH_RE.match(value):
        raise ValidationError(
            "hash", "The hash is the row's whole hash, 64 characters 0-9 and a-f: check what "
                    "you typed."
        )
    return seq, value


def mode(value: object) -> str:
    if value not in RESYNC_MODES:
        raise ValidationError("mode", "Please choose a resync mode: latest (new "
                                      "transactions) or from start (full re-import).")
    return str(value)


def transaction_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("transaction_limit", "The limit must be a whole number of "
                                                   "transactions, e.g. 7500.")
    if value < 1:
        raise ValidationError("transaction_limit", f"The limit must be at least 1 (you gave "
                                                   f"{value:,}); to lift the cap, switch the "
                                                   "limiter off instead.")
    if value > MAX_LIMIT:
        raise ValidationError("transaction_limit",
                              f"The limit can be at most {MAX_LIMIT:,}; to lift the cap, "
                              "switch the limiter off instead.")
    return value


_DIGITS_RE = re.compile(r"^[+-]?\d+$")
_GROUPED_RE = re.compile(r"^[+-]?\d{1,3}([, _]\d{3})+$")


def parse_limit(text: object) -> int:
    """A limit typed as text: whole numbers only, thousands separators allowed ("7,500");
    "12.5", "1e3", "-5", "0" and too large numbers are refused with the reason."""
    if isinstance(text, int) and not isinstance(text, bool):
        return transaction_limit(text)
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("transaction_limit", "Please type a limit (a whole number, "
                                                   "e.g. 7500).")
    raw = text.strip()
    if _DIGITS_RE.match(raw) or _GROUPED_RE.match(raw):
        return transaction_limit(int(re.sub(r"[, _]", "", raw)))
    shown = _shown(raw)
    if re.fullmatch(r"[+-]?\d*[.,]\d+", raw):
        why = f"{shown} has a fraction: the limit is a whole number of transactions."
    elif re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+", raw):
        why = f"{shown} is written as a power of ten: type the number in digits, e.g. 1000."
    else:
        why = f"{shown} is not a whole number: type digits only, e.g. 7500."
    raise ValidationError("transaction_limit", why)


def enable_limiter(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("enable_limiter", "Please choose whether the limiter is on "
                                                "or off.")
    return value


def reason(value: object, *, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(
                "reason", f"Please give a reason ({REASON_MIN} to {REASON_MAX} characters)."
            )
        return None
    if not isinstance(value, str):
        raise ValidationError("reason", "Please give the reason as text.")
    value = value.strip()
    if len(value) < REASON_MIN:
        raise ValidationError("reason", f"Please give a longer reason (at least {REASON_MIN} "
                                        "characters), so others can tell why.")
    if len(value) > REASON_MAX:
        raise ValidationError("reason", f"Please shorten the reason to {REASON_MAX} characters "
                                        f"(it has {len(value)}).")
    return value


def ticket(value: object) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValidationError("ticket", "Please give the ticket as text.")
    value = value.strip()
    if len(value) > TICKET_MAX or any(ord(c) < 32 for c in value):
        raise ValidationError("ticket", f"The ticket must be one line of at most {TICKET_MAX} "
                                        "characters.")
    return value


def customer_ref(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("customer_ref", "Please give the customer reference (your "
                                              "own id for this customer).")
    value = value.strip()
    if not is_customer_ref(value):
        raise ValidationError(
            "customer_ref", f"{_shown(value)} is not a customer reference: use up to "
                            f"{CUSTOMER_REF_MAX} letters, digits and {CUSTOMER_REF_CHARS}, "
                            "starting with a letter or digit."
        )
    return value


def is_customer_ref(value: object) -> bool:
    """Whether `value` (already stripped) follows the customer reference rule."""
    return isinstance(value, str) and CUSTOMER_REF_RE.fullmatch(value) is not None


def public_token(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("public_token", "Please paste the public token the Connect "
                                              "widget gave (it starts with public_).")
    value = value.strip()
    if not PUBLIC_TOKEN_RE.match(value):
        raise ValidationError(
            "public_token", "That is not a public token: it starts with public_ followed by "
                            "letters, digits, _ or -."
        )
    return value


def grant_ids(values: Iterable[object]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ValidationError("grant_ids", "Please give a list of grant ids.")
    out: list[str] = []
    seen: set[str] = set()
    for i, v in enumerate(values):
        gid = grant_id(v, field=f"grant_ids[{i}]")
        if gid not in seen:
            seen.add(gid)
            out.append(gid)
    if not out:
        raise ValidationError("grant_ids", "Please select at least one grant.")
    if len(out) > MAX_BULK:
        raise ValidationError("grant_ids", f"At most {MAX_BULK:,} grants per run (you gave "
                                           f"{len(out):,}).")
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
    if action is not None:
        action = action.lower()
        if not (ACTION_FILTER_RE.match(action) or ACTION_WORDS_RE.match(action)):
            raise ValidationError("action", "Type an action like grant.revoke, a word of one "
                                            "like revoke, or a prefix ending in * like grant.*")
    outcome = _filter_text(flt.outcome, "outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise ValidationError("outcome", f"must be one of {', '.join(OUTCOMES)}.")
    return AuditFilter(since=flt.since, until=flt.until,
                       actor=_filter_text(flt.actor, "actor"), action=action,
                       target_id=_filter_text(flt.target_id, "target_id"), outcome=outcome)
