"""A cool-down shared by every worker of a destination, held in the database.

When the server answers 429 (or 503) with a ``Retry-After``, the client's
transport cools down locally; :class:`SharedCoolDown` also writes
``cool_down_until`` (the database's clock plus the wait) into the
``wesog_cooldowns`` row of the scope, and every worker reads that row before
sending and every ``interval`` seconds while it sends, cooling its own
transport down until then. N workers thus back off together instead of each
hammering the server until it throttles them one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import asyncpg

    from wesog_async._transport import Transport

logger = logging.getLogger("wesog_async.scale")

_WRITE: Final = (
    "INSERT INTO wesog_cooldowns (scope, cool_down_until) "
    "VALUES ($1, now() + make_interval(secs => $2)) ON CONFLICT (scope) DO UPDATE "
    "SET cool_down_until = GREATEST(wesog_cooldowns.cool_down_until, EXCLUDED.cool_down_until)"
)
_READ: Final = (
    "SELECT EXTRACT(EPOCH FROM (cool_down_until - now())) FROM wesog_cooldowns WHERE scope = $1"
)


class SharedCoolDown:
    """Shares one transport's server-requested cool-downs through ``pool``.

    ``scope`` names who shares it (one destination: its base URL and tenant).
    Use as ``async with SharedCoolDown(pool, scope, transport):``.
    """

    def __init__(
        self, pool: asyncpg.Pool, scope: str, transport: Transport, *, interval: float = 0.2
    ) -> None:
        self.pool = pool
        self.scope = scope
        self.transport = transport
        self.interval = interval
        self.shared = 0  # cool-downs this worker wrote
        self.adopted = 0  # cool-downs this worker took from the database
        self._writes: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._previous: Any = None

    async def __aenter__(self) -> SharedCoolDown:
        self._previous = self.transport.on_server_cool_down
        self.transport.on_server_cool_down = self._on_cool_down
        await self.sync()
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.transport.on_server_cool_down = self._previous
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def _on_cool_down(self, seconds: float) -> None:
        task = asyncio.get_running_loop().create_task(self.publish(seconds))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def publish(self, seconds: float) -> None:
        """Hold every worker of the scope for ``seconds`` from now."""
        try:
            await self.pool.execute(_WRITE, self.scope, float(seconds))
            self.shared += 1
        except Exception as exc:  # the local cool-down still applies
            logger.warning("could not share a %.1f s cool-down: %s", seconds, exc)

    async def sync(self) -> float:
        """Adopt the scope's cool-down, if one is running; its seconds left."""
        left = await self.pool.fetchval(_READ, self.scope)
        if left is not None and left > 0:
            self.transport.cool_down(float(left))
            self.adopted += 1
            return float(left)
        return 0.0

    async def _read_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sync()
            except Exception as exc:  # a database hiccup: try again next time
                logger.debug("cool-down read failed: %s", exc)


__all__ = ["SharedCoolDown"]
