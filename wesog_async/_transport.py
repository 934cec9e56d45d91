"""The request path: one aiohttp session, the key, headers, timeouts, the
cool-down, body caps and retries. Everything above it sends requests through
:meth:`Transport.request`; nothing here knows about operations or images.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

import aiohttp
import attrs

from wesog_async import _attempts, _sansio, _telemetry
from wesog_async import _wire as wire
from wesog_async._attempts import RequestKind
from wesog_async._deadline import Deadlines
from wesog_async._errors import ClientClosedError, WesogError
from wesog_async._http import (
    BodyLimits,
    DeadlineConnector,
    Response,
    Timeouts,
    own_session,
    read_capped,
    scrub_secret,
    send_failure,
)
from wesog_async._retry import RetryPolicy, Sleep, call_with_retries
from wesog_async._stats import ClientStats
from wesog_async._telemetry_labels import new_request_id, server_request_id

logger = logging.getLogger("wesog_async")

T = TypeVar("T")
Params = list[tuple[str, str]] | None

_WRITE_KINDS: Final = frozenset({"write", "strict_write"})


class _Slots:
    """The connections a transport may use at once: a counting semaphore whose
    free slot is taken without an await (``asyncio.Semaphore`` is pure Python
    and costs ~100 bytecodes a request). Waiters are served in order; a slot
    is handed to the next waiter directly on release."""

    __slots__ = ("_waiters", "free")

    def __init__(self, n: int) -> None:
        self.free = n
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_take(self) -> bool:
        """Take a free slot if one is free and nobody waits for one."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        """Wait for a slot (after :meth:`try_take` said none was free)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot, then cancelled: pass it on
            elif waiter in self._waiters:  # (give() drops a cancelled one itself)
                self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        """Release a slot: to the first waiter, else back to the free count."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


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
        telemetry: _telemetry.Telemetry | None = None,
    ) -> None:
        self.__api_key = api_key
        self.__key_bytes = api_key.encode("utf-8", "replace")
        self.base_url = base_url
        self.retry_policy = retry
        self.timeouts = timeouts
        self.limits = limits
        self.sleep: Sleep = sleep
        self.stats = stats
        #: [telemetry] spans, metrics and the per-attempt DEBUG line.
        self.telemetry = telemetry or _telemetry.Telemetry(base_url)
        self._borrowed = session
        self._session: aiohttp.ClientSession | None = None
        self._max_connections = max_connections
        self._ssl = ssl
        self._user_agent = user_agent
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: _Slots | None = None
        self._deadlines: Deadlines | None = None
        self._cooldown_until = 0.0
        #: Called with the seconds of each cool-down a server asks for (a 429
        #: or 503 with Retry-After), e.g. to share it with other processes.
        self.on_server_cool_down: Callable[[float], None] | None = None
        self._deadline = False
        self._timeouts = {False: timeouts.aiohttp(timeouts.response)}
        self._closed = False
        # Set when the client starts closing: no new write leaves from then on
        # (so none is caught in flight by the close), while polls may still
        # run for a drain.
        self._closing = False

    def __repr__(self) -> str:
        return f"<Transport base_url={self.base_url!r} api_key=<redacted>>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`begin_close` or :meth:`aclose` was called."""
        return self._closed or self._closing

    def begin_close(self) -> None:
        """Refuse new writes (:class:`ClientClosedError`, known not sent) from now on."""
        self._closing = True

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
        self._deadlines = Deadlines(self._loop)
        self.telemetry.bind()  # [telemetry] providers are looked up once, here
        if self._borrowed is not None:
            if self._borrowed.closed:
                raise RuntimeError("the borrowed aiohttp session is closed")
            self._session = self._borrowed
            limit = self._borrowed.connector.limit if self._borrowed.connector else 0
            self._slots = _Slots(limit or self._max_connections)
        else:
            self._session = own_session(self._max_connections, self._ssl)
            # Requests wait for a connection here, not in aiohttp's pool, so the
            # wait is never mistaken for a timeout of a request that was sent.
            self._slots = _Slots(self._max_connections)
        # A session on our connector bounds each response by one deadline
        # armed once connected; any other keeps aiohttp's total and sock_read.
        self._deadline = isinstance(self._session.connector, DeadlineConnector)
        self._timeouts = {
            False: self.timeouts.aiohttp(self.timeouts.response, deadline=self._deadline)
        }

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
        send = self._send_once
        # [telemetry] one id per call; observed only when someone listens.
        rid = new_request_id()
        tel = self.telemetry
        obs = tel.call(method, path, kind, rid) if tel.active or _debug() else None
        try:
            # The first attempt without closures or retry machinery: the common case.
            sending = send(
                session, method, path, kind, params, body, form, long_wait, response_timeout,
                on_throttle, rid,
            )  # fmt: skip
            resp = await (sending if obs is None else _telemetry.observed(sending, rid, obs))
        except Exception as exc:
            if isinstance(exc, WesogError):
                exc.request_id = rid
            first_failure = exc
        else:
            if obs is not None:
                obs.end(None)  # [telemetry]
            return resp
        resent = False

        async def attempt() -> Response:
            sending = send(
                session, method, path, kind, params, body, form, long_wait, response_timeout,
                on_throttle, rid,
            )  # fmt: skip
            return await _telemetry.observed(sending, rid, obs)

        def retried(exc: BaseException, delay: float) -> None:
            nonlocal resent
            self.stats.retries += 1
            if kind in ("write", "strict_write") and _attempts.maybe_applied(exc):
                resent = True
                self.stats.ambiguous_resends += 1
            if obs is not None:
                obs.retried(exc, delay)  # [telemetry]
            if on_retry is not None:
                on_retry(exc)

        try:
            resp = await call_with_retries(
                attempt, policy=retry or self.retry_policy, kind=kind, sleep=self.sleep,
                name=f"{method} {path}", on_retry=retried, first_failure=first_failure,
            )  # fmt: skip
        except BaseException as exc:
            if obs is not None:
                obs.end(exc)  # [telemetry]
            raise
        if obs is not None:
            obs.end(None)  # [telemetry]
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
        span: Any = None,
    ) -> T:
        """A read whose parsing is part of the attempt: an unparseable body is
        retried like a transport failure (status polls). Its retries are
        events of ``span`` (the operation's), not a span of its own."""
        session = self.check_usable()
        # [telemetry] as in request(), but no span of its own.
        rid = new_request_id()
        tel = self.telemetry
        obs = tel.call(method, path, kind, rid, events_on=span) if tel.active or _debug() else None

        async def attempt() -> T:
            if on_attempt is not None:
                on_attempt()
            sending = self._send_once(
                session, method, path, kind, params, None, None, False, None, None, rid
            )
            try:
                # No observed() layer when nobody listens (every status poll).
                resp = await (sending if obs is None else _telemetry.observed(sending, rid, obs))
            except WesogError as exc:
                exc.request_id = rid
                raise
            try:
                return parse(resp)
            except WesogError as exc:
                exc.request_id, exc.server_request_id = rid, resp.server_request_id
                raise

        try:
            # The first attempt without the retry machinery around it, as in
            # request(): the common case (every status poll).
            return await attempt()
        except Exception as exc:
            first_failure = exc

        def retried(exc: BaseException, delay: float) -> None:
            if obs is not None:
                obs.retried(exc, delay)  # [telemetry]
            if on_retry is not None:
                on_retry(exc)

        return await call_with_retries(
            attempt, policy=retry or self.retry_policy, kind=kind, retry_invalid_body=True,
            sleep=self.sleep, name=f"{method} {path}", on_retry=retried,
            first_failure=first_failure,
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
        rid: str,
    ) -> Response:
        loop, deadlines = self._loop, self._deadlines
        assert loop is not None and self._slots is not None and deadlines is not None
        delay = self._cooldown_until - loop.time()
        if delay > 0:
            await self.sleep(delay)
        headers = {
            wire.HEADER_API_KEY: self.__api_key,
            "User-Agent": self._user_agent,
            wire.HEADER_REQUEST_ID: rid,
        }
        data: Any = form() if form is not None else None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = body
        if response_timeout is not None:
            seconds = response_timeout
            client_timeout = self.timeouts.aiohttp(seconds, deadline=self._deadline)
        elif long_wait:
            seconds = self.timeouts.long_wait
            client_timeout = self.timeouts.aiohttp(seconds, deadline=self._deadline)
        else:
            seconds = self.timeouts.response
            client_timeout = self._timeouts[False]
        limit = self.limits.status if kind == "poll" else self.limits.default
        slots = self._slots
        if not slots.try_take():
            await slots.take()
        try:
            if self._closed or session.closed or (self._closing and kind in _WRITE_KINDS):
                raise ClientClosedError(f"{method} {path}: the client closed before sending")
            self.stats.requests += 1
            try:
                # The response deadline: armed by the connector once connected
                # (a session on another connector leaves it unarmed).
                with deadlines.deadline(seconds):
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
                        raw = await read_capped(resp, limit, method, path)
                        retry_after_header = resp.headers.get(wire.HEADER_RETRY_AFTER)
                        # Server text too: scrubbed of the key, like the body below.
                        server_rid = server_request_id(resp.headers, secret=self.__api_key)
            except (TimeoutError, aiohttp.ClientError, RuntimeError) as exc:
                error = send_failure(exc, method, path, closed=self._closed)
                if error is None:
                    raise
                # Never chain the aiohttp error itself: its request_info holds headers.
                raise error from None
        finally:
            slots.give()
        # A server that echoes the key must not put it in an error or a log.
        raw = scrub_secret(raw, self.__key_bytes)
        if 200 <= status < 300:
            return Response(status, raw, request_id=rid, server_request_id=server_rid)
        retry_after = _sansio.parse_retry_after(retry_after_header, now=time.time())
        error = _sansio.error_for_status(
            status, raw, method=method, path=path, retry_after=retry_after
        )
        error.server_request_id = server_rid
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


def _debug() -> bool:
    return logger.isEnabledFor(logging.DEBUG)


__all__ = ["Params", "Transport"]
