"""Emulator: the documented examples, the Operation lifecycle, queueing and cancel."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from wesog_async.emulator import (
    STATE_KEY,
    EmulatorConfig,
    EmulatorServer,
    create_app,
    run_emulator,
)

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
OP_KEYS = {
    "op_id",
    "method",
    "resource",
    "num_total",
    "num_good",
    "num_bad",
    "is_started",
    "is_finished",
    "all_good",
    "do_wait",
    "do_urgent",
    "do_strict",
    "idle_ms",
    "exec_ms",
    "created_at",
    "started_at",
    "finished_at",
    "errors",
}


def check_op(op: dict[str, Any]) -> None:
    """The documented Operation schema (§5.1) plus D1-D15 invariants."""
    assert set(op) == OP_KEYS
    assert type(op["op_id"]) is int
    assert op["method"] in ("add", "upd", "del")
    assert op["resource"] == "image"
    for key in ("num_total", "num_good", "num_bad"):
        assert type(op[key]) is int
    for key in ("is_started", "is_finished", "do_wait", "do_urgent", "do_strict"):
        assert type(op[key]) is bool
    assert op["all_good"] in (None, True, False)
    assert isinstance(op["idle_ms"], (int, float))
    assert isinstance(op["exec_ms"], (int, float))
    assert ISO.match(op["created_at"])
    assert op["num_good"] + op["num_bad"] <= op["num_total"]
    assert all(set(e) == {"id", "msg"} and type(e["id"]) is int for e in op["errors"])
    assert len(op["errors"]) == op["num_bad"]
    if op["is_started"]:
        assert ISO.match(op["started_at"])
    else:
        assert op["started_at"] is None
        assert op["idle_ms"] == 0
    if op["is_finished"]:
        assert ISO.match(op["finished_at"])
        assert op["num_good"] + op["num_bad"] == op["num_total"]
        assert op["all_good"] is (op["num_bad"] == 0)
    else:
        assert op["finished_at"] is None
        assert op["exec_ms"] == 0
    if op["num_good"] + op["num_bad"] == 0 and not op["is_finished"]:
        assert op["all_good"] is None


@pytest.fixture
def wesog_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(api_keys=("k1", "k2"), item_delay_ms=0.0)


@pytest.fixture
async def http(wesog_emulator: EmulatorServer) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"API-Key": wesog_emulator.api_key}
    async with aiohttp.ClientSession(wesog_emulator.url, headers=headers) as session:
        yield session


async def finished(http: aiohttp.ClientSession, op_id: int) -> dict[str, Any]:
    """Poll ``GET /ops/{op_id}`` until finished (fast: ms delays only)."""
    async with asyncio.timeout(5):
        while True:
            async with http.get(f"/ops/{op_id}") as resp:
                assert resp.status == 200
                op: dict[str, Any] = await resp.json()
            check_op(op)
            if op["is_finished"]:
                return op
            await asyncio.sleep(0.002)


FULL_IMAGE = {
    "src": "https://cdn.example.com/image/source.jpg",
    "url_img_watermark": "https://cdn.example.com/image/wm.jpg",
    "url_img_thumbnail": "https://cdn.example.com/image/thumb.jpg",
    "title": "image123",
    "headline": "Sunset over the Hudson River",
    "caption": "A vibrant orange sunset reflecting on the river with the city skyline.",
    "alt_text": "sunset",
    "ai_generated": True,
    "model_release": True,
    "property_release": True,
    "nsfw": True,
    "status": "Active",
    "date": "2024-10-19",
    "location": "123 Main St, near Central Park",
    "city": "New York",
    "country": "United States",
    "event": "Oscar awards 2024",
    "author": "Jane Doe",
    "provider": "Acme Inc.",
    "shot": "Portrait",
    "scene": "Town square",
    "technique": "Drawing",
    "medium": "Oil on canvas",
    "keywords": ["Tree", "Dog", "Ball", "Water"],
    "categories": ["Sport", "Fashion", "Politics"],
    "collections": ["Steet pics", "Exclusive"],
}


# -- the three documented examples ---------------------------------------------
async def test_doc_example_create_one_image_with_every_field(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    async with http.post("/imgs/image123", json=FULL_IMAGE) as resp:
        assert resp.status == 202
        op = await resp.json()
    check_op(op)
    assert op["method"] == "add"
    assert op["num_total"] == 1
    assert op["do_wait"] is False
    done = await finished(http, op["op_id"])
    assert done["all_good"] is True
    async with http.get("/imgs/image123") as resp:
        assert resp.status == 200
        image = await resp.json()
    assert len(image) == 30
    assert {k: image[k] for k in FULL_IMAGE} == FULL_IMAGE
    assert image["image_id"] == "image123"
    for key in ("width", "height", "n_faces"):
        assert type(image[key]) is int
    assert wesog_emulator.state.images("k1")["image123"]["title"] == "image123"


async def test_doc_example_replace_n_images(http: aiohttp.ClientSession) -> None:
    body = [{"id": f"img{i}", "src": f"https://cdn.example.com/{i}.jpg"} for i in range(3)]
    async with http.post("/imgs?wait=true", json=body) as resp:
        assert resp.status == 200
    replaced = [dict(FULL_IMAGE, id=f"img{i}") for i in range(3)]
    async with http.put("/imgs?wait=true&strict=true", json=replaced) as resp:
        assert resp.status == 200
        op = await resp.json()
    check_op(op)
    assert (op["method"], op["num_total"], op["num_good"], op["all_good"]) == ("upd", 3, 3, True)
    assert op["do_wait"] is True
    assert op["do_strict"] is True
    async with http.get("/imgs/img2") as resp:
        assert (await resp.json())["headline"] == FULL_IMAGE["headline"]


async def test_doc_example_delete_one_image(http: aiohttp.ClientSession) -> None:
    async with http.post("/imgs/image123?wait=true", json={"src": "https://a.example/x.jpg"}):
        pass
    async with http.delete("/imgs/image123") as resp:
        assert resp.status == 202
        op = await resp.json()
    check_op(op)
    assert op["method"] == "del"
    await finished(http, op["op_id"])
    async with http.get("/imgs/image123") as resp:
        assert resp.status == 404
        assert await resp.json() == {"detail": "Image not found"}


# -- lifecycle -----------------------------------------------------------------
async def test_lifecycle_queued_started_finished() -> None:
    cfg = EmulatorConfig(api_keys=("k",), item_delay_ms=15.0)
    async with (
        EmulatorServer(cfg) as srv,
        aiohttp.ClientSession(srv.url, headers={"API-Key": "k"}) as http,
    ):
        srv.state.pause_processing()
        body = [{"id": f"i{n}", "src": "https://x.example/a.jpg"} for n in range(4)]
        async with http.post("/imgs", json=body) as resp:
            op = await resp.json()
        async with http.get(f"/ops/{op['op_id']}") as resp:
            queued = await resp.json()
        check_op(queued)
        assert (queued["is_started"], queued["is_finished"], queued["all_good"]) == (
            False,
            False,
            None,
        )
        srv.state.resume_processing()
        seen_running = None
        async with asyncio.timeout(5):
            while seen_running is None:
                async with http.get(f"/ops/{op['op_id']}") as resp:
                    running = await resp.json()
                check_op(running)
                if running["is_started"] and not running["is_finished"]:
                    seen_running = running
                await asyncio.sleep(0.001)
        assert seen_running["idle_ms"] > 0
        assert seen_running["exec_ms"] == 0
        done = await finished(http, op["op_id"])
        assert done["num_good"] == 4
        assert done["exec_ms"] >= 4 * 15 * 0.9
        assert done["created_at"] <= done["started_at"] <= done["finished_at"]


async def test_all_good_turns_true_then_false_as_items_are_processed() -> None:
    cfg = EmulatorConfig(api_keys=("k",), item_delay_ms=30.0)
    async with (
        EmulatorServer(cfg) as srv,
        aiohttp.ClientSession(srv.url, headers={"API-Key": "k"}) as http,
    ):
        body = [{"id": "good", "src": "https://x.example/a.jpg"}, {"id": "bad", "src": "ftp://x"}]
        async with http.post("/imgs", json=body) as resp:
            op_id = (await resp.json())["op_id"]
        # Watch the live object on the same loop: every state the worker
        # leaves between two items is seen, however loaded the machine is.
        live = srv.state.tenants[0].ops[op_id]
        states = []
        async with asyncio.timeout(5):
            while not live.is_finished:
                state = (live.num_good, live.num_bad, live.all_good, live.is_finished)
                if not states or states[-1] != state:
                    states.append(state)
                    check_op(live.to_json())
                await asyncio.sleep(0)
        assert states == [(0, 0, None, False), (1, 0, True, False)]
        async with http.get(f"/ops/{op_id}") as resp:
            op = await resp.json()
        check_op(op)
        assert (op["num_good"], op["num_bad"], op["all_good"]) == (1, 1, False)
        assert op["errors"] == [{"id": 1, "msg": "src unreachable"}]


async def test_wait_true_answers_only_when_finished() -> None:
    cfg = EmulatorConfig(api_keys=("k",), item_delay_ms=5.0)
    async with (
        EmulatorServer(cfg) as srv,
        aiohttp.ClientSession(srv.url, headers={"API-Key": "k"}) as http,
    ):
        srv.state.pause_processing()
        body = [{"id": f"i{n}", "src": "https://x.example/a.jpg"} for n in range(3)]
        request = asyncio.ensure_future(http.post("/imgs?wait=true", json=body))
        await asyncio.sleep(0.05)
        assert not request.done()  # still queued: no answer yet
        srv.state.resume_processing()
        async with await request as resp:
            assert resp.status == 200
            op = await resp.json()
        check_op(op)
        assert op["is_finished"] is True
        assert op["do_wait"] is True
        assert op["num_good"] == 3


async def test_urgent_overtakes_the_queue() -> None:
    cfg = EmulatorConfig(api_keys=("k",), item_delay_ms=2.0)
    async with (
        EmulatorServer(cfg) as srv,
        aiohttp.ClientSession(srv.url, headers={"API-Key": "k"}) as http,
    ):
        srv.state.pause_processing()
        ids = []
        for n, urgent in enumerate(["false", "false", "true"]):
            body = [{"id": f"i{n}", "src": "https://x.example/a.jpg"}]
            async with http.post(f"/imgs?urgent={urgent}", json=body) as resp:
                ids.append((await resp.json())["op_id"])
        tenant = srv.state.tenants[0]
        assert [op.op_id for op in tenant.queue] == [ids[2], ids[0], ids[1]]
        srv.state.resume_processing()
        ops = [await finished(http, op_id) for op_id in ids]
        assert ops[2]["do_urgent"] is True
        assert ops[2]["started_at"] <= ops[0]["started_at"] <= ops[1]["started_at"]
        assert ops[2]["finished_at"] <= ops[0]["started_at"]


async def test_workers_per_tenant_run_operations_concurrently() -> None:
    cfg = EmulatorConfig(api_keys=("k",), item_delay_ms=40.0, workers_per_tenant=2)
    async with (
        EmulatorServer(cfg) as srv,
        aiohttp.ClientSession(srv.url, headers={"API-Key": "k"}) as http,
    ):
        srv.state.pause_processing()
        ids = []
        for n in range(2):
            async with http.post(f"/imgs/i{n}", json={"src": "https://x.example/a"}) as resp:
                ids.append((await resp.json())["op_id"])
        srv.state.resume_processing()
        a, b = [await finished(http, op_id) for op_id in ids]
        assert b["started_at"] < a["finished_at"]  # both ran at once


async def test_tenant_queues_are_independent() -> None:
    cfg = EmulatorConfig(api_keys=("k1", "k2"), item_delay_ms=100.0)
    async with EmulatorServer(cfg) as srv, aiohttp.ClientSession(srv.url) as http:
        slow = {"API-Key": "k1"}
        async with http.post("/imgs/x", json={"src": "https://x.example/a"}, headers=slow):
            pass
        fast = {"API-Key": "k2"}
        async with http.delete("/imgs/y?wait=true", headers=fast) as resp:
            op = await resp.json()
        assert op["is_finished"] is True
        assert op["idle_ms"] < 80  # not queued behind k1's slow operation


async def test_operation_delay_and_random_delays_are_applied() -> None:
    cfg = EmulatorConfig(
        api_keys=("k",), op_delay_ms=30.0, item_delay_ms=1.0, delay_distribution="exponential"
    )
    async with (
        EmulatorServer(cfg) as srv,
        aiohttp.ClientSession(srv.url, headers={"API-Key": "k"}) as http,
    ):
        async with http.delete("/imgs/a?wait=true") as resp:
            op = await resp.json()
        assert op["exec_ms"] > 0


# -- cancel --------------------------------------------------------------------
async def test_cancel_queued_operation(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    wesog_emulator.state.pause_processing()
    body = [{"id": f"i{n}", "src": "https://x.example/a"} for n in range(3)]
    async with http.post("/imgs", json=body) as resp:
        op_id = (await resp.json())["op_id"]
    async with http.delete(f"/ops/{op_id}") as resp:
        assert resp.status == 200
        op = await resp.json()
    check_op(op)
    assert op["is_finished"] is True
    assert op["is_started"] is False
    assert (op["num_good"], op["num_bad"], op["all_good"]) == (0, 3, False)
    assert op["errors"] == [{"id": n, "msg": "cancelled"} for n in range(3)]
    wesog_emulator.state.resume_processing()
    await asyncio.sleep(0.01)
    assert len(wesog_emulator.state.images("k1")) == 0
    assert wesog_emulator.state.counters.snapshot()["ops_cancelled"] == 1
    async with http.delete(f"/ops/{op_id}") as resp:
        assert resp.status == 409  # already finished


async def test_cancel_started_operation_is_409() -> None:
    cfg = EmulatorConfig(api_keys=("k",), item_delay_ms=200.0)
    async with (
        EmulatorServer(cfg) as srv,
        aiohttp.ClientSession(srv.url, headers={"API-Key": "k"}) as http,
    ):
        async with http.delete("/imgs/a") as resp:
            op_id = (await resp.json())["op_id"]
        async with asyncio.timeout(2):
            while not srv.state.tenants[0].ops[op_id].is_started:
                await asyncio.sleep(0.001)
        async with http.delete(f"/ops/{op_id}") as resp:
            assert resp.status == 409
            assert "detail" in await resp.json()


async def test_cancel_unknown_or_foreign_operation_is_404(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    async with http.delete("/ops/999") as resp:
        assert resp.status == 404
    wesog_emulator.state.pause_processing()
    async with http.delete("/imgs/a", headers={"API-Key": "k2"}) as resp:
        foreign = (await resp.json())["op_id"]
    for method in ("GET", "DELETE"):
        async with http.request(method, f"/ops/{foreign}") as resp:
            assert resp.status == 404
            assert await resp.json() == {"detail": "Operation not found"}


# -- GET /ops ------------------------------------------------------------------
async def test_list_ops_newest_first_with_paging(http: aiohttp.ClientSession) -> None:
    ids = []
    for n in range(5):
        async with http.delete(f"/imgs/i{n}") as resp:
            ids.append((await resp.json())["op_id"])
    assert ids == sorted(ids)
    async with http.get("/ops") as resp:
        ops = await resp.json()
    assert [op["op_id"] for op in ops] == ids[::-1]
    for op in ops:
        check_op(op)
    async with http.get("/ops", params={"limit": "2", "page": "2"}) as resp:
        assert [op["op_id"] for op in await resp.json()] == [ids[2], ids[1]]
    async with http.get("/ops", params={"limit": "2", "page": "9"}) as resp:
        assert await resp.json() == []
    async with http.get("/ops", headers={"API-Key": "k2"}) as resp:
        assert await resp.json() == []


# -- idempotence and counters --------------------------------------------------
async def test_same_put_twice_same_state_and_counted_as_duplicate(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    state = wesog_emulator.state
    async with http.post("/imgs/a?wait=true", json={"src": "https://x.example/1"}):
        pass
    body = {"src": "https://x.example/2", "title": "t"}
    async with http.put("/imgs/a?wait=true", json=body):
        pass
    first = dict(state.images("k1")["a"])
    assert state.counters.duplicate_applies == 0
    async with http.put("/imgs/a?wait=true", json=body):
        pass
    assert state.images("k1")["a"] == first
    snap = state.counters.snapshot()
    assert snap["duplicate_applies"] == 1
    assert snap["items_applied"] == 3
    assert state.counters.applies_by_image[(0, "a")] == 3
    assert state.tenant_index("k1") == 0
    # Non-strict delete twice: the second is a skip, not a second apply.
    for _ in range(2):
        async with http.delete("/imgs/a?wait=true") as resp:
            assert (await resp.json())["num_good"] == 1
    snap = state.counters.snapshot()
    assert (snap["items_applied"], snap["items_skipped"]) == (4, 1)


async def test_counters_snapshot_and_stats_route(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    async with http.post("/imgs?wait=true", json=[{"id": "a", "src": "https://x.example/"}]):
        pass
    async with http.get("/ops"):
        pass
    async with (
        aiohttp.ClientSession() as anon,  # internal routes need no key
        anon.get(wesog_emulator.url + "/_emulator/stats") as resp,
    ):
        stats = await resp.json()
    assert stats["requests"] == {"POST /imgs": 1, "GET /ops": 1}
    assert stats["ops_created"] == 1
    assert stats["ops_finished"] == 1
    assert stats["items_applied"] == 1
    assert stats["images_stored"] == 1
    assert stats["responses"] == {"200": 2}
    assert stats["cpu_s"] >= 0
    snap = wesog_emulator.state.counters.snapshot()
    assert snap["requests"] == stats["requests"]


async def test_reset_route_forgets_everything(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    async with http.post("/imgs/a?wait=true", json={"src": "https://x.example/"}):
        pass
    wesog_emulator.state.pause_processing()
    async with http.post("/imgs", json=[{"id": "b", "src": "https://x.example/"}]):
        pass
    async with (
        aiohttp.ClientSession() as anon,
        anon.post(wesog_emulator.url + "/_emulator/reset") as resp,
    ):
        assert resp.status == 200
    state = wesog_emulator.state
    assert len(state.images("k1")) == 0
    assert state.counters.snapshot()["ops_created"] == 0
    assert state.paused is False
    async with http.get("/ops") as resp:
        assert await resp.json() == []


# -- app factory, server and run_emulator --------------------------------------
async def test_create_app_with_pytest_aiohttp_server(aiohttp_server: Any) -> None:
    app = create_app(EmulatorConfig(api_keys=("z",)))
    server = await aiohttp_server(app)
    async with (
        aiohttp.ClientSession(headers={"API-Key": "z"}) as http,
        http.delete(server.make_url("/imgs/q?wait=true")) as resp,
    ):
        assert resp.status == 200
    assert app[STATE_KEY].counters.ops_created == 1


async def test_run_emulator_serves_until_cancelled() -> None:
    ready: asyncio.Future[EmulatorServer] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_emulator(EmulatorConfig(), "127.0.0.1", 0, on_ready=ready.set_result)
    )
    server = await ready
    assert server.api_key == "demo"
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.url + "/imgs", headers={"API-Key": "demo"}) as resp,
    ):
        assert resp.status == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_server_shutdown_releases_waiting_requests() -> None:
    srv = EmulatorServer(EmulatorConfig(api_keys=("k",)))
    await srv.start()
    with pytest.raises(RuntimeError):
        await srv.start()
    srv.state.pause_processing()
    async with aiohttp.ClientSession(headers={"API-Key": "k"}) as http:
        pending = asyncio.ensure_future(http.delete(srv.url + "/imgs/a?wait=true"))
        await asyncio.sleep(0.05)
        await srv.close()
        resp = await pending
        assert resp.status == 503
        resp.release()


def test_config_rejects_bad_values_and_hides_keys() -> None:
    with pytest.raises(ValueError, match="at least one"):
        EmulatorConfig(api_keys=())
    with pytest.raises(ValueError, match="unique"):
        EmulatorConfig(api_keys=("a", "a"))
    with pytest.raises(ValueError, match="delay_distribution"):
        EmulatorConfig(delay_distribution="uniform")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="item_delay_ms"):
        EmulatorConfig(item_delay_ms=-1)
    with pytest.raises(ValueError, match="workers_per_tenant"):
        EmulatorConfig(workers_per_tenant=0)
    assert EmulatorConfig(api_keys="solo").api_keys == ("solo",)  # type: ignore[arg-type]
    assert "s3cret" not in repr(EmulatorConfig(api_keys=("s3cret",)))
