"""The pytest plugin works for users as the README shows: installed via the
``pytest11`` entry point, with no conftest of theirs."""

from __future__ import annotations

import pytest

USER_TESTS = """
import pytest
from wesog_async import WesogClient
from wesog_async.emulator import EmulatorConfig


async def test_my_upload(wesog_emulator):
    async with WesogClient(api_key=wesog_emulator.api_key, base_url=wesog_emulator.url) as client:
        op = await (await client.images.create({"id": "a", "src": "https://x/a.jpg"}))
    assert op.num_good == 1
    assert wesog_emulator.state.counters.snapshot()["items_applied"] == 1


async def test_with_the_client_fixture(wesog_client):
    fut = await wesog_client.images.create_many(
        [{"id": "a", "src": "https://x/a.jpg"}, {"id": "b", "src": "https://down.invalid/b.jpg"}]
    )
    op = await fut
    assert (op.num_good, op.num_bad) == (1, 1)
    assert fut.failed_ids == ["b"]


class TestOverride:
    @pytest.fixture
    def wesog_emulator_config(self):
        return EmulatorConfig(api_keys=("mine",), item_delay_ms=1.0)

    async def test_key(self, wesog_client, wesog_emulator):
        assert wesog_emulator.api_key == "mine"
        assert await wesog_client.ops.list() == []
"""


def test_user_tests_run_with_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
