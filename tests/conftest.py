"""Shared fixtures: the emulator (through our own pytest plugin) and a fast client."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests import _services
from wesog_async import WesogClient
from wesog_async.emulator import EmulatorConfig, EmulatorServer
from wesog_async.testing import TEST_POLL_POLICY, TEST_RETRY_POLICY

# Millisecond-scale schedules so that polling and retry tests take milliseconds:
# the same ones the plugin's ``wesog_client`` fixture uses.
FAST_POLL = TEST_POLL_POLICY
FAST_RETRY = TEST_RETRY_POLICY

pytest_plugins = ("pytester",)

API_KEY = "test-key-0123456789"
OTHER_KEY = "other-key-9876543210"


@pytest.fixture
def wesog_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(api_keys=(API_KEY, OTHER_KEY), item_delay_ms=0.2)


@pytest.fixture
def client(wesog_client: WesogClient) -> WesogClient:
    """Our tests use the plugin's own client fixture (dogfooding it)."""
    return wesog_client


def make_client(server: EmulatorServer | str, key: str = API_KEY, **kwargs: object) -> WesogClient:
    """A client with the fast test policies, for tests that manage its lifecycle."""
    url = server if isinstance(server, str) else server.url
    options: dict[str, object] = {"poll": FAST_POLL, "retry": FAST_RETRY}
    options.update(kwargs)
    return WesogClient(api_key=key, base_url=url, **options)  # type: ignore[arg-type]


# -- real PostgreSQL and Redis (the scale-out tests) ------------------------------


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL server on loopback: ``.ci/services.sh``'s, or one started here."""
    dsn = os.environ.get(_services.POSTGRES_ENV)
    if dsn:
        yield dsn
        return
    bin_dir = _services.postgres_bin()
    if bin_dir is None:
        pytest.skip(
            f"no PostgreSQL binaries (initdb, postgres) and no {_services.POSTGRES_ENV}: "
            "run `bash .ci/services.sh python -m pytest` (installs postgresql) or set it"
        )
    with _services.run_postgres(bin_dir) as started:
        yield started


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server on loopback: ``.ci/services.sh``'s, or one started here."""
    url = os.environ.get(_services.REDIS_ENV)
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(
            f"no redis-server binary and no {_services.REDIS_ENV}: "
            "run `bash .ci/services.sh python -m pytest` (installs redis-server) or set it"
        )
    with _services.run_redis(binary) as started:
        yield started
