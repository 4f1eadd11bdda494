"""A small `(method, path pattern) -> handler` table: `{name}` in a pattern matches one path
segment and reaches the handler as `call.params[name]`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

_PARAM = re.compile(r"\{(\w+)\}")


@dataclass
class Call:
    """One request as a handler sees it (`body` parsed where the API parses it)."""

    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: Any = None
    body: dict = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    def one(self, name: str) -> str | None:
        """The last value of query parameter `name`, or None."""
        values = self.query.get(name)
        return values[-1] if values else None


H = TypeVar("H", bound=Callable[..., tuple[int, dict]])


@dataclass(frozen=True)
class Match(Generic[H]):
    """What the table says about a (method, path): the handler and its path parameters, or
    None with `path_known` telling 405 (another method would match) from 404."""

    handler: H | None
    params: dict[str, str]
    path_known: bool


class Router(Generic[H]):
    """Routes in the order added; the first whose method and pattern match wins."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], H]] = []

    def add(self, method: str, pattern: str, handler: H) -> None:
        regex = _PARAM.sub(lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(pattern)
                           .replace(r"\{", "{").replace(r"\}", "}"))
        self._routes.append((method, re.compile(f"^{regex}$"), handler))

    def match(self, method: str, path: str) -> Match[H]:
        path_known = False
        for route_method, regex, handler in self._routes:
            found = regex.match(path)
            if found is None:
                continue
            if route_method == method:
                return Match(handler, found.groupdict(), True)
            path_known = True
        return Match(None, {}, path_known)
