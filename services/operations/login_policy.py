"""Rules of the console's login that do not depend on Streamlit: which address a failed
login counts against, whether the browser reached the console over https, and the floor
under the time of a failed login.

The client's address behind reverse proxies: each proxy appends the address it received the
request from to X-Forwarded-For, so with N trusted proxies the entry the outermost one added
is the N-th from the right. Everything to its left was written by the client and is never
used (the client can put any address there). With no trusted proxy the headers are ignored
and the connection's own address is used.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable

from services.store.sessions import UNKNOWN_ADDRESS

logger = logging.getLogger(__name__)


def _entries(values: Iterable[str | None]) -> list[str]:
    """The comma-separated entries of a header sent once or several times, in order."""
    return [part.strip() for value in values if value for part in value.split(",")]


def _address(text: str | None) -> str | None:
    """A valid IP address in its normal form, else None (a port or brackets are dropped)."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_address(peer: str | None, forwarded_for: Iterable[str | None],
                   trusted_proxies: int) -> str:
    """The address a login counts against: with `trusted_proxies` = N > 0, the N-th
    X-Forwarded-For entry from the right (the one the outermost trusted proxy added); with
    fewer entries than N (the request did not pass through them all) or N = 0, the
    connection's address `peer`. `UNKNOWN_ADDRESS` when that is not an address."""
    if trusted_proxies > 0:
        entries = _entries(forwarded_for)
        if len(entries) >= trusted_proxies:
            return _address(entries[-trusted_proxies]) or UNKNOWN_ADDRESS
    return _address(peer) or UNKNOWN_ADDRESS


def reached_over_https(page_url: str | None, forwarded_proto: Iterable[str | None],
                       trusted_proxies: int) -> bool:
    """Whether the browser uses https: the page's own address says so, or (only when there
    are trusted proxies) the X-Forwarded-Proto entry the outermost of them set."""
    if (page_url or "").lower().startswith("https://"):
        return True
    if trusted_proxies <= 0:
        return False
    entries = _entries(forwarded_proto)
    if not entries:
        return False
    entry = entries[-trusted_proxies] if len(entries) >= trusted_proxies else entries[0]
    return entry.lower() == "https"


class FailureFloor:
    """Every failed login ends at least `seconds` after it started, whatever made it fail
    (an unknown username, a wrong password at any bcrypt cost, a lock): its time tells
    nothing. `clock` and `sleep` are injectable for tests."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.seconds = seconds
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"FailureFloor({self.seconds})"

    def start(self) -> float:
        return self._clock()

    def hold(self, started: float) -> float:
        """Wait until `seconds` after `started`; returns the time waited. An attempt that
        already took longer is logged: the floor is then too low to hide anything."""
        if self.seconds <= 0:
            return 0.0
        left = self.seconds - (self._clock() - started)
        if left > 0:
            self._sleep(left)
            return left
        logger.warning("a failed login took %.2f s, more than the floor of %.2f s: raise "
                       "CONSOLE_LOGIN_FAILURE_FLOOR", self.seconds - left, self.seconds)
        return 0.0
