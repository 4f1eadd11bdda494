"""The console's and the backend's private data: the data folder 0700, every file in it 0600.

The data folder holds the database (customer tokens, encrypted; session records; the audit
log), the audit journal and anchor, the vault and cookie keys and the users file: nothing
there is for other local users.

- `prepare_data_dir(settings)`, called where each process starts (dashboard/runtime.py,
  backend/app.py): first looks at what is already there (the data folder, its entries, and
  the configured files that live elsewhere) and returns one sentence per entry that group
  or others may use: a start never creates such an entry, so someone else made it or
  loosened it; then narrows the process umask to 077 (whatever is created afterwards, by
  this code, SQLite or a library, is the owner's only) and creates the data folder 0700.
- Files are also created with explicit modes where they are made (`private_dir`,
  `create_private_file`, `open_private`), so that they are private when a command-line tool
  writes them without having prepared anything.

Loose modes are reported, not changed: the operator may have a reason (a backup group), and
a tool that silently rewrites permissions hides the question.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

logger = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
#: Bits of the process umask that `prepare_data_dir` sets: nothing for group or others.
PRIVATE_UMASK = 0o077

_OPEN_FLAGS = {
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "a+": os.O_RDWR | os.O_CREAT | os.O_APPEND,
}


def private_dir(path: Path) -> Path:
    """Create the folder `path` (and missing parents) with mode 0700. An existing folder is
    left as it is (`prepare_data_dir` reports a loose one)."""
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    return Path(path)


def create_private_file(path: Path) -> bool:
    """Create `path` empty with mode 0600 unless it exists (its folder 0700 when missing);
    True when created. SQLite gives the database's `-wal` and `-shm` files the database
    file's mode, so a database created through this is private with its companions."""
    private_dir(Path(path).parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def open_private(path: Path, mode: str = "w", encoding: str = "utf-8") -> IO[Any]:
    """`open(path, mode)` for a file of ours ("w", "a" or "a+", text): created 0600, and set
    to 0600 when it existed (a leftover temp file, a journal made before)."""
    fd = os.open(path, _OPEN_FLAGS[mode], FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, mode, encoding=encoding)
    except BaseException:
        os.close(fd)
        raise


def restrict_umask() -> None:
    """Narrow this process's umask so that nothing it creates is open to group or others."""
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)


def loose_modes(paths: Iterable[Path]) -> list[str]:
    """One sentence per existing path that group or others may read, write or enter, with
    the command that makes it private."""
    found: list[str] = []
    seen: set[Path] = set()
    for path in paths:
        path = Path(path)
        if path in seen:
            continue
        seen.add(path)
        try:
            st = os.stat(path)
        except OSError:  # missing (or a dangling link): nothing to report
            continue
        mode = stat.S_IMODE(st.st_mode)
        if not mode & 0o077:
            continue
        kind, fix = ("folder", "700") if stat.S_ISDIR(st.st_mode) else ("file", "600")
        who = " and ".join(w for w, bits in (("group", 0o070), ("others", 0o007))
                           if mode & bits)
        found.append(f"The {kind} {path} has mode {mode:04o}: {who} can use it. Make it "
                     f"private with `chmod {fix} {path}`.")
    return found


def private_paths(settings: Any) -> list[Path]:
    """What must be private: the data folder and its entries, and the configured files kept
    elsewhere (a SQLite database and its companions, the audit anchor and journal, the users
    file)."""
    data_dir = Path(settings.data_dir)
    paths = [data_dir, *(sorted(data_dir.iterdir()) if data_dir.is_dir() else ())]
    paths += _sqlite_files(settings.effective_database_url)
    paths += [Path(settings.effective_audit_anchor_file),
              Path(settings.effective_audit_journal_file), Path(settings.effective_auth_file)]
    return paths


def _sqlite_files(database_url: str) -> list[Path]:
    """A SQLite database's file and its companions ([] for another database, or a URL that
    the store will refuse with its own message)."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        return []
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return []
    db_file = Path(url.database).expanduser()
    return [db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")]


def prepare_data_dir(settings: Any) -> tuple[str, ...]:
    """Report loose modes on what exists (logged as warnings and returned, for the admin's
    view), then make this process create private files only, and create the data folder
    0700. `OSError` when the folder cannot be created."""
    warnings = tuple(loose_modes(private_paths(settings)))
    for warning in warnings:
        logger.warning("private data: %s", warning)
    restrict_umask()
    private_dir(Path(settings.data_dir))
    return warnings
