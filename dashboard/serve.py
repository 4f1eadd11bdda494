"""`python -m dashboard.serve [streamlit run options]`: one console process, as a replica runs.

What `streamlit run dashboard/app.py` does, plus two things a replica needs before anybody
opens a page:

- Streamlit's `[auth]` secrets for single sign-on are written from the console's settings
  (services/sso_config.py) and passed with `--secrets.files`, so `st.login` works in a
  container started with this command alone.
- The console's runtime (`dashboard.runtime.get_runtime`) is built when the process starts,
  in a thread, while Streamlit's server comes up: its sync worker stands by for the sync
  lock, its reconciler and approval-expiry timers run, even on a replica no browser opened
  yet (a standby takes the sync over from a dead holder without waiting for a visitor).
  The runtime is Streamlit's cached resource, so the page runs get this same object; a page
  run that comes while it is being built waits for it (Streamlit computes a cached value
  once per key, under a lock).

`bin/console` (`python -m backend.launch`) runs this; so do compose.yaml and the Dockerfile.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from services.settings import ConfigError, load_settings
from services.sso_config import streamlit_args

APP = Path(__file__).resolve().with_name("app.py")

logger = logging.getLogger("dashboard.serve")  # also when run as __main__


def auth_args(env: dict[str, str] | None = None) -> list[str]:
    """`--secrets.files` for Streamlit's `[auth]` (nothing without single sign-on, or when
    the settings are wrong: the console's setup page then says what)."""
    try:
        return streamlit_args(load_settings(env))
    except ConfigError:
        return []


def _build_runtime() -> None:
    from dashboard.runtime import get_runtime

    runtime = get_runtime()
    if runtime.ok:
        logger.info("console runtime ready (%s mode)", runtime.mode)


def start_runtime() -> threading.Thread:
    """Build the process's runtime in a thread (see the module's docstring)."""
    thread = threading.Thread(target=_build_runtime, name="console-runtime", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    from streamlit.web import cli

    args = list(sys.argv[1:] if argv is None else argv)
    start_runtime()
    # Streamlit's own command line, in this process: `streamlit run <app> <options>`.
    cli.main(["run", str(APP), *args, *auth_args()], prog_name="streamlit")
    return 0  # click ends the process with Streamlit's exit status before this


if __name__ == "__main__":
    raise SystemExit(main())
