"""The backend's private data: started on a new data folder (sandbox mode: it generates its
vault and JWT keys there), it leaves only files and folders of its own user."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from backend.app import create_app
from sandbox import SandboxHandle
from services.settings import Settings
from tests.services.test_private_files import assert_private, modes


def test_a_new_backend_creates_its_data_folder_and_files_private(tmp_path: Path,
                                                                 sandbox: SandboxHandle) -> None:
    data = tmp_path / "new-backend" / "data"
    settings = Settings(data_dir=data, sandbox_url=sandbox.base_url, max_retries=0,
                        backend_demo=True)  # the demo signing key is made in demo mode
    assert settings.sandbox_mode
    old = os.umask(0o022)
    try:
        app = create_app(settings)
        backend = app.state.backend
        try:
            assert backend.jwt is not None
            backend.audit.flush_anchor()
            found = modes(data)
            assert {"console.db", "vault.key", "backend-jwt.key"} <= set(found), found
            assert_private(data)
        finally:
            backend.close()
    finally:
        os.umask(old)


def test_a_backend_started_on_a_loose_data_folder_says_so(tmp_path: Path, sandbox: SandboxHandle,
                                                          caplog) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o750)
    settings = Settings(data_dir=data, sandbox_url=sandbox.base_url, max_retries=0,
                        backend_demo=True)  # the demo signing key is made in demo mode
    with caplog.at_level(logging.WARNING, logger="services.private_files"):
        app = create_app(settings)
    app.state.backend.close()
    assert [r.getMessage() for r in caplog.records] == [
        f"private data: The folder {data} has mode 0750: group can use it. Make it private "
        f"with `chmod 700 {data}`."]
    assert modes(data)["."] == "0750"  # reported, not changed
