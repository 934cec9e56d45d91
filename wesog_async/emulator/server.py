"""Running the emulator on a real socket: :class:`EmulatorServer` and :func:`run_emulator`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from wesog_async.emulator.app import create_app
from wesog_async.emulator.config import EmulatorConfig
from wesog_async.emulator.http import STATE_KEY
from wesog_async.emulator.state import EmulatorState

# Handlers still running at shutdown (hangs, wait=true) are given this long;
# the emulator releases them itself, so a short grace period is enough.
_SHUTDOWN_TIMEOUT_S = 2.0

# The default aiohttp access-log format, which logs no request headers, so
# never the API key.
_ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tf'


class EmulatorServer:
    """An emulator listening on ``host:port`` (``port=0`` picks a free port).

    Use as ``async with EmulatorServer(cfg) as srv:``; ``srv.url``,
    ``srv.api_key``, ``srv.state`` and ``srv.app`` are available inside.
    """

    def __init__(
        self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self.port = port
        self.app = create_app(self.config)
        self._runner: web.AppRunner | None = None

    @property
    def state(self) -> EmulatorState:
        return self.app[STATE_KEY]

    @property
    def api_key(self) -> str:
        """The first configured key (tenant 0)."""
        return self.config.api_keys[0]

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (valid once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("EmulatorServer is already started")
        runner = web.AppRunner(
            self.app,
            access_log=logging.getLogger("wesog_async.emulator.access")
            if self.config.access_log
            else None,
            access_log_format=_ACCESS_LOG_FORMAT,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def run_emulator(
    config: EmulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    on_ready: Callable[[EmulatorServer], None] | None = None,
) -> None:
    """Serve until cancelled; ``on_ready(server)`` runs once the port is bound."""
    async with EmulatorServer(config, host=host, port=port) as server:
        if on_ready is not None:
            on_ready(server)
        await asyncio.Event().wait()
