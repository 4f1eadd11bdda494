"""How the pages write limits, switches and times (plain text, no Streamlit)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.store.readmodel.models import ago_text


def fmt_limit(value: int | str | None) -> str:
    """A transaction limit: "no cap", a text kept as it is ("unknown"), or the number."""
    if value is None:
        return "no cap"
    if isinstance(value, str):
        return value
    return f"{value:,}"


def fmt_bool(value: bool | None) -> str:
    """The limiter switch: on, off or unknown."""
    return "unknown" if value is None else ("on" if value else "off")


def fmt_minute(value: datetime | None) -> str:
    """A time to the minute, UTC ("-" when unknown)."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"


def fmt_second(value: datetime) -> str:
    """A time to the second, UTC."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_ago(value: datetime, now: datetime | None = None) -> str:
    """How long ago, as the freshness lines say it: "12 s ago", "5 min ago", "2.0 h ago"."""
    return ago_text(((now or datetime.now(UTC)) - value).total_seconds())
