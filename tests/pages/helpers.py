"""Small helpers for page tests."""

from __future__ import annotations

import re

_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~$:])")


def shown(markdown: str) -> str:
    """The text a person reads for an element whose body is escaped Markdown
    (`dashboard.ui.escape_markdown`): the backslash escapes removed."""
    return _ESCAPE.sub(r"\1", markdown)
