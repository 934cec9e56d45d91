"""Emulator: ``GET /imgs`` formula, sorting, paging, projection, count and facets."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from wesog_async.emulator import EmulatorConfig, EmulatorServer, FormulaError
from wesog_async.emulator.query import compile_formula
from wesog_async.emulator.store import ImageStore, computed_values

IMAGES: list[dict[str, Any]] = [
    {
        "id": "1",
        "src": "https://x.example/1",
        "title": "Red car in the city",
        "date": "2020-01-05",
        "status": "Active",
        "ai_generated": False,
        "keywords": ["car", "Red", "street"],
        "city": "Madrid",
        "author": "Ana",
        "categories": ["Travel"],
    },
    {
        "id": "2",
        "src": "https://x.example/2",
        "title": "Blue car at the beach",
        "date": "2021-6-1",
        "status": "Active",
        "ai_generated": True,
        "keywords": ["car", "beach"],
        "city": "Lima",
        "author": "Bo",
        "categories": ["Travel", "Sport"],
    },
    {
        "id": "10",
        "src": "https://x.example/10",
        "headline": "A dog playing with a ball",
        "date": "2019-12-31",
        "status": "Withdrawn",
        "ai_generated": False,
        "keywords": ["dog", "ball"],
        "city": "Madrid",
        "author": "Ana",
        "nsfw": True,
    },
    {
        "id": "abc",
        "src": "https://x.example/abc",
        "caption": "sunset over the red river, a quiet city",
        "status": "RDA Only",
        "keywords": ["sunset"],
    },
]


@pytest.fixture
def wesog_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(api_keys=("k",))


@pytest.fixture
async def http(wesog_emulator: EmulatorServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(wesog_emulator.url, headers={"API-Key": "k"}) as session:
        async with session.post("/imgs?wait=true", json=IMAGES) as resp:
            assert (await resp.json())["all_good"] is True
        yield session


async def find(http: aiohttp.ClientSession, **params: Any) -> dict[str, Any]:
    async with http.get("/imgs", params=params) as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
    return body


async def ids(http: aiohttp.ClientSession, q: str, **params: Any) -> list[str]:
    body = await find(http, q=q, **params)
    return [r["image_id"] for r in body["results"]]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("", ["1", "2", "10", "abc"]),
        ("id=10", ["10"]),
        ("id>2", ["10"]),  # numeric when both sides are numbers
        ("id<=2", ["1", "2"]),
        ("id=abc", ["abc"]),
        ("d>2020-01-01", ["1", "2"]),
        ("date<=2020-1-5", ["1", "10"]),
        ("d=2021-06-01", ["2"]),
        ("ai=true", ["2"]),
        ("ai=false", ["1", "10"]),
        ("status=active", ["1", "2"]),
        ("status:Withdrawn", ["10"]),
        ("status==Active", ["1", "2"]),
        ("status=='active'", []),
        ('status="RDA Only"', ["abc"]),
        ("status=RDA Only", ["abc"]),
        ("t~car", ["1", "2"]),
        ("text~a red car", ["1", "2", "10", "abc"]),
        ("txt~~red car", ["1", "2", "abc"]),
        ("t~~~red car", ["1"]),
        ("t~sunset", ["abc"]),
        ("k=car", ["1", "2"]),
        ("key=car,red", ["1"]),
        ("keywords:dog,beach", ["2", "10"]),
        ("k~ee", ["1"]),
        ("cat=travel", ["1", "2"]),
        ("city=madrid && author=Ana", ["1", "10"]),
        ("(id=1 || id=2) && ai=true", ["2"]),
        ("id=1 || id=2 && ai=true", ["1", "2"]),
        ("!(status=active)", ["10", "abc"]),
        ("!ai=true && k:car", ["1"]),
        ("nsfw=true", ["10"]),
        ("city~adr", ["1", "10"]),
        ("author>Ann", ["2"]),
        ("i=2", ["2"]),
        ("i~1", ["1", "2", "abc"]),
        ("i~nope", []),
        ("  id = 1  ", ["1"]),
    ],
)
async def test_formula(http: aiohttp.ClientSession, q: str, expected: list[str]) -> None:
    assert await ids(http, q) == expected


async def test_numeric_filters_use_derived_values(http: aiohttp.ClientSession) -> None:
    ratios = {i["id"]: computed_values(i["id"]) for i in IMAGES}
    wanted = sorted(i for i, (w, h, _) in ratios.items() if w / h < 1)
    assert sorted(await ids(http, "r<1")) == wanted
    assert sorted(await ids(http, "ratio>=1")) == sorted(set(ratios) - set(wanted))
    faces = {i: n for i, (_, _, n) in ratios.items()}
    for n in set(faces.values()):
        got = await ids(http, f"n={n}")
        assert sorted(got) == sorted(i for i, f in faces.items() if f == n)
    assert sorted(await ids(http, "n_people>=0")) == sorted(faces)
    with_faces = sorted(i for i, f in faces.items() if f and i != "10")
    assert sorted(await ids(http, "p~red car city")) == sorted(
        i for i in with_faces if i in ("1", "2", "abc")
    )


@pytest.mark.parametrize(
    ("q", "pos"),
    [
        ("id=", 3),
        ("(id=1", 5),
        ("id=1)", 4),
        ("id=1 &&", 7),
        ("&& id=1", 0),
        ("colour=red", 0),
        ("id 1", 3),
        ("d>yesterday", 2),
        ("r<wide", 2),
        ("ai=maybe", 3),
        ("t=car", 1),
        ("d~2020-01-01", 1),
        ('title="open', 6),
        ("t~ !!", 3),
        ("id=1 ||| id=2", 7),
    ],
)
async def test_malformed_formula_says_where(http: aiohttp.ClientSession, q: str, pos: int) -> None:
    async with http.get("/imgs", params={"q": q}) as resp:
        assert resp.status == 422
        (error,) = (await resp.json())["detail"]
    assert error["loc"] == ["query", "q"]
    assert error["type"] == "value_error"
    assert f"position {pos}" in error["msg"]
    assert error["ctx"] == {"position": pos}


def test_formula_error_is_a_value_error() -> None:
    with pytest.raises(FormulaError) as info:
        compile_formula("id=1 &&& x", ImageStore())
    assert isinstance(info.value, ValueError)
    assert info.value.pos == 7


async def test_sort_and_order(http: aiohttp.ClientSession) -> None:
    assert await ids(http, "", sort_by="image_id") == ["1", "10", "2", "abc"]
    assert await ids(http, "", sort_by="date", sort_order="desc") == ["2", "1", "10", "abc"]
    assert await ids(http, "", sort_by="date", sort_order="asc") == ["10", "1", "2", "abc"]
    assert await ids(http, "", sort_by="author", sort_order="desc") == ["2", "1", "10", "abc"]
    widths = sorted(IMAGES, key=lambda i: computed_values(i["id"])[0])
    assert await ids(http, "", sort_by="width") == [i["id"] for i in widths]
    ratio = sorted(IMAGES, key=lambda i: computed_values(i["id"])[0] / computed_values(i["id"])[1])
    assert await ids(http, "", sort_by="aspect_ratio") == [i["id"] for i in ratio]


async def test_sort_by_similarity_needs_a_similarity_filter(http: aiohttp.ClientSession) -> None:
    # "red car": image 1 has both words, 2 has one ("car"), abc one ("red").
    got = await ids(http, "t~red car", sort_by="similarity")
    assert got[0] == "1"
    assert set(got[1:]) == {"2", "abc"}
    assert (await ids(http, "t~red car", sort_by="sim", sort_order="asc"))[-1] == "1"


async def test_paging(http: aiohttp.ClientSession) -> None:
    assert await ids(http, "", limit=3) == ["1", "2", "10"]
    assert await ids(http, "", limit=3, page=2) == ["abc"]
    assert await ids(http, "", limit=3, page=3) == []
    assert await ids(http, "", limit=2, page=2, sort_by="image_id") == ["2", "abc"]


async def test_count_is_null_unless_asked(http: aiohttp.ClientSession) -> None:
    body = await find(http, q="k=car", limit=1)
    assert body == {"results": body["results"], "count": None, "facets": {}}
    assert (await find(http, q="k=car", limit=1, count="true"))["count"] == 2
    assert (await find(http, count="1"))["count"] == 4


async def test_fields_projection(http: aiohttp.ClientSession) -> None:
    body = await find(http, q="id=1", fields=["title", "image_id"])
    assert body["results"] == [{"image_id": "1", "title": "Red car in the city"}]
    async with http.get("/imgs/2", params=[("fields", "city"), ("fields", "width")]) as resp:
        assert await resp.json() == {"city": "Lima", "width": computed_values("2")[0]}
    full = (await find(http, q="id=1"))["results"][0]
    assert len(full) == 30


async def test_facets(http: aiohttp.ClientSession) -> None:
    params = [("facets", f) for f in ("status", "ai_generated", "keywords", "orientation", "city")]
    async with http.get("/imgs", params=params) as resp:
        facets = (await resp.json())["facets"]
    assert facets["status"] == {"Active": 2, "Withdrawn": 1, "RDA Only": 1}
    assert facets["ai_generated"] == {"false": 2, "true": 1}
    assert facets["keywords"]["car"] == 2
    assert sum(facets["orientation"].values()) == 4
    assert facets["city"] == {"Madrid": 2, "Lima": 1}
    body = await find(http, q="city=madrid", facets="author")
    assert body["facets"] == {"author": {"Ana": 2}}


async def test_search_lang_is_accepted(http: aiohttp.ClientSession) -> None:
    for lang in ("ml", "en", "es"):
        assert len(await ids(http, "", lang=lang)) == 4


@pytest.mark.slow
async def test_search_over_100k_images_is_fast() -> None:
    cfg = EmulatorConfig(api_keys=("k",))
    async with EmulatorServer(cfg) as srv:
        store = srv.state.tenants[0].store
        for n in range(100_000):
            store.put(
                f"img{n}",
                {
                    "src": "https://x.example/",
                    "title": f"photo {n % 97} of a {('red', 'blue', 'green')[n % 3]} car",
                    "date": f"20{10 + n % 15}-01-01",
                    "keywords": ["car", f"k{n % 50}"],
                    "status": ("Active", "Withdrawn")[n % 2],
                },
            )
        async with aiohttp.ClientSession(srv.url, headers={"API-Key": "k"}) as http:
            cases = [
                {"q": "t~red car && d>2015-01-01 || k=k7", "count": "true"},
                {"q": "status=active", "sort_by": "date", "facets": "status"},
                {"q": "t~blue", "sort_by": "similarity", "limit": "100"},
                {"limit": "10"},
            ]
            for params in cases:
                started = time.perf_counter()
                async with http.get("/imgs", params=params) as resp:
                    assert resp.status == 200
                    await resp.read()
                assert time.perf_counter() - started < 2.0, params
