"""The one logging setup of the console, the backend and the command-line tools.

`setup(service)` reads LOG_FORMAT (`text`, the default, or `json`) and LOG_LEVEL (`INFO`)
through services/settings.py and sends every record of the process to stderr: text lines
for a person at a terminal, or one JSON object a line for a log shipper, with the time,
level, logger, message, service, process id and the ids in play:

- `request_id`: the backend's `X-Request-Id` of the call being answered, or the console's
  script run (a page run of one browser session);
- `correlation_id`: the audit correlation id of the use case running (the `requested` and
  outcome events of one change share it, so a log line finds its audit events).

Both are `null` outside a request or a use case. They live in context variables
(`log_context`, `bind`), so threads and asyncio tasks each keep their own.

Never a secret: every line (message, arguments and traceback alike, in both formats)
goes through `Redactor`, which replaces the secret values the process knows (Kryptos
client secret, vault and cookie keys, JWT and webhook secrets, the database password:
`add_secrets` / `secrets_of`) and anything shaped like a token (Kryptos access, public and
link tokens, bearer values, JWTs, `whsec_` secrets, `password=` values, a URL's password).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import sys
import threading
import traceback
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from services.settings import ConfigError, LogSettings, Settings, log_settings

IDS = ("request_id", "correlation_id")
_CONTEXT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "log_context", default=None)

MASK = "***"
#: Token shapes masked wherever they appear in a line.
_PATTERNS = (
    # Kryptos tokens: access (cat_), public, link; a prefix and a long random tail.
    re.compile(r"\b(?:cat|public|link|access|refresh)_[A-Za-z0-9_-]{8,}"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.?[A-Za-z0-9_-]*"),  # a JWT
    re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"),
    re.compile(r"(?i)\b(password|passwd|secret|client_secret|token|api_key)"
               r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"),
    re.compile(r"(?<=://)([^/\s:@]+):([^@\s/]+)@"),  # a URL's user:password@
)


class Redactor:
    """Masks known secret values and token-shaped text in a string."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, values: Iterable[str | None]) -> None:
        with self._lock:
            # Short values would mask ordinary words; every real secret here is long.
            self._secrets |= {v for v in values if v and len(v) >= 8}

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(_mask_match, text)
        return text


def _mask_match(match: re.Match[str]) -> str:
    if match.re.pattern.startswith("(?<=://)"):
        return f"{match.group(1)}:{MASK}@"
    if match.lastindex and match.lastindex >= 3:  # key = value: keep the key
        return f"{match.group(1)}{match.group(2)}{MASK}"
    return MASK


REDACT = Redactor()


def add_secrets(*values: str | None) -> None:
    """Values that must never appear in a log line of this process."""
    REDACT.add(values)


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """The secret values in `settings` (the vault key's comma-separated keys one by one)."""
    values = [settings.client_secret, settings.cookie_key, settings.backend_jwt_secret,
              settings.webhook_secret, settings.webhook_secret_previous,
              settings.effective_webhook_secret]
    if settings.vault_key:
        values += [settings.vault_key, *settings.vault_key.split(",")]
    if settings.database_url:
        match = re.search(r"://[^/\s:@]+:([^@\s/]+)@", settings.database_url)
        if match:
            values.append(match.group(1))
    return tuple(v.strip() for v in values if v and v.strip())


# --- the ids in play ------------------------------------------------------------------------

def new_request_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


@contextlib.contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """Lines logged inside carry these ids (None leaves an id as it was)."""
    token = _CONTEXT.set({**current_ids(), **{k: v for k, v in ids.items() if v}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind(**ids: str | None) -> None:
    """Set ids for the rest of this thread's (or task's) context: for a Streamlit script
    run, whose thread has no enclosing block to put a `log_context` in. None drops an id."""
    current = current_ids()
    for key, value in ids.items():
        if value:
            current[key] = value
        else:
            current.pop(key, None)
    _CONTEXT.set(current)


def current_ids() -> dict[str, str]:
    return dict(_CONTEXT.get() or {})


# --- formats --------------------------------------------------------------------------------

class _Base(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def _parts(self, record: logging.LogRecord) -> tuple[str, str | None]:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        exc = None
        if record.exc_info:
            exc = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            exc = record.exc_text
        return REDACT(message), REDACT(exc) if exc else None


class TextFormatter(_Base):
    def format(self, record: logging.LogRecord) -> str:
        message, exc = self._parts(record)
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
        ids = "".join(f" {k}={v}" for k, v in current_ids().items())
        line = f"{when} {record.levelname} {record.name}: {message}{ids}"
        return f"{line}\n{exc}" if exc else line


class JsonFormatter(_Base):
    def format(self, record: logging.LogRecord) -> str:
        message, exc = self._parts(record)
        ids = current_ids()
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            "service": self.service,
            "pid": record.process,
            **{k: ids.get(k) for k in IDS},
        }
        if exc:
            line["exc"] = exc
        return json.dumps(line, ensure_ascii=False, default=str)


# --- setup ----------------------------------------------------------------------------------

_HANDLER_MARK = "_kryptos_handler"


class _Handler(logging.StreamHandler[TextIO]):
    """A stream handler that, without a stream of its own, writes to whatever `sys.stderr`
    is at the time of each line (as logging's last-resort handler does), so a replaced
    stderr (a test's capture, a daemon's redirect) never leaves it writing to a closed one."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._own = stream

    @property
    def stream(self) -> TextIO:
        return self._own if self._own is not None else sys.stderr

    @stream.setter
    def stream(self, value: TextIO | None) -> None:
        self._own = value


def configure(service: str, config: LogSettings,
              stream: TextIO | None = None) -> logging.Handler:
    """Route every record of the process to one handler on `stream` (stderr) in the
    configured format; replaces a handler an earlier call installed. Loggers that keep their
    own handlers (Streamlit's, uvicorn's) are pointed at the same one."""
    handler = _Handler(stream)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(JsonFormatter(service) if config.format == "json"
                         else TextFormatter(service))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    # basicConfig-style handlers another setup left would print each line twice.
    for old in list(root.handlers):
        if type(old) is logging.StreamHandler:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level)
    # Alembic says "Context impl ..." at INFO on every database opened: noise for a CLI's
    # stderr and the console's log; shown when DEBUG is asked for.
    logging.getLogger("alembic").setLevel(
        logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in ("streamlit", "uvicorn", "tornado"):
            lg = logging.getLogger(name)
            if lg.handlers:
                lg.handlers = [handler]
    return handler


def setup(service: str, settings: Settings | None = None, *,
          env: dict[str, str] | None = None, stream: Any = None) -> LogSettings:
    """Configure logging for `service` (console, backend, a CLI's name) from LOG_FORMAT and
    LOG_LEVEL; register the secrets of `settings`. A bad value logs in text, saying so."""
    try:
        config = log_settings(env)
        problem = None
    except ConfigError as exc:
        config, problem = LogSettings(), exc.user_message
    configure(service, config, stream)
    if settings is not None:
        add_secrets(*secrets_of(settings))
    if problem:
        logging.getLogger("services.logs").error("%s Logging as text.", problem)
    logging.getLogger("services.logs").debug("logging as %s at %s (pid %d)", config.format,
                                             config.level, os.getpid())
    return config
