"""Request bodies as JSON, for every endpoint and the webhook receiver: `loads(raw)`.

A client's body can never make the backend fail: bytes that are not UTF-8 JSON, the
constants NaN/Infinity (not JSON; they would be stored as invalid JSON) and nesting deeper
than MAX_DEPTH (thousands of levels make the parser raise RecursionError, which would be a
500 with a traceback) all raise `ApiError` 400 INVALID_REQUEST."""

from __future__ import annotations

import json
from typing import Any

from backend.errors import ApiError, invalid

#: Deeper than any body this backend takes (the webhook envelope is 3 or 4 levels).
MAX_DEPTH = 32


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(raw: bytes | str, what: str = "request body") -> Any:
    """The parsed body; `ApiError` 400 INVALID_REQUEST when it is not usable JSON."""
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise _too_deep(what) from None
    except (ValueError, UnicodeDecodeError):
        raise invalid(f"The {what} is not valid JSON.") from None
    if depth_exceeds(value, MAX_DEPTH):
        raise _too_deep(what)
    return value


def _too_deep(what: str) -> ApiError:
    return invalid(f"The {what} is nested more than {MAX_DEPTH} levels deep.")


def depth_exceeds(value: Any, limit: int) -> bool:
    """True when arrays/objects nest deeper than `limit` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
