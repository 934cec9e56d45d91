"""pytest plugin: fixtures for testing code that talks to Wesog, against the emulator.

Installed with the package (entry point ``pytest11``), so any project that
depends on ``wesog-async`` gets::

    async def test_my_upload(wesog_emulator):
        # wesog_emulator.url, .api_key, .state (counters, images, faults)
        ...

Override ``wesog_emulator_config`` in a ``conftest.py`` to change the
emulator's settings (keys, delays, faults)::

    @pytest.fixture
    def wesog_emulator_config():
        return EmulatorConfig(api_keys=("k1", "k2"), item_delay_ms=2.0)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from wesog_async.emulator import EmulatorConfig, EmulatorServer

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the plugin loads in any pytest run
    pytest_asyncio = None  # type: ignore[assignment]

__all__ = ["wesog_emulator", "wesog_emulator_config"]


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

else:  # pragma: no cover - without pytest-asyncio there is no loop to run it in

    @pytest.fixture
    def wesog_emulator() -> EmulatorServer:
        """Needs pytest-asyncio (``pip install pytest-asyncio``)."""
        pytest.skip("the wesog_emulator fixture needs pytest-asyncio")
