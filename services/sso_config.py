"""Streamlit's `[auth]` secrets for single sign-on (`st.login`), made from the console's
settings at start-up.

Streamlit reads the OpenID Connect client of `st.login` from the `[auth]` table of its
secrets files (option `secrets.files`). The launcher (`python -m backend.launch`, which
`bin/console` runs) writes that table to a private file in the data folder
(`streamlit-auth.toml`, 0600, replaced atomically) and starts Streamlit with
`--secrets.files` naming it, so the client secret stays in the console's own settings
(environment or `[console]`) and nobody edits two files.

Streamlit signs its identity cookie with `cookie_secret`: it is derived from the console's
cookie key (HMAC-SHA256), so every replica started with the same settings accepts the same
cookie and nothing new has to be kept secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from pathlib import Path

from services.private_files import private_dir
from services.secret_file import secret_file
from services.settings import Settings

AUTH_FILE_NAME = "streamlit-auth.toml"
#: Sandbox mode's generated cookie key (the same file dashboard/runtime.py uses).
SANDBOX_COOKIE_KEY_FILE = "cookie.key"


def cookie_secret(settings: Settings) -> str:
    """Streamlit's identity-cookie secret, derived from the console's cookie key (sandbox
    mode: its generated key file)."""
    key = settings.cookie_key or secret_file(settings.data_dir / SANDBOX_COOKIE_KEY_FILE)
    return hmac.new(key.encode("utf-8"), b"streamlit st.login identity cookie",
                    hashlib.sha256).hexdigest()


def auth_section(settings: Settings) -> dict[str, object]:
    """The `[auth]` table for the settings' provider and client."""
    assert settings.sso_enabled
    return {
        "redirect_uri": settings.sso_redirect_uri,
        "cookie_secret": cookie_secret(settings),
        "client_id": settings.sso_client_id,
        "client_secret": settings.sso_client_secret,
        "server_metadata_url": settings.effective_sso_metadata_url,
        "client_kwargs": {"scope": settings.sso_scopes},
    }


def _toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    # A JSON string of printable ASCII is a TOML basic string.
    return json.dumps(str(value), ensure_ascii=True)


def render_auth_toml(settings: Settings) -> str:
    lines = ["# Written by the console at start from its settings (services/sso_config.py).",
             "# Edits are lost at the next start: change the CONSOLE_SSO_* settings instead.",
             "[auth]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in auth_section(settings).items()]
    return "\n".join(lines) + "\n"


def write_auth_file(settings: Settings) -> Path | None:
    """Write `<data_dir>/streamlit-auth.toml` (0600, atomically); None, and an existing file
    removed, when single sign-on is not configured."""
    path = settings.data_dir / AUTH_FILE_NAME
    if not settings.sso_enabled:
        path.unlink(missing_ok=True)
        return None
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".streamlit-auth.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp makes it 0600
            fh.write(render_auth_toml(settings))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def streamlit_args(settings: Settings) -> list[str]:
    """`streamlit run` options that give Streamlit the `[auth]` table (none without SSO)."""
    path = write_auth_file(settings)
    return [] if path is None else ["--secrets.files", str(path)]
