"""Which address a failed login counts against behind reverse proxies, and whether the
browser uses https (services/operations/login_policy.py)."""

from __future__ import annotations

import pytest

from services.operations.login_policy import client_address, reached_over_https


@pytest.mark.parametrize("peer, forwarded, proxies, expected", [
    # No trusted proxy: the connection's address; the header (anyone's) is ignored.
    ("192.0.2.9", ["198.51.100.1"], 0, "192.0.2.9"),
    (None, ["198.51.100.1"], 0, "unknown"),  # localhost: Streamlit gives no address
    # One proxy (the README's nginx): the entry it appended, never what the client wrote.
    (None, ["10.0.0.5"], 1, "10.0.0.5"),
    (None, ["203.0.113.77, 10.0.0.5"], 1, "10.0.0.5"),
    (None, ["203.0.113.77, 198.51.100.3,10.0.0.5"], 1, "10.0.0.5"),
    # The header sent twice (the client's own line, then the proxy's): one list, in order.
    (None, ["203.0.113.77", "10.0.0.5"], 1, "10.0.0.5"),
    # Two proxies: the outer one's entry is the second from the right.
    (None, ["203.0.113.77, 10.0.0.5, 172.16.0.2"], 2, "10.0.0.5"),
    # Fewer entries than proxies: it did not come through them all; the connection's.
    ("192.0.2.9", ["10.0.0.5"], 2, "192.0.2.9"),
    ("192.0.2.9", [], 1, "192.0.2.9"),
    # Not an address (a port is dropped, IPv6 normalised).
    (None, ["203.0.113.77, not-an-ip"], 1, "unknown"),
    (None, ["10.0.0.5:51234"], 1, "10.0.0.5"),
    (None, ["[2001:DB8::1]:443"], 1, "2001:db8::1"),
    (None, ["2001:db8:0::2"], 1, "2001:db8::2"),
])
def test_client_address(peer, forwarded, proxies, expected):
    assert client_address(peer, forwarded, proxies) == expected


@pytest.mark.parametrize("url, proto, proxies, expected", [
    ("https://console.example/", [], 0, True),
    ("HTTPS://console.example/", [], 0, True),
    ("http://127.0.0.1:8501/", [], 0, False),
    (None, [], 0, False),
    ("http://127.0.0.1:8501/", ["https"], 0, False),  # no trusted proxy: ignored
    ("http://127.0.0.1:8501/", ["https"], 1, True),
    ("http://127.0.0.1:8501/", ["http"], 1, False),
    ("http://127.0.0.1:8501/", ["https, http"], 1, False),  # the nearest proxy's entry
    ("http://127.0.0.1:8501/", ["https, http"], 2, True),
])
def test_reached_over_https(url, proto, proxies, expected):
    assert reached_over_https(url, proto, proxies) is expected
