"""Chain verification: every row's link and hash, then the chain's head against the anchor
file's and against a head an auditor noted earlier (`expected_head`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from services.store.audit.anchor import AnchorError, AuditAnchor
from services.store.audit.events import ZERO_HASH, AuditHead, chain_hash
from services.store.db import Database, RowLike
from services.store.schema import audit_log


@dataclass(frozen=True)
class ChainReport:
    """What `verify_chain` found. `checked`: rows whose links were verified, oldest first.

    `head_seq`/`head_hash`: the newest row, when the walk reached the end of the log (0 and
    `ZERO_HASH` for an empty log; None when the walk stopped at a broken row); an auditor
    notes them to pass later as `expected_head`. `anchor_checked`: the head kept in the
    anchor file (row `anchor_seq`) was compared with the chain; `expected_checked`: so was
    the `expected_head` given."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_seq: int | None = None
    head_hash: str | None = None
    anchor_checked: bool = False
    anchor_seq: int | None = None
    expected_checked: bool = False
    #: The only finding is a noted head beyond the newest row: most likely mistyped.
    check_what_you_typed: bool = False


@dataclass
class _Walk:
    checked: int = 0
    head_hash: str = ZERO_HASH
    seen: dict[int, str] = field(default_factory=dict)  # hashes of the rows asked for
    broken: ChainReport | None = None


def _row_problem(row: RowLike, expected_seq: int, prev_hash: str) -> str | None:
    seq = int(row["seq"])
    if seq != expected_seq:
        return f"row {seq} follows row {expected_seq - 1}: {seq - expected_seq} row(s) missing"
    if row["prev_hash"] != prev_hash:
        return ("prev_hash does not match the previous row's hash "
                "(the previous row was changed, or a row was removed or inserted)")
    if chain_hash(prev_hash, row) != row["hash"]:
        return "the row's content does not match its hash (the row was changed)"
    return None


def _walk(db: Database, targets: set[int], chunk: int) -> _Walk:
    """Every row in seq order, `chunk` at a time; stops at the first broken one."""
    walk = _Walk()
    after = 0
    while True:
        with db.read() as conn:
            rows = conn.execute(
                select(audit_log).where(audit_log.c.seq > after)
                .order_by(audit_log.c.seq).limit(chunk)
            ).mappings().all()
        if not rows:
            return walk
        for row in rows:
            seq = int(row["seq"])
            bad = _row_problem(row, walk.checked + 1, walk.head_hash)
            if bad is not None:
                walk.broken = ChainReport(ok=False, checked=walk.checked, first_bad_seq=seq,
                                          reason=bad)
                return walk
            walk.checked, walk.head_hash = seq, row["hash"]
            if seq in targets:
                walk.seen[seq] = row["hash"]
        after = int(rows[-1]["seq"])


def verify_chain(db: Database, anchor: AuditAnchor | None, expected: AuditHead | None,
                 chunk: int) -> ChainReport:
    """See `AuditLog.verify_chain`. The caller has written its pending anchor head."""
    problems: list[tuple[int | None, str]] = []
    anchored: AuditHead | None = None
    if anchor is not None:
        # Read before the walk: an anchor is written after its rows are committed, so
        # every row it names is visible to the walk that follows.
        try:
            anchored = anchor.read()
        except AnchorError as exc:
            problems.append((None, f"{exc.user_message} It may have been tampered with: "
                                   "compare it with a head noted earlier."))
    walk = _walk(db, {h.seq for h in (anchored, expected) if h is not None}, chunk)
    if walk.broken is not None:
        return walk.broken
    head_seq = walk.checked  # rows run 1..n: the count is the last seq
    if anchor is not None and anchored is None and not problems and head_seq:
        problems.append((None, (
            f"there is no audit anchor file at {anchor.path}, although the log has "
            f"{head_seq} row(s): it was removed or moved, it cannot be written there "
            "(the console's log then says why), or anchoring was switched on after these "
            "rows (the next event writes it); the newest rows cannot be checked against "
            "it.")))
    for want, noted in ((anchored, False), (expected, True)):
        if want is not None:
            problem = _compare_head(head_seq, walk.seen.get(want.seq), want, noted)
            if problem is not None:
                problems.append(problem)
    bad_seqs = [seq for seq, _ in problems if seq is not None]
    typo = (expected is not None and len(problems) == 1 and expected.seq > head_seq
            and (anchored is None or anchored.seq <= head_seq))
    return ChainReport(
        check_what_you_typed=typo,
        ok=not problems, checked=walk.checked,
        first_bad_seq=min(bad_seqs) if bad_seqs else None,
        reason="; ".join(text for _, text in problems) or None,
        head_seq=head_seq, head_hash=walk.head_hash,
        anchor_checked=anchored is not None, anchor_seq=anchored.seq if anchored else None,
        expected_checked=expected is not None,
    )


def _when(ts: datetime | None) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "time unknown"


def _compare_head(head_seq: int, found: str | None, want: AuditHead,
                  noted: bool) -> tuple[int, str] | None:
    """(first bad seq, why) when a chain whose last row is `head_seq` (and whose row
    `want.seq` has hash `found`) does not hold the head `want`, else None. `noted`: `want`
    is a head an auditor noted, not the anchor file's."""
    short = f"{want.hash[:8]}…"
    if want.seq > head_seq and noted:
        ends = f"the newest row is {head_seq}" if head_seq else "the log is empty"
        return head_seq + 1, (
            f"{ends}, so there is no row {want.seq} to compare with the head you noted: check "
            f"what you typed. If row {want.seq} (hash {short}) is what you noted, at least "
            f"{want.seq - head_seq} newest row(s) were removed.")
    if want.seq > head_seq:
        ends = f"the log ends at row {head_seq}" if head_seq else "the log is empty"
        source = "the head you noted" if noted else f"anchored {_when(want.ts)}"
        # Rows appended after a deletion reuse the deleted numbers: a lower bound.
        return head_seq + 1, (f"{ends} but row {want.seq} (hash {short}, {source}) existed: "
                              f"at least {want.seq - head_seq} newest row(s) were removed")
    if found != want.hash:
        source = ("you noted hash " + short if noted
                  else f"hash {short} was anchored {_when(want.ts)}")
        return want.seq, (f"row {want.seq} has hash {str(found)[:8]}…, but {source} for it: "
                          f"row {want.seq} or rows before it were replaced (newest rows "
                          "removed and others appended, or the chain rewritten)")
    return None

