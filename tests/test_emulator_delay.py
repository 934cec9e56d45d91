"""Emulator: ``item_delay_ms`` holds on the default event loop.

N items with delay d take about N·d, never less, even when d is far below
the loop's timer granularity (the worker sleeps in chunks against a
monotonic schedule instead of once per item), and ``exec_ms`` shows it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from wesog_async.emulator import EmulatorConfig, EmulatorServer


def _batch(n: int, prefix: str = "i") -> list[dict[str, str]]:
    return [{"id": f"{prefix}{k}", "src": "https://x.example/a.jpg"} for k in range(n)]


async def _post_and_wait(http: aiohttp.ClientSession, body: Any) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    async with http.post("/imgs?wait=true", json=body) as resp:
        assert resp.status == 200
        op = await resp.json()
    return op, time.monotonic() - started


async def test_sub_millisecond_item_delay_adds_up_to_n_times_d() -> None:
    cfg = EmulatorConfig(api_keys=("k",), item_delay_ms=0.2)
    async with (
        EmulatorServer(cfg) as srv,
        aiohttp.ClientSession(srv.url, headers={"API-Key": "k"}) as http,
    ):
        op, wall = await _post_and_wait(http, _batch(1000))
    assert op["num_good"] == 1000
    # 1000 x 0.2 ms = 200 ms: never faster. The upper bound leaves a loaded
    # 2-core VM room to oversleep (seen: over 1.3x once) and still catches
    # the regression it guards, one timer sleep per item (>= 1000 ms here).
    assert 200 * 0.999 <= op["exec_ms"] <= 200 * 2
    assert wall >= 0.2


async def test_random_item_delays_add_up_to_their_mean() -> None:
    cfg = EmulatorConfig(
        api_keys=("k",), item_delay_ms=0.2, delay_distribution="exponential", seed=7
    )
    async with (
        EmulatorServer(cfg) as srv,
        aiohttp.ClientSession(srv.url, headers={"API-Key": "k"}) as http,
    ):
        op, _ = await _post_and_wait(http, _batch(1000))
    # The sum of 1000 exponential draws has a 3% spread around 200 ms (upper
    # bound: room to oversleep on a loaded machine, as above).
    assert 200 * 0.8 <= op["exec_ms"] <= 200 * 2


async def test_small_batches_keep_their_delay_too() -> None:
    cfg = EmulatorConfig(api_keys=("k",), item_delay_ms=0.5)
    async with (
        EmulatorServer(cfg) as srv,
        aiohttp.ClientSession(srv.url, headers={"API-Key": "k"}) as http,
    ):
        started = time.monotonic()
        ops = await asyncio.gather(*(_post_and_wait(http, _batch(10, f"b{n}-")) for n in range(20)))
        wall = time.monotonic() - started
    # 20 operations of 10 items run one after the other: 20 x 5 ms at least.
    assert all(op["exec_ms"] >= 5 * 0.999 for op, _ in ops)
    assert wall >= 0.1


async def test_items_are_applied_progressively_not_at_the_end() -> None:
    cfg = EmulatorConfig(api_keys=("k",), item_delay_ms=1.0)
    async with (
        EmulatorServer(cfg) as srv,
        aiohttp.ClientSession(srv.url, headers={"API-Key": "k"}) as http,
    ):
        async with http.post("/imgs", json=_batch(400)) as resp:
            op_id = (await resp.json())["op_id"]
        live = srv.state.tenants[0].ops[op_id]
        async with asyncio.timeout(5):
            while not live.num_good:
                await asyncio.sleep(0.005)
        seen = live.num_good
        assert 0 < seen < 400 and not live.is_finished
        stored = len(srv.state.images("k"))
        assert stored == seen  # the store and the counts move together
        async with asyncio.timeout(5):
            while not live.is_finished:
                await asyncio.sleep(0.01)
        assert live.num_good == 400
        assert live.to_json()["exec_ms"] >= 400 * 0.999
