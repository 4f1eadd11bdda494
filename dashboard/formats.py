"""How the pages write limits, switches and times (plain text, no Streamlit)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.store.readmodel.models import ago_text

#: An absent value on screen (a session without a reason, a grant without scopes): never
#: "None", and never "-", which a grid's formula guard would show as "'-".
ABSENT = "\u2014"


def fmt_text(value: str | None) -> str:
    """A text that may be absent: itself, or the em dash."""
    return value if value else ABSENT


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
    """A time to the minute, UTC (the em dash when unknown)."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else ABSENT


def fmt_second(value: datetime) -> str:
    """A time to the second, UTC."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_ago(value: datetime, now: datetime | None = None) -> str:
    """How long ago, as the freshness lines say it: "12 s ago", "5 min ago", "2.0 h ago"."""
    return ago_text(((now or datetime.now(UTC)) - value).total_seconds())


def count_of(n: int, one: str, many: str | None = None) -> str:
    """"1 grant", "2 grants", "1,234 grants"."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def grant_list_caption(total: int, first: int, shown: int, *, exact: bool = True) -> str:
    """The line above a page of the grants list: how many match and which rows show. A
    total that is not `exact` is the count's cap: "more than 10,000 grants"."""
    if not total:
        return "No grant matches these filters."
    last = first + shown - 1
    where = (f"showing {first:,}" if shown == 1 else f"showing {first:,}\u2013{last:,}")
    if exact and shown == total:
        where = "all shown" if total > 1 else "shown"
    many = count_of(total, 'grant') if exact else f"more than {total:,} grants"
    return f"{many}; {where}. Choose a row to open its detail."


def fmt_money(value: float | None) -> str:
    """An amount of money: 2 decimals, more only for an amount under 1 (a token priced at
    0.000042 must not read 0.00): up to 4 significant digits then. The em dash when absent."""
    if value is None:
        return ABSENT
    if value == 0 or abs(value) >= 1:
        return f"{value:,.2f}"
    exponent = int(f"{value:e}".split("e")[1])  # -5 for 0.000042
    out = f"{value:,.{max(2, -exponent + 3)}f}"
    whole, _, decimals = out.partition(".")
    return f"{whole}.{decimals.rstrip('0').ljust(2, '0')}"
