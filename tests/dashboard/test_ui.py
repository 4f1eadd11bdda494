"""Shared UI parts: upstream text rendered through Markdown can never become markup or a link."""

from __future__ import annotations

import re

from dashboard.ui import ZWSP, escape_markdown
from tests.pages.helpers import shown

# What GitHub-flavoured Markdown's autolinker turns into a link with no Markdown syntax at all
# (it runs on the text once backslash escapes are resolved, so escapes do not stop it).
AUTOLINK = re.compile(r"https?://|www\.|[-.\w+]+@[-\w]+\.[-\w]+", re.IGNORECASE)

UPSTREAM = ("Read http://evil.example/x, www.evil.example or HTTPS://evil2.example; "
            "write to help@evil.example or mailto:a@b.example")


def test_urls_and_addresses_in_upstream_text_cannot_become_links() -> None:
    rendered = escape_markdown(UPSTREAM)
    assert AUTOLINK.findall(shown(rendered)) == []
    # ...while a person still reads the same text (the zero-width spaces are invisible).
    assert shown(rendered).replace(ZWSP, "") == UPSTREAM
