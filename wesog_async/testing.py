"""pytest plugin: fixtures for testing code that talks to Wesog, against the emulator.

Installed with the package (entry point ``pytest11``), so any project that
depends on ``wesog-async`` gets::

    async def test_my_upload(wesog_emulator):
        # wesog_emulator.url, .api_key, .state (counters, images, faults)
        ...

``wesog_client`` is a :class:`~wesog_async.WesogClient` already connected to
that emulator, with a millisecond polling schedule so tests stay fast::

    async def test_create(wesog_client):
        op = await (await wesog_client.images.create({"id": "a", "src": "https://x/a.jpg"}))
        assert op.num_good == 1

Override ``wesog_emulator_config`` in a ``conftest.py`` to change the
emulator's settings (keys, delays, faults)::

    @pytest.fixture
    def wesog_emulator_config():
        return EmulatorConfig(api_keys=("k1", "k2"), item_delay_ms=2.0)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from wesog_async._client import WesogClient
from wesog_async._retry import PollPolicy, RetryPolicy
from wesog_async.emulator import EmulatorConfig, EmulatorServer

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the plugin loads in any pytest run
    pytest_asyncio = None  # type: ignore[assignment]

__all__ = [
    "TEST_POLL_POLICY",
    "TEST_RETRY_POLICY",
    "wesog_client",
    "wesog_emulator",
    "wesog_emulator_config",
]

#: Polling for tests: the emulator answers in milliseconds, so poll in milliseconds.
TEST_POLL_POLICY = PollPolicy(first_delay=0.002, per_item=0.0002, min_delay=0.001, max_delay=0.05)
#: Retries for tests: the same attempts as production, millisecond backoff.
TEST_RETRY_POLICY = RetryPolicy(budget=5.0, backoff_initial=0.001, backoff_max=0.01)


@pytest.fixture
def wesog_emulator_config() -> EmulatorConfig:
    """The emulator's configuration; override this fixture to change it."""
    return EmulatorConfig(api_keys=("test-key",))


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def wesog_emulator(
        wesog_emulator_config: EmulatorConfig,
    ) -> AsyncIterator[EmulatorServer]:
        """A running emulator on a free loopback port, stopped after the test."""
        async with EmulatorServer(wesog_emulator_config, host="127.0.0.1", port=0) as server:
            yield server

    @pytest_asyncio.fixture
    async def wesog_client(wesog_emulator: EmulatorServer) -> AsyncIterator[WesogClient]:
        """A client connected to ``wesog_emulator`` (its first API key), closed after
        the test; polls and retries on a millisecond schedule."""
        async with WesogClient(
            api_key=wesog_emulator.api_key,
            base_url=wesog_emulator.url,
            poll=TEST_POLL_POLICY,
            retry=TEST_RETRY_POLICY,
        ) as client:
            yield client

else:  # pragma: no cover - without pytest-asyncio there is no loop to run it in

    @pytest.fixture
    def wesog_emulator() -> EmulatorServer:
        """Needs pytest-asyncio (``pip install pytest-asyncio``)."""
        pytest.skip("the wesog_emulator fixture needs pytest-asyncio")

    @pytest.fixture
    def wesog_client() -> WesogClient:
        """Needs pytest-asyncio (``pip install pytest-asyncio``)."""
        pytest.skip("the wesog_client fixture needs pytest-asyncio")
