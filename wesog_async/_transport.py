"""The request path: one aiohttp session, the key, headers, timeouts, the
cool-down, body caps and retries. Everything above it sends requests through
:meth:`Transport.request`; nothing here knows about operations or images.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

import aiohttp
import attrs

from wesog_async import _attempts, _jsonlib, _sansio
from wesog_async import _wire as wire
from wesog_async._attempts import RequestKind
from wesog_async._errors import (
    ClientClosedError,
    ConnectError,
    ResponseTooLargeError,
    ResponseValidationError,
    TransportError,
)
from wesog_async._retry import RetryPolicy, Sleep, call_with_retries
from wesog_async._stats import ClientStats

logger = logging.getLogger("wesog_async")

T = TypeVar("T")
Params = list[tuple[str, str]] | None

_REDACTED: Final = b"<redacted>"
_CHUNK: Final = 1 << 16


@attrs.frozen
class Response:
    """A 2xx response: its status and raw body."""

    status: int
    body: bytes
    #: The request was sent again after a failure that may have left an earlier
    #: attempt applied (reset after sending, timeout, 500/502/504).
    resent: bool = False

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

    ``connect`` bounds opening a connection, ``response`` the wait for the
    answer once the request is on the wire (``long_wait`` for writes sent with
    ``wait=True``). Waiting for a free connection of the pool is not timed:
    the caller's deadline bounds it.
    """

    connect: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    response: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    long_wait: float = attrs.field(default=600.0, validator=attrs.validators.gt(0))

    def aiohttp(self, response: float) -> aiohttp.ClientTimeout:
        connect = min(self.connect, response)
        return aiohttp.ClientTimeout(
            total=connect + response, connect=connect, sock_connect=connect, sock_read=response
        )


@attrs.frozen(kw_only=True)
class BodyLimits:
    """Caps on response bodies in bytes, checked on the decompressed size while
    reading: ``status`` for operation status polls, ``default`` for the rest."""

    status: int = attrs.field(default=8 << 20, validator=attrs.validators.gt(0))
    default: int = attrs.field(default=64 << 20, validator=attrs.validators.gt(0))


class Transport:
    """Owns the session and sends requests (see :meth:`request`)."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None,
        timeouts: Timeouts,
        limits: BodyLimits,
        retry: RetryPolicy,
        max_connections: int,
        ssl: Any,
        user_agent: str,
        sleep: Sleep,
        stats: ClientStats,
    ) -> None:
        self.__api_key = api_key
        self.__key_bytes = api_key.encode("utf-8", "replace")
        self.base_url = base_url
        self.retry_policy = retry
        self.timeouts = timeouts
        self.limits = limits
        self.sleep: Sleep = sleep
        self.stats = stats
        self._borrowed = session
        self._session: aiohttp.ClientSession | None = None
        self._max_connections = max_connections
        self._ssl = ssl
        self._user_agent = user_agent
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._cooldown_until = 0.0
        #: Called with the seconds of each cool-down a server asks for (a 429
        #: or 503 with Retry-After), e.g. to share it with other processes.
        self.on_server_cool_down: Callable[[float], None] | None = None
        self._timeouts = {False: timeouts.aiohttp(timeouts.response)}
        self._closed = False

    def __repr__(self) -> str:
        return f"<Transport base_url={self.base_url!r} api_key=<redacted>>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def tenant_fingerprint(self) -> str:
        """A hash naming the tenant (the API key) without revealing the key:
        what a bulk journal records to refuse a resume with another key."""
        digest = hashlib.sha256(b"wesog-async tenant\0" + self.__key_bytes).hexdigest()
        return f"sha256:{digest[:32]}"

    @property
    def is_open(self) -> bool:
        """Whether the session is open in a running loop."""
        return self._session is not None and not self._closed

    # -- lifecycle -------------------------------------------------------------

    def open(self) -> None:
        """Bind to the running loop and open (or adopt) the session."""
        if self._closed:
            raise RuntimeError("this WesogClient is closed; create a new one")
        if self._loop is not None:
            raise RuntimeError("this WesogClient is already open")
        self._loop = asyncio.get_running_loop()
        if self._borrowed is not None:
            if self._borrowed.closed:
                raise RuntimeError("the borrowed aiohttp session is closed")
            self._session = self._borrowed
            limit = self._borrowed.connector.limit if self._borrowed.connector else 0
            self._slots = asyncio.Semaphore(limit or self._max_connections)
            return
        connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl)
        self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
        # aiohttp silently resends PUT/DELETE once when a kept-alive connection
        # drops after the body was sent. Retries are ours to decide: a strict
        # write must not be resent after an ambiguous failure (FAULTS F6).
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        # Requests wait for a connection here, not in aiohttp's pool, so the
        # wait is never mistaken for a timeout of a request that was sent.
        self._slots = asyncio.Semaphore(self._max_connections)

    async def aclose(self) -> None:
        """Close an owned session (a borrowed one is left open)."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._borrowed is None:
            await session.close()

    def check_usable(self) -> aiohttp.ClientSession:
        """The open session, or a ``RuntimeError`` saying what is wrong."""
        if self._closed:
            raise RuntimeError("this WesogClient is closed")
        if self._session is None or self._loop is None:
            raise RuntimeError(
                "WesogClient is not open: use `async with WesogClient(...) as client:`"
            )
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("WesogClient must be used from a running event loop") from None
        if running is not self._loop:
            raise RuntimeError(
                "this WesogClient belongs to another event loop; create one per loop"
            )
        return self._session

    def cool_down(self, seconds: float) -> None:
        """Hold every request of this transport for ``seconds`` (a 429 hint)."""
        loop = self._loop
        if loop is not None and seconds > 0:
            self._cooldown_until = max(self._cooldown_until, loop.time() + seconds)

    # -- the request path ------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        kind: RequestKind,
        params: Params = None,
        body: bytes | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
        long_wait: bool = False,
        retry: RetryPolicy | None = None,
        response_timeout: float | None = None,
        on_throttle: Callable[[], None] | None = None,
        on_retry: Callable[[BaseException], None] | None = None,
    ) -> Response:
        """Send one API request with retries by ``kind`` (see
        :mod:`wesog_async._attempts`); return the 2xx response.

        Non-2xx statuses raise :class:`APIStatusError` subclasses, transport
        failures :class:`TransportError`. ``response_timeout`` overrides the response
        timeout of this call; ``on_throttle`` is called on every 429 of it.
        """
        session = self.check_usable()
        policy = retry or self.retry_policy
        resent = False

        async def attempt() -> Response:
            return await self._send_once(
                session,
                method,
                path,
                kind,
                params,
                body,
                form,
                long_wait,
                response_timeout,
                on_throttle,
            )

        def retried(exc: BaseException, _delay: float) -> None:
            nonlocal resent
            self.stats.retries += 1
            if kind in ("write", "strict_write") and _attempts.maybe_applied(exc):
                resent = True
                self.stats.ambiguous_resends += 1
            if on_retry is not None:
                on_retry(exc)

        resp = await call_with_retries(
            attempt, policy=policy, kind=kind, sleep=self.sleep,
            name=f"{method} {path}", on_retry=retried,
        )  # fmt: skip
        return attrs.evolve(resp, resent=True) if resent else resp

    async def call(
        self,
        method: str,
        path: str,
        parse: Callable[[Response], T],
        *,
        kind: RequestKind,
        params: Params = None,
        retry: RetryPolicy | None = None,
        on_attempt: Callable[[], None] | None = None,
        on_retry: Callable[[BaseException], None] | None = None,
    ) -> T:
        """A read whose parsing is part of the attempt: an unparseable body is
        retried like a transport failure (status polls)."""
        session = self.check_usable()

        async def attempt() -> T:
            if on_attempt is not None:
                on_attempt()
            resp = await self._send_once(
                session, method, path, kind, params, None, None, False, None, None
            )
            return parse(resp)

        def retried(exc: BaseException, _delay: float) -> None:
            if on_retry is not None:
                on_retry(exc)

        return await call_with_retries(
            attempt, policy=retry or self.retry_policy, kind=kind, retry_invalid_body=True,
            sleep=self.sleep, name=f"{method} {path}", on_retry=retried,
        )  # fmt: skip

    async def _send_once(
        self,
        session: aiohttp.ClientSession,
        method: str,
        path: str,
        kind: RequestKind,
        params: Params,
        body: bytes | None,
        form: Callable[[], aiohttp.FormData] | None,
        long_wait: bool,
        response_timeout: float | None,
        on_throttle: Callable[[], None] | None,
    ) -> Response:
        loop = self._loop
        assert loop is not None and self._slots is not None
        delay = self._cooldown_until - loop.time()
        if delay > 0:
            await self.sleep(delay)
        headers = {wire.HEADER_API_KEY: self.__api_key, "User-Agent": self._user_agent}
        data: Any = form() if form is not None else None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = body
        if response_timeout is not None:
            client_timeout = self.timeouts.aiohttp(response_timeout)
        elif long_wait:
            client_timeout = self.timeouts.aiohttp(self.timeouts.long_wait)
        else:
            client_timeout = self._timeouts[False]
        limit = self.limits.status if kind == "poll" else self.limits.default
        async with self._slots:
            if self._closed or session.closed:
                raise ClientClosedError(f"{method} {path}: the client closed before sending")
            self.stats.requests += 1
            try:
                async with session.request(
                    method,
                    self.base_url + path,
                    params=params,
                    data=data,
                    headers=headers,
                    allow_redirects=False,
                    timeout=client_timeout,
                    ssl=self._ssl,
                ) as resp:
                    status = resp.status
                    raw = await _read_capped(resp, limit, method, path)
                    retry_after_header = resp.headers.get(wire.HEADER_RETRY_AFTER)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else str(exc)
                raise ConnectError(
                    f"cannot connect ({type(exc).__name__}: {reason})", method=method, path=path
                ) from None
            except ResponseTooLargeError:
                raise
            except (TimeoutError, aiohttp.ClientError, RuntimeError) as exc:
                if self._closed:
                    raise ClientClosedError(
                        f"{method} {path}: the client closed while the request was in flight",
                        maybe_applied=True,
                    ) from None
                if isinstance(exc, RuntimeError):
                    raise
                if isinstance(exc, TimeoutError):
                    raise TransportError(
                        "timed out waiting for the response", method=method, path=path
                    ) from None
                # Never chain the aiohttp error itself: its request_info holds headers.
                raise TransportError(
                    f"connection failed ({type(exc).__name__})", method=method, path=path
                ) from None
        if self.__key_bytes in raw:
            # A server that echoes the key must not put it in an error or a log.
            raw = raw.replace(self.__key_bytes, _REDACTED)
        if 200 <= status < 300:
            return Response(status, raw)
        retry_after = _sansio.parse_retry_after(retry_after_header, now=time.time())
        error = _sansio.error_for_status(
            status, raw, method=method, path=path, retry_after=retry_after
        )
        if status == 429:
            self.stats.throttles += 1
            if on_throttle is not None:
                on_throttle()
        if (
            status in (429, 503)
            and retry_after is not None
            and 0 < retry_after <= self.retry_policy.retry_after_cap
        ):
            self.cool_down(retry_after)
            if self.on_server_cool_down is not None:
                self.on_server_cool_down(retry_after)
        raise error


async def _read_capped(resp: aiohttp.ClientResponse, limit: int, method: str, path: str) -> bytes:
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


__all__ = ["BodyLimits", "Params", "Response", "Timeouts", "Transport"]
