"""Is Kryptos reachable with these credentials? A cheap check run at start, in the background.

Two calls with a short timeout and no retries: the data API's `/health` (is the data host
there) and the grants list, read only up to its first grant (is the Connect host there,
and does it take the console's client id and secret). The setup page and admins see the
result (`LiveCheck`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from services.kryptos.client import KryptosClient
from services.kryptos.errors import AuthenticationError, KryptosError
from services.operations.errors import UpstreamError

log = logging.getLogger(__name__)

#: Seconds each check call may take (connect and read), without retries.
CHECK_TIMEOUT = 5.0


@dataclass(frozen=True)
class HostCheck:
    name: str  # "Data API" or "Connect API (credentials)"
    url: str
    ok: bool
    message: str
    elapsed_ms: int


@dataclass(frozen=True)
class LiveCheck:
    checked_at: datetime
    hosts: tuple[HostCheck, ...]
    credentials_ok: bool | None  # None: the Connect host could not be reached to ask

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts)

    @property
    def problems(self) -> tuple[str, ...]:
        return tuple(f"{h.name} ({h.url}): {h.message}" for h in self.hosts if not h.ok)


def _timed(call: Callable[[], object]) -> tuple[KryptosError | None, int]:
    start = time.monotonic()
    try:
        call()
    except KryptosError as exc:
        return exc, int((time.monotonic() - start) * 1000)
    return None, int((time.monotonic() - start) * 1000)


def _start_of_grants(client: KryptosClient) -> None:
    """The grants list read only as far as its first grant: its status is the credential
    check, and the whole list (100 MB and seconds at 100,000 grants) is not needed."""
    batches = client.iter_grants(batch_size=1)
    try:
        next(batches, None)
    finally:
        batches.close()


def check_connection(client: KryptosClient, timeout: float = CHECK_TIMEOUT) -> LiveCheck:
    """Check both hosts and the credentials (never raises for an upstream problem)."""
    probe = client.probe(timeout)
    try:
        err, ms = _timed(probe.health)
        data = HostCheck("Data API", probe.data_url, err is None,
                         "reachable" if err is None else
                         UpstreamError.from_kryptos(err, "The health check").user_message, ms)
        err, ms = _timed(lambda: _start_of_grants(probe))
        if err is None:
            message, creds = "reachable; the credentials are accepted", True
        elif isinstance(err, AuthenticationError):
            message, creds = ("reachable, but Kryptos refused the console's credentials: "
                              "check KRYPTOS_CLIENT_ID and KRYPTOS_CLIENT_SECRET."), False
        else:
            message = UpstreamError.from_kryptos(err, "Listing grants").user_message
            creds = None
        connect = HostCheck("Connect API", probe.connect_url, err is None, message, ms)
    finally:
        probe.close()
    return LiveCheck(datetime.now(UTC), (data, connect), creds)


class LiveChecker:
    """Runs `check_connection` in a background thread; `result` is None until it is done."""

    def __init__(self, client: KryptosClient, timeout: float = CHECK_TIMEOUT) -> None:
        self._client = client
        self._timeout = timeout
        self._result: LiveCheck | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"LiveChecker(done={self._result is not None})"

    @property
    def result(self) -> LiveCheck | None:
        return self._result

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start a check unless one is running."""
        with self._lock:
            if self.running:
                return
            self._thread = threading.Thread(target=self._run, name="live-check", daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None = None) -> LiveCheck | None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self._result

    def _run(self) -> None:
        try:
            result = check_connection(self._client, self._timeout)
        except Exception:  # noqa: BLE001 - a bug here must not kill the console's start
            log.exception("live check failed unexpectedly")
            return
        if not result.ok:
            log.warning("Kryptos check: %s", "; ".join(result.problems))
        self._result = result


__all__ = ["CHECK_TIMEOUT", "HostCheck", "LiveCheck", "LiveChecker", "check_connection"]
