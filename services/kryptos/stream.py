"""Incremental reading of one JSON array out of a streamed answer.

The grants list can hold hundreds of thousands of grants; `stream_array` decodes its items
one at a time from the HTTP stream, so only a chunk of the body and one item are held at
once, however long the list.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Protocol

from services.kryptos.errors import MalformedResponseError
from services.kryptos.transport import JSONValue

_STREAM_CHUNK = 256 * 1024
_SKIP = re.compile(r"[ \t\r\n]*,?[ \t\r\n]*")


class ByteSource(Protocol):
    """An answer's body read in chunks (`transport.StreamedResponse`)."""

    def iter_bytes(self, chunk_size: int) -> Iterator[bytes]: ...


def stream_array(source: ByteSource, key: str, *, method: str, path: str) -> Iterator[JSONValue]:
    """The items of the array under `key` in a JSON answer, decoded one at a time from the
    response stream (the envelope's `{"success": true, "data": {"<key>": [...]}}`): only a
    chunk and one item are held at once. An answer without that array is malformed
    (`MalformedResponseError` naming `method` and `path`)."""
    return _ArrayStream(source, method, path).items(key)


class _ArrayStream:
    def __init__(self, source: ByteSource, method: str, path: str) -> None:
        self._chunks = source.iter_bytes(_STREAM_CHUNK)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()  # a character may span chunks
        self._method = method
        self._path = path
        self.buf = ""
        self.pos = 0

    def _malformed(self, message: str) -> MalformedResponseError:
        return MalformedResponseError(message, method=self._method, path=self._path)

    def more(self) -> bool:
        """Drop what was read, then add the next chunk (False at the end)."""
        self.buf, self.pos = self.buf[self.pos:], 0
        for raw in self._chunks:
            try:
                self.buf += self._utf8.decode(raw)
            except UnicodeDecodeError:
                raise self._malformed("The answer is not UTF-8.") from None
            return True
        return False

    def skip_separator(self) -> None:
        """Move past blanks and at most one comma (the pattern also matches nothing)."""
        found = _SKIP.match(self.buf, self.pos)
        if found is not None:
            self.pos = found.end()

    def items(self, key: str) -> Iterator[JSONValue]:
        marker = re.compile(r'"' + re.escape(key) + r'"\s*:\s*\[')
        while (found := marker.search(self.buf)) is None:
            if not self.more():
                raise self._malformed(f"The answer has no '{key}' list.")
        self.pos = found.end()
        decoder = json.JSONDecoder()
        while True:
            self.skip_separator()
            if self.pos >= len(self.buf):
                if not self.more():
                    raise self._malformed("The answer ended inside the list.")
                continue
            if self.buf[self.pos] == "]":
                return
            while True:
                try:
                    item: JSONValue
                    item, self.pos = decoder.raw_decode(self.buf, self.pos)
                    break
                except json.JSONDecodeError:
                    if not self.more():
                        raise self._malformed("The answer is not JSON.") from None
            yield item


__all__ = ["ByteSource", "stream_array"]
