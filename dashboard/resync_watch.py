"""The Grant detail page's watch over resyncs, kept in one session-state entry: those it
started, and any integration it finds syncing (`adopt`), whoever started it.

A resync asked for is watched until its integration is no longer ONGOING/SYNCING. A status
read that fails is tried again on the next poll, up to `STATUS_ATTEMPTS` in a row; then the
watch gives up on it and keeps a message (`lost`) until it is dismissed or that integration
is resynced again. The page's poller reruns the whole page once something settled, except
while the revoke dialog is open (a rerun would close it): the settled status lines are kept
(`settled_lines`) until the page's next full run.

Webhooks first, polling as the fallback: each poll first reads the stored webhooks about
the watched integration received since the resync was asked for (a local database read). A
new one gives the status without calling Kryptos. Kryptos is polled only when no webhook
has come in for `fallback_after` seconds (always, until a first webhook about the resync
arrives: webhooks may not be configured, or may be lost).

No Streamlit import here: the page draws what `poll` returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from dashboard import reads
from services.kryptos.models import Integration
from services.operations import Actor, OperationError, Operations

SESSION_KEY = "resync_watch"
STATUS_ATTEMPTS = 3  # status reads that may fail in a row before the watch gives up
FALLBACK_SECONDS = 6.0  # after a webhook, Kryptos is polled only when none came for this long


@dataclass
class _GrantWatch:
    watching: dict[str, str] = field(default_factory=dict)  # wallet id -> mode
    failures: dict[str, int] = field(default_factory=dict)  # failed reads in a row
    lost: dict[str, str] = field(default_factory=dict)  # wallet id -> message (given up)
    settled: list[str] = field(default_factory=list)  # lines settled since the last full run
    since: dict[str, datetime] = field(default_factory=dict)  # wallet id -> resync asked at
    heard: dict[str, float] = field(default_factory=dict)  # wallet id -> last webhook (clock)
    news_at: dict[str, datetime] = field(default_factory=dict)  # newest webhook used
    last_line: dict[str, str] = field(default_factory=dict)  # newest status line
    finished: dict[str, str] = field(default_factory=dict)  # wallet id -> its settled line


@dataclass(frozen=True)
class Poll:
    """One poll's outcome: lines to show now, and whether anything settled."""

    progress: tuple[str, ...]
    settled: bool


class SessionState(Protocol):
    """Where the watch is kept: Streamlit's `st.session_state`, or a dict in a test."""

    def get(self, key: str, /) -> object: ...

    def __setitem__(self, key: str, value: object, /) -> None: ...


class ResyncWatch:
    """Every resync watched in one browser session, by grant."""

    def __init__(self, fallback_after: float = FALLBACK_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._grants: dict[str, _GrantWatch] = {}
        self.dialog_open = False  # the revoke dialog is open: the poller must not rerun
        self.fallback_after = fallback_after
        self._clock = clock
        self.api_polls = 0  # status reads sent to Kryptos (webhooks spare most of them)
        self.webhook_updates = 0  # statuses taken from webhooks

    @classmethod
    def of(cls, session_state: SessionState) -> ResyncWatch:
        """The session's watch (made on first use)."""
        found = session_state.get(SESSION_KEY)
        if not isinstance(found, cls):
            found = session_state[SESSION_KEY] = cls()
        return found

    def _grant(self, grant_id: str) -> _GrantWatch:
        return self._grants.setdefault(grant_id, _GrantWatch())

    def begin_run(self, grant_id: str) -> None:
        """A full run of the page: the dialog is not open (yet), settled lines are read anew."""
        self.dialog_open = False
        self._grant(grant_id).settled.clear()

    def watching(self, grant_id: str) -> dict[str, str]:
        """The integrations being watched: wallet id -> resync mode."""
        return dict(self._grant(grant_id).watching)

    def started(self, grant_id: str, wallet_id: str, mode: str,
                at: datetime | None = None) -> None:
        """A resync was queued (asked for at `at`, default now: webhooks received after it
        are about this resync): watch it, and forget an earlier one given up on."""
        g = self._grant(grant_id)
        g.watching[wallet_id] = mode
        g.since[wallet_id] = at or datetime.now(UTC)
        for kept in (g.lost, g.failures, g.heard, g.news_at, g.last_line, g.finished):
            kept.pop(wallet_id, None)

    def adopt(self, grant_id: str, wallet_ids: Iterable[str]) -> None:
        """Watch these syncing integrations too, whoever started them (another tab, another
        person, before a reload); one given up on stays given up until dismissed."""
        g = self._grant(grant_id)
        for wid in wallet_ids:
            if wid not in g.watching and wid not in g.lost:
                g.watching[wid] = "unknown"
                g.since[wid] = datetime.now(UTC)

    def lost(self, grant_id: str) -> dict[str, str]:
        """Resyncs whose status could not be read: wallet id -> what to tell the person."""
        return dict(self._grant(grant_id).lost)

    def dismiss(self, grant_id: str, wallet_id: str) -> None:
        self._grant(grant_id).lost.pop(wallet_id, None)

    def settled_lines(self, grant_id: str) -> tuple[str, ...]:
        return tuple(self._grant(grant_id).settled)

    def finished(self, grant_id: str) -> dict[str, str]:
        """Resyncs this session watched to the end: wallet id -> the status they ended in
        (kept for the integration's card until it is resynced again)."""
        return dict(self._grant(grant_id).finished)

    def poll(self, ops: Operations, actor: Actor, grant_id: str,
             names: Mapping[str, str], only: Iterable[str] | None = None) -> Poll:
        """Check each watched integration (or those of `only`) once (a new webhook, else
        Kryptos when due); what settled leaves the watch and the grant's cached reads are
        dropped (they show the old status)."""
        g = self._grant(grant_id)
        progress: list[str] = []
        settled: list[str] = []
        wanted = None if only is None else set(only)
        for wid in [w for w in g.watching if wanted is None or w in wanted]:
            name = names.get(wid) or wid
            found = self._news(ops, actor, grant_id, wid)
            if found is None and not self._poll_due(g, wid):
                progress.append(g.last_line.get(wid) or f"{name}: resync requested; waiting "
                                                        "for Kryptos to report.")
                continue
            if found is None:
                self.api_polls += 1
                try:
                    found = reads.integration(ops, actor, grant_id, wid)
                except OperationError as exc:
                    if self._read_failed(g, wid, name, exc, progress):
                        settled.append(wid)
                    continue
            g.failures.pop(wid, None)
            line = f"{found.display_name}: {found.status.lower()}" + (
                f" - {found.message}" if found.message else "")
            g.last_line[wid] = line
            if found.is_syncing:
                progress.append(line)
            else:
                settled.append(wid)
                g.settled.append(line)
                g.finished[wid] = line
        for wid in settled:
            g.watching.pop(wid, None)
        if settled:
            reads.invalidate_grant(grant_id)
        return Poll(tuple(progress), bool(settled))

    def _news(self, ops: Operations, actor: Actor, grant_id: str,
              wid: str) -> Integration | None:
        """The integration from a webhook not seen before (None: no news, or unreadable)."""
        g = self._grant(grant_id)
        try:
            news = reads.integration_news(ops, actor, grant_id, wid,
                                          g.news_at.get(wid) or g.since[wid])
        except OperationError:
            return None  # the database read failed: Kryptos is asked instead
        if news is None:
            return None
        g.news_at[wid] = news.received_at
        g.heard[wid] = self._clock()
        self.webhook_updates += 1
        return news.integration

    def _poll_due(self, g: _GrantWatch, wid: str) -> bool:
        """Kryptos is asked until a first webhook came, then when none came for a while."""
        heard = g.heard.get(wid)
        if heard is None or self._clock() - heard >= self.fallback_after:
            return True
        return False

    def _read_failed(self, g: _GrantWatch, wid: str, name: str, exc: OperationError,
                     progress: list[str]) -> bool:
        """Count a failed status read; True when the watch gives up on it."""
        g.failures[wid] = g.failures.get(wid, 0) + 1
        if g.failures[wid] < STATUS_ATTEMPTS:
            progress.append(f"{name}: status not read (try {g.failures[wid]} of "
                            f"{STATUS_ATTEMPTS}); trying again.")
            return False
        g.failures.pop(wid, None)
        g.lost[wid] = _lost_message(name, exc)
        return True


def _lost_message(name: str, exc: OperationError) -> str:
    return (
        f"The resync of {name} was requested, but its status could not be read "
        f"{STATUS_ATTEMPTS} times in a row, so the page stopped checking. It may still be "
        "running: press Refresh at the top to read the integrations again and look at its "
        f"status and last sync (the History shows whether the request succeeded). "
        f"Last error: {exc.user_message}"
    )
