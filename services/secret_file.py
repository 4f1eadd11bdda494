"""A generated secret kept in a file (mode 0600), for sandbox mode's own keys."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from services.private_files import private_dir


def secret_file(path: Path) -> str:
    """Read a generated secret from `path`, creating it (mode 0600) when missing."""
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    private_dir(path.parent)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return value
