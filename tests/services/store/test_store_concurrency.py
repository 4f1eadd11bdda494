"""Concurrent writers never fork the chain and never lose a row."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

from services.store import AuditFilter, AuditLog, Database, NewAuditEvent, open_database

THREADS, PER_THREAD = 8, 250


def append_concurrently(log: AuditLog, threads_n: int, per_thread: int,
                        event: Callable[[int, int], NewAuditEvent]) -> None:
    """`threads_n` threads, started together, each appending `event(thread, i)` for i in
    range(per_thread); fails on any error raised in a thread."""
    start = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                log.append(event(n, i))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_eight_threads_append_2000_events_without_forking_the_chain(db: Database) -> None:
    log = AuditLog(db)
    append_concurrently(log, THREADS, PER_THREAD, lambda n, i: NewAuditEvent(
        f"writer{n}", ["admin"], "grant.revoke", "requested", target_id=f"g{n}-{i}"))
    report = log.verify_chain()
    assert report.ok, report
    assert report.checked == THREADS * PER_THREAD == log.count()
    assert {log.query(AuditFilter(actor=f"writer{n}")).total for n in range(THREADS)} == {
        PER_THREAD}


WRITER = textwrap.dedent("""
    import sys
    from services.store import AuditLog, NewAuditEvent, open_database
    url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    db = open_database(url)
    log = AuditLog(db)
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(count):
        log.append(NewAuditEvent(name, ["support"], "integration.resync", "requested",
                                 target_id=f"{name}-{i}"))
    db.dispose()
""")


def test_two_processes_append_to_the_same_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    count = 300
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, name, str(count)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for name in ("proc_a", "proc_b")
    ]
    for p in procs:  # both have migrated and opened the file before either writes
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        assert p.wait(timeout=120) == 0
    db = open_database(url)
    try:
        report = AuditLog(db).verify_chain()
        assert report.ok and report.checked == 2 * count
    finally:
        db.dispose()



def test_two_openers_racing_on_a_new_file_both_start(tmp_path: Path) -> None:
    """Two console processes starting on a new SQLite file at once: the one that loses the
    race to switch the file to WAL must wait for the other, not fail at start. (SQLite
    answers that loser "locked" at once, without its busy handler; seen in CI.)"""
    import threading

    failures: list[str] = []
    for round_no in range(25):
        url = f"sqlite:///{tmp_path / f'new{round_no}.db'}"
        go = threading.Barrier(2)

        def opener(url: str = url, go: threading.Barrier = go) -> None:
            go.wait()
            try:
                open_database(url).dispose()
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                failures.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=opener) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
