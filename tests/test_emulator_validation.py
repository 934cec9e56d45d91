"""Emulator: 422 validation (FastAPI shape), 401 auth, tenant isolation, 413, 404."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from wesog_async.emulator import EmulatorConfig, EmulatorServer


@pytest.fixture
def wesog_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(api_keys=("k1", "k2"), max_batch_items=5, max_body_bytes=4000)


@pytest.fixture
async def http(wesog_emulator: EmulatorServer) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"API-Key": "k1"}
    async with aiohttp.ClientSession(wesog_emulator.url, headers=headers) as session:
        yield session


async def errors_of(resp: aiohttp.ClientResponse) -> list[dict[str, Any]]:
    """The 422 ``detail`` list, checked to have FastAPI's shape."""
    assert resp.status == 422
    body = await resp.json()
    assert set(body) == {"detail"}
    for error in body["detail"]:
        assert {"loc", "msg", "type"} <= set(error)
        assert isinstance(error["loc"], list)
        assert isinstance(error["msg"], str)
    detail: list[dict[str, Any]] = body["detail"]
    return detail


async def locs(resp: aiohttp.ClientResponse) -> list[tuple[Any, ...]]:
    return [tuple(e["loc"]) for e in await errors_of(resp)]


SRC = "https://x.example/a.jpg"


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/imgs/a", {"title": "no src"}, [("body", "src")]),
        ("/imgs/a", {"src": None}, [("body", "src")]),
        ("/imgs/a", {"src": 5}, [("body", "src")]),
        ("/imgs/a", {"src": SRC, "nsfw": "true"}, [("body", "nsfw")]),
        ("/imgs/a", {"src": SRC, "nsfw": 1}, [("body", "nsfw")]),
        ("/imgs/a", {"src": SRC, "keywords": "a,b"}, [("body", "keywords")]),
        ("/imgs/a", {"src": SRC, "keywords": ["a", 2]}, [("body", "keywords", 1)]),
        ("/imgs/a", {"src": SRC, "title": 3}, [("body", "title")]),
        ("/imgs/a", [{"src": SRC}], [("body",)]),
        ("/imgs", {"id": "a", "src": SRC}, [("body",)]),
        ("/imgs", [{"src": SRC}], [("body", 0, "id")]),
        ("/imgs", [{"id": "a", "src": SRC}, {"id": 7}], [("body", 1, "id"), ("body", 1, "src")]),
        ("/imgs", [{"id": "", "src": SRC}], [("body", 0, "id")]),
        ("/imgs", [{"id": "a"}], [("body", 0, "src")]),
        ("/imgs", ["a"], [("body", 0)]),
    ],
)
async def test_create_body_errors(
    http: aiohttp.ClientSession, path: str, body: Any, expected: list[tuple[Any, ...]]
) -> None:
    async with http.post(path, json=body) as resp:
        assert await locs(resp) == expected


async def test_error_types_and_messages_look_like_pydantic(http: aiohttp.ClientSession) -> None:
    async with http.post("/imgs/a", json={"nsfw": "yes"}) as resp:
        errors = await errors_of(resp)
    assert errors == [
        {"type": "missing", "loc": ["body", "src"], "msg": "Field required", "input": None},
        {
            "type": "bool_type",
            "loc": ["body", "nsfw"],
            "msg": "Input should be a valid boolean",
            "input": "yes",
        },
    ]


async def test_put_needs_src_patch_does_not(http: aiohttp.ClientSession) -> None:
    async with http.put("/imgs/a", json={"title": "x"}) as resp:
        assert await locs(resp) == [("body", "src")]
    async with http.put("/imgs", json=[{"id": "a", "title": "x"}]) as resp:
        assert await locs(resp) == [("body", 0, "src")]
    async with http.patch("/imgs/a", json={"title": "x", "src": None}) as resp:
        assert resp.status == 202
    async with http.patch("/imgs", json=[{"title": "x"}]) as resp:
        assert await locs(resp) == [("body", 0, "id")]


async def test_delete_n_body(http: aiohttp.ClientSession) -> None:
    async with http.delete("/imgs", json=["a", {"id": "b"}]) as resp:
        assert resp.status == 202
        assert (await resp.json())["num_total"] == 2
    async with http.delete("/imgs", json=[1, {"x": "b"}, ""]) as resp:
        assert await locs(resp) == [("body", 0), ("body", 1, "id"), ("body", 2)]
    async with http.delete("/imgs", json={"ids": ["a"]}) as resp:
        assert await locs(resp) == [("body",)]


@pytest.mark.parametrize(
    "raw", [b"{bad json", b"", b"   ", b"\xff\xfe", b'{"src": "https://x.example/"'], ids=repr
)
async def test_non_json_bodies(http: aiohttp.ClientSession, raw: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    async with http.post("/imgs/a", data=raw, headers=headers) as resp:
        errors = await errors_of(resp)
    assert errors[0]["type"] in ("json_invalid", "missing")
    assert errors[0]["loc"][0] == "body"


async def test_batch_over_max_items_is_422(http: aiohttp.ClientSession) -> None:
    body = [{"id": str(n), "src": SRC} for n in range(6)]
    async with http.post("/imgs", json=body) as resp:
        errors = await errors_of(resp)
    assert errors[0]["type"] == "too_long"
    assert "at most 5 items" in errors[0]["msg"]


async def test_body_over_max_bytes_is_413(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    body = [{"id": str(n), "src": SRC, "caption": "x" * 1000} for n in range(5)]
    async with http.post("/imgs", json=body) as resp:
        assert resp.status == 413
        assert "detail" in await resp.json()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: limit hit while reading
        yield b"[" + b" " * 3000
        yield b" " * 3000 + b"]"

    async with http.post("/imgs", data=chunks()) as resp:
        assert resp.status == 413
    assert wesog_emulator.state.counters.ops_created == 0


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("wait=maybe", ("query", "wait")),
        ("urgent=2", ("query", "urgent")),
        ("strict=", ("query", "strict")),
        ("lang=de", ("query", "lang")),
    ],
)
async def test_write_query_errors(
    http: aiohttp.ClientSession, query: str, loc: tuple[str, ...]
) -> None:
    async with http.post(f"/imgs/a?{query}", json={"src": SRC}) as resp:
        assert await locs(resp) == [loc]


@pytest.mark.parametrize(
    "value", ["true", "True", "1", "yes", "on", "false", "0", "no", "off", "OFF"]
)
async def test_boolean_query_spellings(http: aiohttp.ClientSession, value: str) -> None:
    async with http.delete(f"/imgs/a?wait={value}&strict={value}") as resp:
        expected = value.lower() in ("true", "1", "yes", "on")
        assert resp.status == (200 if expected else 202)
        assert (await resp.json())["do_strict"] is expected


async def test_delete_ignores_lang_and_lang_values_accepted(http: aiohttp.ClientSession) -> None:
    async with http.delete("/imgs/a?lang=xx") as resp:
        assert resp.status == 202
    for lang in ("en", "es", "pt", "fr", "ru"):
        async with http.post(f"/imgs/a?lang={lang}", json={"src": SRC}) as resp:
            assert resp.status == 202


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("page=0", ("query", "page")),
        ("page=x", ("query", "page")),
        ("limit=0", ("query", "limit")),
        ("limit=10001", ("query", "limit")),
        ("sort_by=colour", ("query", "sort_by")),
        ("sort_order=up", ("query", "sort_order")),
        ("fields=image_id&fields=description", ("query", "fields", 1)),
        ("facets=width", ("query", "facets", 0)),
        ("lang=fr", ("query", "lang")),
        ("count=perhaps", ("query", "count")),
        ("sort_by=similarity", ("query", "sort_by")),
        ("q=id%3D", ("query", "q")),
    ],
)
async def test_search_query_errors(
    http: aiohttp.ClientSession, query: str, loc: tuple[Any, ...]
) -> None:
    async with http.get(f"/imgs?{query}") as resp:
        assert await locs(resp) == [loc]


async def test_search_limit_bounds_are_inclusive(http: aiohttp.ClientSession) -> None:
    for query in ("limit=1", "limit=10000", "page=1"):
        async with http.get(f"/imgs?{query}") as resp:
            assert resp.status == 200


async def test_op_id_and_ops_paging_validation(http: aiohttp.ClientSession) -> None:
    async with http.get("/ops/abc") as resp:
        assert await locs(resp) == [("path", "op_id")]
    async with http.delete("/ops/abc") as resp:
        assert await locs(resp) == [("path", "op_id")]
    async with http.get("/ops?limit=0&page=0") as resp:
        assert await locs(resp) == [("query", "limit"), ("query", "page")]


async def test_get_image_fields_validation(http: aiohttp.ClientSession) -> None:
    async with http.get("/imgs/a?fields=nope") as resp:
        assert await locs(resp) == [("query", "fields", 0)]


# -- auth and tenants --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/imgs"),
        ("GET", "/imgs/a"),
        ("POST", "/imgs/a"),
        ("PUT", "/imgs"),
        ("PATCH", "/imgs/a"),
        ("DELETE", "/imgs"),
        ("GET", "/ops"),
        ("GET", "/ops/1"),
        ("DELETE", "/ops/1"),
        ("POST", "/tag/image"),
    ],
)
async def test_missing_or_wrong_key_is_401(
    wesog_emulator: EmulatorServer, method: str, path: str
) -> None:
    async with aiohttp.ClientSession(wesog_emulator.url) as anon:
        async with anon.request(method, path) as resp:
            assert resp.status == 401
            assert await resp.json() == {"detail": "Missing API key"}
        async with anon.request(method, path, headers={"API-Key": "canary-KEY-123"}) as resp:
            assert resp.status == 401
            text = await resp.text()
    assert "canary" not in text
    assert wesog_emulator.state.counters.ops_created == 0


async def test_tenants_are_isolated(http: aiohttp.ClientSession) -> None:
    async with http.post("/imgs/shared?wait=true", json={"src": SRC, "title": "mine"}) as resp:
        op_id = (await resp.json())["op_id"]
    other = {"API-Key": "k2"}
    async with http.get("/imgs/shared", headers=other) as resp:
        assert resp.status == 404
    async with http.get("/imgs?count=true", headers=other) as resp:
        assert (await resp.json())["count"] == 0
    async with http.get(f"/ops/{op_id}", headers=other) as resp:
        assert resp.status == 404
    async with http.post("/imgs/shared?wait=true&strict=true", json={"src": SRC}, headers=other):
        pass  # strict create succeeds for k2: its store is separate
    async with http.get("/imgs/shared") as resp:
        assert (await resp.json())["title"] == "mine"


async def test_unknown_route_and_method(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    async with aiohttp.ClientSession(wesog_emulator.url) as anon, anon.get("/nothing") as resp:
        assert resp.status == 404  # no key needed to learn a path does not exist
        assert await resp.json() == {"detail": "Not Found"}
    async with http.put("/ops/1") as resp:
        assert resp.status == 405
        assert await resp.json() == {"detail": "Method Not Allowed"}
