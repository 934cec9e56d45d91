"""The fast server's HTTP/1.1 side: one :class:`HttpProtocol` per connection.

Keep-alive, ``Content-Length`` and chunked request bodies, answers in request
order (an answer held for a delay holds the requests after it on that
connection, as HTTP/1.1 without pipelining does anyway). Routing is
:class:`benchmarks.fastserver.App`'s.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.fastserver import App

_MAX_HEAD = 65536
_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized"}
_REASONS |= {404: "Not Found", 405: "Method Not Allowed", 415: "Unsupported Media Type"}


def response(status: int, body: bytes, close: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    )
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


class HttpProtocol(asyncio.Protocol):
    """One connection: HTTP/1.1 keep-alive, answers in request order."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # an answer is being held: later requests wait for it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.process()

    def process(self) -> None:
        while not self.busy and self.transport is not None and self.buf:
            try:
                request = self.parse()
            except ValueError:
                self.send(response(400, b'{"detail":"bad request"}', close=True), close=True)
                return
            if request is None:
                return
            method, target, key, body, close, enc = request
            status, out, hold = self.app.handle(method, target, key, body, enc)
            if hold > 0:
                self.busy = True
                loop = asyncio.get_running_loop()
                loop.call_later(hold, self.send_held, status, out, close)
                return
            self.send(response(status, out, close), close=close)

    def send_held(self, status: int, out: Any, close: bool) -> None:
        self.busy = False
        self.send(response(status, out() if callable(out) else out, close), close=close)
        self.process()

    def send(self, data: bytes, *, close: bool) -> None:
        if self.transport is None:
            return
        self.app.state.responses[int(data[9:12])] += 1
        self.transport.write(data)
        if close:
            self.transport.close()
            self.transport = None

    def parse(self) -> tuple[bytes, bytes, bytes | None, bytes, bool, bool] | None:
        """One complete request off the buffer, or ``None`` until more arrives."""
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HEAD:
                raise ValueError("header too large")
            return None
        lines = bytes(buf[:end]).split(b"\r\n")
        method, target, version = lines[0].split(b" ", 2)
        length, key, chunked, enc = 0, None, False, False
        close = version == b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"api-key":
                key = value.strip()
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"content-encoding":
                enc = value.strip().lower() != b"identity"
        start = end + 4
        if chunked:
            got = _dechunk(buf, start)
            if got is None:
                return None
            body, consumed = got
        else:
            if len(buf) < start + length:
                return None
            body, consumed = bytes(buf[start : start + length]), start + length
        del buf[:consumed]
        return method, target, key, body, close, enc


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """A chunked body starting at ``pos``: ``(body, end)``, ``None`` if incomplete."""
    parts: list[bytes] = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            if buf[pos : pos + 2] == b"\r\n":
                return b"".join(parts), pos + 2
            trailer_end = buf.find(b"\r\n\r\n", pos)
            return None if trailer_end < 0 else (b"".join(parts), trailer_end + 4)
        if len(buf) < pos + size + 2:
            return None
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2
