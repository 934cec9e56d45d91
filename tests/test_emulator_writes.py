"""Emulator: write semantics (D11, D14, D17, D18, D23), PUT vs PATCH, derived fields."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from wesog_async.emulator import EmulatorConfig, EmulatorServer
from wesog_async.emulator.store import computed_values, orientation_of, src_is_reachable

SRC = "https://x.example/a.jpg"


@pytest.fixture
async def http(wesog_emulator: EmulatorServer) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"API-Key": wesog_emulator.api_key}
    async with aiohttp.ClientSession(wesog_emulator.url, headers=headers) as session:
        yield session


async def call(http: aiohttp.ClientSession, method: str, path: str, body: Any = None) -> Any:
    """A ``wait=true`` write; returns the finished Operation."""
    sep = "&" if "?" in path else "?"
    async with http.request(method, f"{path}{sep}wait=true", json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def image(http: aiohttp.ClientSession, image_id: str) -> Any:
    async with http.get(f"/imgs/{image_id}") as resp:
        return await resp.json() if resp.status == 200 else None


async def test_strict_create_of_existing_id_is_an_item_error(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", "/imgs", [{"id": "a", "src": SRC}])
    body = [{"id": "b", "src": SRC}, {"id": "a", "src": SRC, "title": "new"}]
    op = await call(http, "POST", "/imgs?strict=true", body)
    assert (op["num_good"], op["num_bad"], op["all_good"]) == (1, 1, False)
    assert op["errors"][0]["id"] == 1
    assert "already exists" in op["errors"][0]["msg"]
    assert (await image(http, "a"))["title"] is None  # not overwritten


async def test_non_strict_create_upserts(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", "/imgs/a", {"src": SRC, "title": "one", "city": "Lima"})
    op = await call(http, "POST", "/imgs/a", {"src": SRC, "title": "two"})
    assert op["all_good"] is True
    img = await image(http, "a")
    assert (img["title"], img["city"]) == ("two", None)


@pytest.mark.parametrize(
    ("method", "body"), [("PUT", {"src": SRC}), ("PATCH", {}), ("DELETE", None)]
)
async def test_strict_update_or_delete_of_missing_id_is_an_item_error(
    http: aiohttp.ClientSession, method: str, body: Any
) -> None:
    op = await call(http, method, "/imgs/ghost?strict=true", body)
    assert (op["num_good"], op["num_bad"]) == (0, 1)
    assert op["errors"] == [{"id": 0, "msg": "image 'ghost' not found"}]


@pytest.mark.parametrize(
    ("method", "body"), [("PUT", {"src": SRC}), ("PATCH", {}), ("DELETE", None)]
)
async def test_non_strict_missing_id_is_skipped_and_counted_good(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer, method: str, body: Any
) -> None:
    op = await call(http, method, "/imgs/ghost", body)
    assert (op["num_good"], op["num_bad"], op["all_good"]) == (1, 0, True)
    assert await image(http, "ghost") is None  # PUT does not create
    snap = wesog_emulator.state.counters.snapshot()
    assert (snap["items_applied"], snap["items_skipped"]) == (0, 1)


async def test_put_clears_omitted_fields_patch_changes_only_present(
    http: aiohttp.ClientSession,
) -> None:
    full = {"src": SRC, "title": "t", "city": "Lima", "keywords": ["a"], "nsfw": False}
    await call(http, "POST", "/imgs/a", full)
    await call(http, "PATCH", "/imgs/a", {"title": "patched", "nsfw": None})
    img = await image(http, "a")
    assert (img["title"], img["city"], img["keywords"], img["nsfw"]) == (
        "patched",
        "Lima",
        ["a"],
        None,
    )
    await call(http, "PUT", "/imgs/a", {"src": SRC, "headline": "h"})
    img = await image(http, "a")
    assert (img["title"], img["city"], img["keywords"], img["headline"]) == (None, None, None, "h")
    # Computed fields survive both and are never writable.
    await call(http, "PATCH", "/imgs", [{"id": "a", "width": 1, "image_id": "zzz"}])
    img = await image(http, "a")
    assert (img["width"], img["height"], img["n_faces"]) == computed_values("a")
    assert img["image_id"] == "a"


async def test_batch_patch_and_unknown_fields_are_ignored(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", "/imgs", [{"id": i, "src": SRC, "bogus": 1} for i in "abc"])
    op = await call(http, "PATCH", "/imgs", [{"id": i, "status": "Withdrawn"} for i in "ab"])
    assert op["num_good"] == 2
    assert [(await image(http, i))["status"] for i in "abc"] == ["Withdrawn", "Withdrawn", None]


@pytest.mark.parametrize(
    ("src", "ok"),
    [
        ("https://cdn.example.com/a.jpg", True),
        ("http://cdn.example.com/a.jpg", True),
        ("ftp://cdn.example.com/a.jpg", False),
        ("not a url", False),
        ("https://host.invalid/a.jpg", False),
        ("https://INVALID/a.jpg", False),
        ("https:///nohost", False),
        ("http://[::1/", False),
    ],
)
async def test_src_unreachable(http: aiohttp.ClientSession, src: str, ok: bool) -> None:
    assert src_is_reachable(src) is ok
    op = await call(http, "POST", "/imgs/a", {"src": src})
    assert op["all_good"] is ok
    if not ok:
        assert op["errors"] == [{"id": 0, "msg": "src unreachable"}]
        assert await image(http, "a") is None


async def test_partial_failure_applies_good_items_with_indexes(
    http: aiohttp.ClientSession,
) -> None:
    body = [
        {"id": "a", "src": SRC},
        {"id": "b", "src": "https://b.invalid/"},
        {"id": "c", "src": SRC},
        {"id": "d", "src": "file:///etc/passwd"},
    ]
    op = await call(http, "POST", "/imgs", body)
    assert (op["num_total"], op["num_good"], op["num_bad"]) == (4, 2, 2)
    assert [e["id"] for e in op["errors"]] == [1, 3]
    assert [await image(http, i) is not None for i in "abcd"] == [True, False, True, False]


async def test_duplicate_ids_in_one_batch_processed_in_order(http: aiohttp.ClientSession) -> None:
    body = [{"id": "a", "src": SRC, "title": "1"}, {"id": "a", "src": SRC, "title": "2"}]
    op = await call(http, "POST", "/imgs?strict=true", body)
    assert op["errors"] == [{"id": 1, "msg": "image 'a' already exists"}]
    assert (await image(http, "a"))["title"] == "1"


async def test_empty_batch_finishes_all_good(http: aiohttp.ClientSession) -> None:
    op = await call(http, "POST", "/imgs", [])
    assert (op["num_total"], op["is_finished"], op["all_good"]) == (0, True, True)


def test_derived_values_are_deterministic() -> None:
    assert computed_values("x") == computed_values("x")
    assert computed_values("x") != computed_values("y")
    width, height, faces = computed_values("abc")
    assert 400 <= width <= 6000
    assert 400 <= height <= 6000
    assert 0 <= faces <= 5
    assert orientation_of(3, 2) == "landscape"
    assert orientation_of(2, 3) == "portrait"
    assert orientation_of(2, 2) == "square"
    assert orientation_of(None, 2) is None


async def test_second_tenant_has_its_own_store() -> None:
    cfg = EmulatorConfig(api_keys=("a", "b"))
    async with EmulatorServer(cfg) as srv, aiohttp.ClientSession(srv.url) as http:
        async with http.delete("/imgs/x?wait=true&strict=true", headers={"API-Key": "b"}) as r:
            assert (await r.json())["num_bad"] == 1
        assert srv.state.images("b") == {}
