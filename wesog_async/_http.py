"""HTTP plumbing of the request path: the response, per-attempt timeouts and
the connector that starts each response deadline, body caps, reading a body
under its cap, the error for a failed send and the key scrubbed from a body.
No retries."""

from __future__ import annotations

from typing import Any, Final

import aiohttp
import attrs

from wesog_async import _jsonlib
from wesog_async._deadline import RESPONSE_DEADLINE
from wesog_async._errors import (
    ClientClosedError,
    ConnectError,
    ResponseTooLargeError,
    ResponseValidationError,
    TransportError,
    WesogError,
)

_CHUNK: Final = 1 << 16
_REDACTED: Final = b"<redacted>"


@attrs.frozen
class Response:
    """A 2xx response: its status and raw body."""

    status: int
    body: bytes
    #: The request was sent again after a failure that may have left an earlier
    #: attempt applied (reset after sending, timeout, 500/502/504).
    resent: bool = False
    #: The ``X-Request-ID`` this client sent with the call.
    request_id: str = ""
    #: The server's request id header, if it sent one.
    server_request_id: str | None = None

    def json(self) -> Any:
        """The body parsed as JSON, or :class:`ResponseValidationError`."""
        try:
            return _jsonlib.loads(self.body) if self.body else None
        except _jsonlib.JSON_DECODE_ERRORS as exc:
            raise ResponseValidationError(
                "response body is not valid JSON", body=self.body
            ) from exc


@attrs.frozen(kw_only=True)
class Timeouts:
    """Per-attempt time limits, kept apart so that a request that never left
    (waiting for a connection, connecting) is known not sent.

    ``connect`` bounds opening a connection, ``response`` the rest of the
    attempt once it has one: sending the request and reading the whole answer
    (``long_wait`` for writes sent with ``wait=True``). Waiting for a free
    connection of the pool is not timed: the caller's deadline bounds it.
    """

    connect: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    response: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    long_wait: float = attrs.field(default=600.0, validator=attrs.validators.gt(0))

    def aiohttp(self, response: float, *, deadline: bool = False) -> aiohttp.ClientTimeout:
        """aiohttp's timeouts for one attempt. With ``deadline`` (a session on a
        :class:`DeadlineConnector`) only the connect phase: the response is
        bounded by the attempt's deadline, armed once connected."""
        connect = min(self.connect, response)
        if deadline:
            return aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect)
        return aiohttp.ClientTimeout(
            total=connect + response, connect=connect, sock_connect=connect, sock_read=response
        )


@attrs.frozen(kw_only=True)
class BodyLimits:
    """Caps on response bodies in bytes, checked on the decompressed size while
    reading: ``status`` for operation status polls, ``default`` for the rest."""

    status: int = attrs.field(default=8 << 20, validator=attrs.validators.gt(0))
    default: int = attrs.field(default=64 << 20, validator=attrs.validators.gt(0))


async def read_capped(resp: aiohttp.ClientResponse, limit: int, method: str, path: str) -> bytes:
    """The whole (decompressed) body, or :class:`ResponseTooLargeError` as soon
    as it passes ``limit`` bytes: memory stays bounded whatever the server sends."""
    length = resp.content_length
    if length is not None and length > limit:
        raise _too_large(method, path, limit, f"announced {length} bytes")
    if length is not None and not resp.headers.get("Content-Encoding"):
        return await resp.read()
    parts: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            resp.close()
            raise _too_large(method, path, limit, "more after decompression")
        parts.append(chunk)
    return b"".join(parts)


def _too_large(method: str, path: str, limit: int, what: str) -> ResponseTooLargeError:
    return ResponseTooLargeError(
        f"response body over the {limit:,}-byte cap of this route ({what})",
        method=method,
        path=path,
        limit=limit,
    )


def send_failure(
    exc: TimeoutError | aiohttp.ClientError | RuntimeError,
    method: str,
    path: str,
    *,
    closed: bool,
) -> WesogError | None:
    """The error to raise, from ``None``, for ``exc`` raised while one request
    was sent or its response read; ``None`` to re-raise ``exc`` itself (a
    ``RuntimeError`` while the client is open). ``closed``: the client closed
    meanwhile, so the request may have been applied."""
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        return ConnectError(
            f"cannot connect ({type(exc).__name__}: {reason})", method=method, path=path
        )
    if closed:
        return ClientClosedError(
            f"{method} {path}: the client closed while the request was in flight",
            maybe_applied=True,
        )
    if isinstance(exc, RuntimeError):
        return None
    if isinstance(exc, TimeoutError):
        return TransportError("timed out waiting for the response", method=method, path=path)
    return TransportError(f"connection failed ({type(exc).__name__})", method=method, path=path)


def scrub_secret(raw: bytes, secret: bytes) -> bytes:
    """``raw`` with every occurrence of ``secret`` (the API key) redacted."""
    if secret in raw:
        return raw.replace(secret, _REDACTED)
    return raw


class DeadlineConnector(aiohttp.TCPConnector):
    """A connector that starts the response time of a request when it hands
    the request its connection (new or pooled): one deadline per attempt
    (:mod:`wesog_async._deadline`), where aiohttp's ``sock_read`` arms a timer
    per read and ``total`` one more."""

    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Any],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's signature
    ) -> aiohttp.connector.Connection:
        conn = await super().connect(req, traces, timeout)
        deadline = RESPONSE_DEADLINE.get()
        if deadline is not None:
            deadline.arm()
        return conn


def own_session(max_connections: int, ssl: Any) -> aiohttp.ClientSession:
    """The session a client owns: a pool of ``max_connections`` on a
    :class:`DeadlineConnector`, never raising for a status, and without
    aiohttp's own silent resend."""
    connector = DeadlineConnector(limit=max_connections, ssl=ssl)
    session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
    # aiohttp silently resends PUT/DELETE once when a kept-alive connection
    # drops after the body was sent. Retries are ours to decide: a strict
    # write must not be resent after an ambiguous failure (FAULTS F6).
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session


__all__ = [
    "BodyLimits",
    "DeadlineConnector",
    "Response",
    "Timeouts",
    "own_session",
    "read_capped",
    "scrub_secret",
    "send_failure",
]
