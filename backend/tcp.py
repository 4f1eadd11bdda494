"""`NoDelayH11Protocol`: uvicorn's HTTP/1.1 protocol with Nagle's algorithm off on every
connection it serves.

uvicorn writes an answer in several `send()`s (the status line and headers, then the body).
With Nagle's algorithm on, the kernel holds the second write back until the client
acknowledges the first, and a client that delays its acknowledgement (Linux: at least 40 ms)
makes every answer on a kept-alive connection wait that long. asyncio turns Nagle off only
for sockets whose protocol number reads `IPPROTO_TCP`; the listening socket uvicorn binds
for several workers is made with `socket.socket(family=...)` (protocol number 0), so the
connections it accepts kept Nagle on: one keep-alive call took 44 ms instead of 0.5 ms
with BACKEND_WORKERS=2. Setting TCP_NODELAY when the connection is made covers every way
the listening socket can come to the server (bound here, by uvicorn, or handed over)."""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

#: What `uvicorn.Config(http=...)` takes for this protocol (an import string: the worker
#: processes import it themselves).
HTTP_PROTOCOL = "backend.tcp:NoDelayH11Protocol"


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """TCP_NODELAY on the transport's socket when it is a TCP one (not a Unix socket)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's h11 protocol; each connection's socket gets TCP_NODELAY first."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)
