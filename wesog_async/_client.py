"""WesogClient: configuration, session lifecycle and the request path."""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import ssl
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiohttp
import attrs

from wesog_async import _jsonlib, _sansio
from wesog_async import _wire as wire
from wesog_async._errors import (
    APIStatusError,
    ConnectError,
    ResponseValidationError,
    TransportError,
)
from wesog_async._retry import PollPolicy, RetryPolicy, Sleep, call_with_retries

if TYPE_CHECKING:
    from wesog_async._images import ImagesAPI
    from wesog_async._ops import OpsAPI
    from wesog_async._poller import Poller
    from wesog_async._tag import TagAPI

logger = logging.getLogger("wesog_async")

_Params = list[tuple[str, str]] | None


@attrs.define
class ClientStats:
    """Counters of one client (see :meth:`WesogClient.stats`)."""

    requests: int = 0
    retries: int = 0
    throttles: int = 0
    submitted: int = 0
    finished: int = 0
    items_good: int = 0
    items_bad: int = 0
    polls: int = 0
    poll_retries: int = 0
    ambiguous_resends: int = 0


@attrs.frozen
class Response:
    """A 2xx response: its status and raw body."""

    status: int
    body: bytes
    #: The request was sent again after a failure that may have left an earlier
    #: attempt applied (reset after sending, timeout, 502/504).
    resent: bool = False

    def json(self) -> Any:
        """The body parsed as JSON, or :class:`ResponseValidationError`."""
        try:
            return _jsonlib.loads(self.body) if self.body else None
        except _jsonlib.JSON_DECODE_ERRORS as exc:
            raise ResponseValidationError(
                "response body is not valid JSON", body=self.body
            ) from exc


def _version() -> str:
    from wesog_async import __version__

    return __version__


class WesogClient:
    """The asyncio client of the Wesog API.

    Use it as ``async with WesogClient(api_key=...) as client:``. The API key
    and base URL default to ``WESOG_API_KEY`` and ``WESOG_BASE_URL``
    (``https://api.wesog.com``). Pass ``session=`` to borrow an
    ``aiohttp.ClientSession`` (it is never closed by the client).

    ``timeout`` bounds each HTTP attempt (``wait_timeout`` for writes sent with
    ``wait=True``, which hold the connection until the operation ends).
    ``retry`` governs request retries, ``poll`` the operation polling schedule;
    ``raise_on_failure`` makes awaiting an operation with failed items raise
    :class:`~wesog_async.OperationFailedError`. ``sleep`` replaces
    ``asyncio.sleep`` for retries and polling (tests).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
        wait_timeout: float = 600.0,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        raise_on_failure: bool = False,
        max_connections: int = 64,
        max_polls_in_flight: int = 16,
        batch_size: int = 100,
        max_batch_items: int = 10000,
        allow_insecure_http: bool = False,
        verify_tls: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(wire.ENV_API_KEY)
        if not key:
            raise ValueError(
                f"no API key: pass api_key=... or set {wire.ENV_API_KEY} "
                "(for local work, run the emulator: `wesog-async emulator`)"
            )
        if type(key) is not str or any(c in key for c in "\r\n"):
            raise ValueError("api_key must be a single-line string")
        url = base_url or os.environ.get(wire.ENV_BASE_URL) or wire.DEFAULT_BASE_URL
        self._base_url = _sansio.normalize_base_url(url, allow_insecure_http=allow_insecure_http)
        if timeout <= 0 or wait_timeout <= 0:
            raise ValueError("timeout and wait_timeout must be positive seconds")
        if not 1 <= batch_size <= max_batch_items:
            raise ValueError(f"batch_size must be between 1 and {max_batch_items}")
        if not verify_tls:
            logger.warning("TLS certificate verification is OFF for %s", self._base_url)
        self.__api_key = key
        self._borrowed = session
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._wait_timeout = aiohttp.ClientTimeout(total=wait_timeout)
        self.retry_policy = retry or RetryPolicy()
        self.poll_policy = poll or PollPolicy()
        self.raise_on_failure = raise_on_failure
        self.batch_size = batch_size
        self.max_batch_items = max_batch_items
        self._max_connections = max_connections
        self._max_polls_in_flight = max_polls_in_flight
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else verify_tls
        self._user_agent = user_agent or (
            f"wesog-async/{_version()} aiohttp/{aiohttp.__version__} "
            f"python/{platform.python_version()}"
        )
        self._sleep: Sleep = sleep or asyncio.sleep
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._cooldown_until = 0.0
        self._poller: Poller | None = None
        self.stats_counters = ClientStats()

        from wesog_async._images import ImagesAPI
        from wesog_async._ops import OpsAPI
        from wesog_async._tag import TagAPI

        self.images: ImagesAPI = ImagesAPI(self)
        self.ops: OpsAPI = OpsAPI(self)
        self.tag: TagAPI = TagAPI(self)

    # -- lifecycle -------------------------------------------------------------

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self._loop else "not opened")
        return f"<WesogClient base_url={self._base_url!r} api_key=<redacted> {state}>"

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._base_url

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Bind the client to the running loop and open its session.

        ``async with`` calls this; call it yourself only if you also call
        :meth:`aclose`.
        """
        if self._closed:
            raise RuntimeError("this WesogClient is closed; create a new one")
        if self._loop is not None:
            raise RuntimeError("this WesogClient is already open")
        self._loop = asyncio.get_running_loop()
        if self._borrowed is not None:
            if self._borrowed.closed:
                raise RuntimeError("the borrowed aiohttp session is closed")
            self._session = self._borrowed
        else:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl)
            self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
            # aiohttp silently resends PUT/DELETE once when a kept-alive connection
            # drops after the body was sent. Retries are ours to decide: a strict
            # write must not be resent after an ambiguous failure (FAULTS F6).
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False

    async def aclose(self, *, drain: bool = False) -> None:
        """Close the client.

        Pending operation futures fail with :class:`ClientClosedError` listing
        their op ids, unless ``drain=True``: then they are awaited first.
        An owned session is closed; a borrowed one is left open.
        """
        if self._closed:
            return
        try:
            if self._poller is not None:
                await self._poller.close(drain=drain)
        finally:
            self._closed = True
            if self._session is not None and self._borrowed is None:
                await self._session.close()
            self._session = None

    def _check_usable(self) -> aiohttp.ClientSession:
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

    @property
    def poller(self) -> Poller:
        """The client's single poller, started lazily in the running loop."""
        self._check_usable()
        if self._poller is None:
            from wesog_async._poller import Poller

            self._poller = Poller(self, max_in_flight=self._max_polls_in_flight)
        return self._poller

    def stats(self) -> dict[str, int]:
        """A snapshot of the client's counters: requests, retries, throttles,
        submitted / pending / finished operations, good and bad item totals,
        polls sent, poll retries, and ambiguous resends (writes sent again after
        a failure that may have left them applied)."""
        data = attrs.asdict(self.stats_counters)
        data["pending"] = self._poller.pending_count if self._poller is not None else 0
        return data

    # -- the request path ------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: _Params = None,
        body: bytes | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
        resend_safe: bool,
        long_wait: bool = False,
        retry: RetryPolicy | None = None,
    ) -> Response:
        """Send one API request with retries; return the 2xx response.

        Non-2xx statuses raise :class:`APIStatusError` subclasses, transport
        failures :class:`TransportError`. ``resend_safe=False`` (strict writes)
        forbids resending after an ambiguous failure.
        """
        session = self._check_usable()
        policy = retry or self.retry_policy

        async def attempt() -> Response:
            return await self._send_once(
                session, method, path, params=params, body=body, form=form, long_wait=long_wait
            )

        resent = False

        def on_retry(exc: BaseException, _delay: float) -> None:
            nonlocal resent
            self.stats_counters.retries += 1
            if method != "GET" and is_ambiguous(exc):
                resent = True
                self.stats_counters.ambiguous_resends += 1

        resp = await call_with_retries(
            attempt,
            policy=policy,
            resend_safe=resend_safe,
            sleep=self._sleep,
            name=f"{method} {path}",
            on_retry=on_retry,
        )
        return attrs.evolve(resp, resent=True) if resent else resp

    async def _wait_cooldown(self) -> None:
        loop = self._loop
        assert loop is not None
        delay = self._cooldown_until - loop.time()
        if delay > 0:
            await self._sleep(delay)

    def cool_down(self, seconds: float) -> None:
        """Hold every request of this client for ``seconds`` (a 429 hint)."""
        loop = self._loop
        if loop is not None and seconds > 0:
            self._cooldown_until = max(self._cooldown_until, loop.time() + seconds)

    async def _send_once(
        self,
        session: aiohttp.ClientSession,
        method: str,
        path: str,
        *,
        params: _Params,
        body: bytes | None,
        form: Callable[[], aiohttp.FormData] | None,
        long_wait: bool,
    ) -> Response:
        await self._wait_cooldown()
        headers = {wire.HEADER_API_KEY: self.__api_key, "User-Agent": self._user_agent}
        data: Any = form() if form is not None else None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = body
        self.stats_counters.requests += 1
        url = self._base_url + path
        try:
            async with session.request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                allow_redirects=False,
                timeout=self._wait_timeout if long_wait else self._timeout,
                ssl=self._ssl,
            ) as resp:
                status = resp.status
                raw = await resp.read()
                retry_after_header = resp.headers.get(wire.HEADER_RETRY_AFTER)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise ConnectError(
                f"cannot connect ({type(exc).__name__}: {reason})",
                method=method,
                path=path,
            ) from None
        except TimeoutError:
            raise TransportError(
                "timed out waiting for the response", method=method, path=path
            ) from None
        except aiohttp.ClientError as exc:
            # Never chain the aiohttp error itself: its request_info holds headers.
            raise TransportError(
                f"connection failed ({type(exc).__name__})", method=method, path=path
            ) from None
        if 200 <= status < 300:
            return Response(status, raw)
        retry_after = _sansio.parse_retry_after(retry_after_header, now=time.time())
        error = _sansio.error_for_status(
            status, raw, method=method, path=path, retry_after=retry_after
        )
        if status in (429, 503):
            if status == 429:
                self.stats_counters.throttles += 1
            if retry_after is not None and retry_after <= self.retry_policy.retry_after_cap:
                self.cool_down(retry_after)
        raise error


def is_ambiguous(exc: BaseException) -> bool:
    """Whether a failed attempt may still have been applied by the server."""
    if isinstance(exc, APIStatusError):
        return exc.status in (502, 504)
    return isinstance(exc, TransportError) and not isinstance(exc, ConnectError)


def json_body(obj: Any) -> bytes:
    """Serialize a request body."""
    return _jsonlib.dumps(obj)


__all__ = ["ClientStats", "Response", "WesogClient", "is_ambiguous", "json_body"]
