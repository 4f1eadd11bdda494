"""The Grant detail page's watch over the resyncs it started, kept in one session-state entry.

A resync asked for is watched until its integration is no longer ONGOING/SYNCING. A status
read that fails is tried again on the next poll, up to `STATUS_ATTEMPTS` in a row; then the
watch gives up on it and keeps a message (`lost`) until it is dismissed or that integration
is resynced again. The page's poller reruns the whole page once something settled, except
while the revoke dialog is open (a rerun would close it): the settled status lines are kept
(`settled_lines`) until the page's next full run.

No Streamlit import here: the page draws what `poll` returns.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

from dashboard import reads
from services.operations import Actor, OperationError, Operations

SESSION_KEY = "resync_watch"
STATUS_ATTEMPTS = 3  # status reads that may fail in a row before the watch gives up


@dataclass
class _GrantWatch:
    watching: dict[str, str] = field(default_factory=dict)  # wallet id -> mode
    failures: dict[str, int] = field(default_factory=dict)  # failed reads in a row
    lost: dict[str, str] = field(default_factory=dict)  # wallet id -> message (given up)
    settled: list[str] = field(default_factory=list)  # lines settled since the last full run


@dataclass(frozen=True)
class Poll:
    """One poll's outcome: lines to show now, and whether anything settled."""

    progress: tuple[str, ...]
    settled: bool


class ResyncWatch:
    """Every resync watched in one browser session, by grant."""

    def __init__(self) -> None:
        self._grants: dict[str, _GrantWatch] = {}
        self.dialog_open = False  # the revoke dialog is open: the poller must not rerun

    @classmethod
    def of(cls, session_state: MutableMapping[str, object]) -> ResyncWatch:
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

    def started(self, grant_id: str, wallet_id: str, mode: str) -> None:
        """A resync was queued: watch it (and forget an earlier one given up on)."""
        g = self._grant(grant_id)
        g.watching[wallet_id] = mode
        g.lost.pop(wallet_id, None)
        g.failures.pop(wallet_id, None)

    def lost(self, grant_id: str) -> dict[str, str]:
        """Resyncs whose status could not be read: wallet id -> what to tell the person."""
        return dict(self._grant(grant_id).lost)

    def dismiss(self, grant_id: str, wallet_id: str) -> None:
        self._grant(grant_id).lost.pop(wallet_id, None)

    def settled_lines(self, grant_id: str) -> tuple[str, ...]:
        return tuple(self._grant(grant_id).settled)

    def poll(self, ops: Operations, actor: Actor, grant_id: str,
             names: Mapping[str, str]) -> Poll:
        """Read each watched integration once; what settled leaves the watch and the grant's
        cached reads are dropped (they show the old status)."""
        g = self._grant(grant_id)
        progress: list[str] = []
        settled: list[str] = []
        for wid in list(g.watching):
            name = names.get(wid) or wid
            try:
                it = reads.integration(ops, actor, grant_id, wid)
            except OperationError as exc:
                g.failures[wid] = g.failures.get(wid, 0) + 1
                if g.failures[wid] < STATUS_ATTEMPTS:
                    progress.append(f"{name}: status not read (try {g.failures[wid]} of "
                                    f"{STATUS_ATTEMPTS}); trying again.")
                    continue
                g.failures.pop(wid, None)
                g.lost[wid] = _lost_message(name, exc)
                settled.append(wid)
                continue
            g.failures.pop(wid, None)
            line = f"{it.display_name}: {it.status}" + (f" - {it.message}" if it.message else "")
            if it.is_syncing:
                progress.append(line)
            else:
                settled.append(wid)
                g.settled.append(line)
        for wid in settled:
            g.watching.pop(wid, None)
        if settled:
            reads.invalidate_grant(grant_id)
        return Poll(tuple(progress), bool(settled))


def _lost_message(name: str, exc: OperationError) -> str:
    return (
        f"The resync of {name} was requested, but its status could not be read "
        f"{STATUS_ATTEMPTS} times in a row, so the page stopped checking. It may still be "
        "running: press Refresh at the top to read the integrations again and look at its "
        f"status and last sync (the History shows whether the request succeeded). "
        f"Last error: {exc.user_message}"
    )
