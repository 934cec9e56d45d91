"""Emulator: ``POST /tag/image`` (multipart, deterministic tags)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from wesog_async.emulator import EmulatorServer


@pytest.fixture
async def http(wesog_emulator: EmulatorServer) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"API-Key": wesog_emulator.api_key}
    async with aiohttp.ClientSession(wesog_emulator.url, headers=headers) as session:
        yield session


def form(image: bytes | None = b"\x89PNG fake bytes", /, **fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, value in fields.items():
        data.add_field(name, value)
    if image is not None:
        data.add_field("image", image, filename="x.png", content_type="image/png")
    return data


async def tag(http: aiohttp.ClientSession, data: aiohttp.FormData) -> tuple[int, Any]:
    async with http.post("/tag/image", data=data) as resp:
        return resp.status, await resp.json()


async def test_tags_are_deterministic_and_optional_outputs_null(
    http: aiohttp.ClientSession,
) -> None:
    status, first = await tag(http, form())
    assert status == 200
    assert first["lang"] == "en"
    assert len(first["tags"]) == 5
    assert (first["keywords"], first["caption"], first["ocr"], first["colors"]) == (
        None,
        None,
        None,
        None,
    )
    assert (await tag(http, form()))[1] == first
    assert (await tag(http, form(b"other bytes")))[1]["tags"] != first["tags"]


async def test_flags_and_context(http: aiohttp.ClientSession) -> None:
    fields = {
        "lang": "es",
        "mode": "editorial",
        "keywords": "true",
        "caption": "true",
        "ocr": "1",
        "colors": "yes",
        "city": "Lima",
        "date": "",
    }
    status, body = await tag(http, form(**fields))
    assert status == 200
    assert (body["lang"], body["mode"]) == ("es", "editorial")
    assert set(body["tags"]) <= set(body["keywords"])
    assert body["caption"].endswith("Lima")
    assert isinstance(body["ocr"], str)
    assert all(c.startswith("#") and len(c) == 7 for c in body["colors"])


@pytest.mark.parametrize(
    ("image", "fields", "loc"),
    [
        (None, {}, ["body", "image"]),
        (None, {"image": "not a file"}, ["body", "image"]),
        (b"x", {"lang": "de"}, ["body", "lang"]),
        (b"x", {"mode": "fancy"}, ["body", "mode"]),
        (b"x", {"ocr": "perhaps"}, ["body", "ocr"]),
    ],
)
async def test_tag_validation(
    http: aiohttp.ClientSession, image: bytes | None, fields: dict[str, str], loc: list[str]
) -> None:
    status, body = await tag(http, form(image, **fields))
    assert status == 422
    assert [e["loc"] for e in body["detail"]] == [loc]


async def test_tag_needs_multipart(http: aiohttp.ClientSession) -> None:
    async with http.post("/tag/image", json={"image": "x"}) as resp:
        assert resp.status == 422
