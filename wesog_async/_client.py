"""WesogClient: configuration and lifecycle; it builds the parts and delegates.

The parts, each below the client and handed only what it needs: the
transport (session, key, timeouts, retries), the submitter (write -> op id ->
future) with its poller, and the endpoints on top of them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import platform
import ssl
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import TYPE_CHECKING, Self

import aiohttp
import attrs

from wesog_async import _sansio
from wesog_async import _wire as wire
from wesog_async._http import BodyLimits, Timeouts
from wesog_async._images import ImagesAPI
from wesog_async._ops import OpsAPI
from wesog_async._retry import PollPolicy, RetryPolicy, Sleep
from wesog_async._stats import ClientStats
from wesog_async._submit import Submitter
from wesog_async._tag import TagAPI
from wesog_async._telemetry import Telemetry
from wesog_async._transport import Transport

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

logger = logging.getLogger("wesog_async")


@functools.cache
def _version() -> str:
    # Looked up once per process: importlib.metadata reads the installed
    # distributions (~1.4 ms), and every client names its version twice.
    try:
        return version("wesog-async")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


class WesogClient:
    """The asyncio client of the Wesog API.

    Use it as ``async with WesogClient(api_key=...) as client:``. The API key
    and base URL default to ``WESOG_API_KEY`` and ``WESOG_BASE_URL``
    (``https://api.wesog.com``). Pass ``session=`` to borrow an
    ``aiohttp.ClientSession`` (it is never closed by the client).

    ``timeout`` bounds each attempt once it has a connection: sending the
    request and reading the whole answer (``wait_timeout`` for writes sent
    with ``wait=True``, which hold the
    connection until the operation ends), ``connect_timeout`` opening a
    connection; waiting for a free connection of the pool is not timed, so a
    request that never left is never taken for one that may have been applied.
    ``body_limits`` caps response bodies (:class:`BodyLimits`).
    ``retry`` governs request retries, ``poll`` the operation polling schedule;
    ``raise_on_failure`` makes awaiting an operation with failed items raise
    :class:`~wesog_async.OperationFailedError`. ``sleep`` replaces
    ``asyncio.sleep`` for retries and polling (tests).

    With OpenTelemetry installed (``wesog-async[otel]``), spans and metrics go
    to ``tracer_provider`` / ``meter_provider``, else to the global providers
    as configured when the client opens; unset, nothing is recorded.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
        wait_timeout: float = 600.0,
        connect_timeout: float = 10.0,
        body_limits: BodyLimits | None = None,
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
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
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
        base = _sansio.normalize_base_url(url, allow_insecure_http=allow_insecure_http)
        if timeout <= 0 or wait_timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeout, wait_timeout and connect_timeout must be positive seconds")
        if not 1 <= batch_size <= max_batch_items:
            raise ValueError(f"batch_size must be between 1 and {max_batch_items}")
        if not verify_tls:
            logger.warning("TLS certificate verification is OFF for %s", base)
        self.batch_size = batch_size
        self.max_batch_items = max_batch_items
        self._stats = ClientStats()
        self._transport = Transport(
            key,
            base,
            session=session,
            timeouts=Timeouts(connect=connect_timeout, response=timeout, long_wait=wait_timeout),
            limits=body_limits or BodyLimits(),
            retry=retry or RetryPolicy(),
            max_connections=max_connections,
            ssl=ssl_context if ssl_context is not None else verify_tls,
            user_agent=user_agent
            or (
                f"wesog-async/{_version()} aiohttp/{aiohttp.__version__} "
                f"python/{platform.python_version()}"
            ),
            sleep=sleep or asyncio.sleep,
            stats=self._stats,
            telemetry=Telemetry(
                base,
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                version=_version(),
            ),  # [telemetry]
        )
        self._submitter = Submitter(
            self._transport,
            self._stats,
            poll or PollPolicy(),
            raise_on_failure=raise_on_failure,
            max_polls_in_flight=max_polls_in_flight,
        )
        self.images: ImagesAPI = ImagesAPI(
            self._transport, self._submitter, batch_size=batch_size, max_batch_items=max_batch_items
        )
        self.ops: OpsAPI = OpsAPI(self._transport, self._submitter)
        self.tag: TagAPI = TagAPI(self._transport)

    # -- lifecycle -------------------------------------------------------------

    def __repr__(self) -> str:
        t = self._transport
        state = "closed" if t.closed else ("open" if t.is_open else "not opened")
        return f"<WesogClient base_url={t.base_url!r} api_key=<redacted> {state}>"

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._transport.base_url

    @property
    def retry_policy(self) -> RetryPolicy:
        """How requests are retried."""
        return self._transport.retry_policy

    @property
    def poll_policy(self) -> PollPolicy:
        """When operations are polled."""
        return self._submitter.poll_policy

    @property
    def raise_on_failure(self) -> bool:
        """Whether awaiting an operation with failed items raises."""
        return self._submitter.raise_on_failure

    @property
    def submitter(self) -> Submitter:
        """The part that sends writes and follows operations (used by bulk ingestion)."""
        return self._submitter

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._transport.closed

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
        self._transport.open()

    async def aclose(self, *, drain: bool = False) -> None:
        """Close the client.

        Pending operation futures fail with :class:`ClientClosedError` listing
        their op ids, unless ``drain=True``: then they are awaited first.
        Writes still in flight fail with :class:`ClientClosedError` naming
        their image ids; a write started once the close has begun (during a
        drain too) fails with it at once, known not sent. An owned session is
        closed; a borrowed one is left open.
        """
        if self._transport.closed:
            return
        self._transport.begin_close()
        try:
            await self._submitter.close(drain=drain)
        finally:
            await self._transport.aclose()

    def stats(self) -> dict[str, int]:
        """A snapshot of the client's counters: requests, retries, throttles,
        submitted / pending / finished operations, good and bad item totals,
        polls sent, poll retries, and ambiguous resends (writes sent again after
        a failure that may have left them applied)."""
        data = attrs.asdict(self._stats)
        data["pending"] = self._submitter.pending_count
        return data

    def cool_down(self, seconds: float) -> None:
        """Hold every request of this client for ``seconds`` (a 429 hint)."""
        self._transport.cool_down(seconds)


__all__ = ["WesogClient"]
