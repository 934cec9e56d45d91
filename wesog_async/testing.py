"""pytest plugin: fixtures for testing code that talks to Wesog, against the emulator.

Installed with the package (entry point ``pytest11``); its fixtures are async, so
it needs pytest-asyncio: ``pip install "wesog-async[testing]"``. In
pytest-asyncio's default *strict* mode, mark the tests that use them::

    @pytest.mark.asyncio
    async def test_my_upload(wesog_emulator):
        # wesog_emulator.url, .api_key, .state (counters, images, faults)
        ...

or set ``asyncio_mode = "auto"`` in your pytest configuration and drop the marker.
A test that uses these fixtures without pytest-asyncio, or an unmarked ``async def``
test in strict mode, stops the run with a usage error that says what to do (rather
than a skip or a misleading "async def functions are not natively supported").

``wesog_client`` is a :class:`~wesog_async.WesogClient` already connected to
that emulator, with a millisecond polling schedule so tests stay fast::

    @pytest.mark.asyncio
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

import inspect
from collections.abc import AsyncIterator

import pytest

from wesog_async import PollPolicy, RetryPolicy, WesogClient
from wesog_async.emulator import EmulatorConfig, EmulatorServer

try:
    import pytest_asyncio
    import pytest_asyncio.plugin as _asyncio_plugin
except ImportError:  # the plugin loads in every pytest run, with or without it
    pytest_asyncio = None  # type: ignore[assignment]
    _asyncio_plugin = None  # type: ignore[assignment]

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

_ASYNC_FIXTURES = frozenset({"wesog_emulator", "wesog_client"})
_INSTALL_HINT = (
    "the Wesog fixtures (wesog_emulator, wesog_client), which are async and need "
    "pytest-asyncio: pip install 'wesog-async[testing]'"
)
_MARKER_HINT = (
    "mark them with @pytest.mark.asyncio (or `pytestmark = pytest.mark.asyncio` in the "
    "module), or set asyncio_mode = auto in your pytest configuration"
)


@pytest.fixture
def wesog_emulator_config() -> EmulatorConfig:
    """The emulator's configuration; override this fixture to change it."""
    return EmulatorConfig(api_keys=("test-key",))


def _asyncio_active(config: pytest.Config) -> bool:
    # Registered under whatever name it was loaded by (entry point "asyncio", or
    # -p pytest_asyncio.plugin); importable but blocked (-p no:asyncio) is inactive.
    return _asyncio_plugin is not None and config.pluginmanager.is_registered(_asyncio_plugin)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stop the run with a usage error when our async fixtures cannot run: failing
    each test (or skipping it, as older pytest does) would hide the one-line fix."""
    users = [
        item
        for item in items
        if isinstance(item, pytest.Function) and _ASYNC_FIXTURES & set(item.fixturenames)
    ]
    if not users:
        return
    if not _asyncio_active(config):
        hint = _INSTALL_HINT
        if _asyncio_plugin is not None:
            hint += " (it is installed but not loaded: was it disabled with -p no:asyncio?)"
        raise pytest.UsageError(f"wesog_async.testing: {users[0].nodeid} uses {hint}")
    # pytest-asyncio adds the marker itself in auto mode, so an unmarked coroutine
    # test here means strict mode without the marker: nothing would run it.
    unmarked = [
        item.nodeid
        for item in users
        if inspect.iscoroutinefunction(item.obj) and item.get_closest_marker("asyncio") is None
    ]
    if unmarked:
        shown = ", ".join(unmarked[:3])
        if len(unmarked) > 3:
            shown += f" (and {len(unmarked) - 3} more)"
        raise pytest.UsageError(
            f"wesog_async.testing: async tests using the Wesog fixtures are not marked for "
            f"pytest-asyncio (strict mode): {shown}; {_MARKER_HINT}"
        )


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

else:
    # Reached only through request.getfixturevalue(): collection already stops a run
    # whose tests name these fixtures.

    @pytest.fixture
    def wesog_emulator() -> EmulatorServer:
        """Needs pytest-asyncio: ``pip install "wesog-async[testing]"``."""
        raise pytest.UsageError(f"wesog_async.testing: this test uses {_INSTALL_HINT}")

    @pytest.fixture
    def wesog_client() -> WesogClient:
        """Needs pytest-asyncio: ``pip install "wesog-async[testing]"``."""
        raise pytest.UsageError(f"wesog_async.testing: this test uses {_INSTALL_HINT}")
