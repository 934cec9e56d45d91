"""Emulator: the fast paths answer exactly like the full checks they skip.

A clean batch element skips :func:`image_fields`, a body goes through orjson
before json, a plain ``http(s)://host`` src skips urlsplit and a flat content
skips the recursive freeze. Each is compared here with the slow path it
replaces, over generated inputs, and end to end for the answers a user sees.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wesog_async.emulator import EmulatorConfig, EmulatorServer
from wesog_async.emulator.counters import _content_hash, _freeze
from wesog_async.emulator.store import WRITABLE_FIELDS, src_is_reachable
from wesog_async.emulator.validation import (
    Errors,
    RequestValidationError,
    clean_fields,
    image_fields,
    parse_json,
)

# Values of every JSON type, so that each field sees right and wrong types.
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner),
    max_leaves=4,
)
names = st.sampled_from([*WRITABLE_FIELDS, "id", "image_id", "width", "bogus"])
objects = st.dictionaries(names, values | st.lists(st.text(), max_size=3), max_size=6)


def _slow_reachable(src: str) -> bool:
    """The urlsplit-only check the fast path must agree with."""
    try:
        parts = urlsplit(src)
    except ValueError:
        return False
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("http", "https") or not host:
        return False
    return not (host == "invalid" or host.endswith(".invalid"))


@settings(max_examples=200, deadline=None)
@given(objects, st.booleans())
@example({"src": None}, True)
@example({"src": None}, False)
@example({"keywords": ["a", 1]}, False)
@example({"nsfw": "true", "src": "x"}, True)
def test_clean_fields_is_image_fields_without_errors(obj: dict[str, Any], need_src: bool) -> None:
    errors = Errors()
    _, fields = image_fields(errors, obj, ("body", 0), need_id=False, need_src=need_src)
    clean = clean_fields(obj, need_src=need_src)
    if errors.items:
        assert clean is None
    else:
        assert clean == fields


json_texts = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=8,
).map(json.dumps)
raw_bodies = (
    json_texts.map(str.encode)
    | json_texts.map(lambda t: t.encode("utf-16"))
    | st.binary(max_size=40)
    | st.sampled_from([b"[1, 2", b"{'a': 1}", b"\xef\xbb\xbf[1]", b'["\\ud800"]', b"[NaN]"])
)


def _outcome(raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", parse_json(Errors(), raw)
    except RequestValidationError as exc:
        return "422", exc.detail


@settings(max_examples=200, deadline=None)
@given(raw_bodies)
@example(b"[123456789012345678901234567890]")
@example(b'{"a": 1, "a": 2}')
@example(b"[1e400, -0.0, 18446744073709551616]")
def test_parse_json_answers_as_json_does(raw: bytes) -> None:
    kind, value = _outcome(raw)
    if not raw.strip():
        assert kind == "422"
        return
    try:
        expected = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        assert kind == "422"
        assert value[0]["type"] == "json_invalid"
        return
    assert kind == "ok"
    # repr tells 1 from 1.0 and keeps NaN equal to itself.
    assert repr(value) == repr(expected)


urls = st.text(
    # with the non-ASCII letters that case-fold to ASCII ones (long s, dotless i,
    # Kelvin sign, dotted capital I)
    alphabet=st.sampled_from(
        list("htps:/.?#@[]-_ \t\n\x00abcINVALDinvald09%\u00e9\u017f\u0131\u212a\u0130")
    ),
    max_size=14,
)
prefixes = st.sampled_from(
    ["", "http://", "https://", "HTTP://", "hTtPs://", " http://", "https://x.", "http\u017f://"]
)


@settings(max_examples=300, deadline=None)
@given(prefixes, urls, st.sampled_from(["", "invalid", ".invalid", ".invalid.", ":80/a"]))
def test_src_fast_path_agrees_with_urlsplit(prefix: str, middle: str, suffix: str) -> None:
    src = prefix + middle + suffix
    assert src_is_reachable(src) is _slow_reachable(src)


@given(st.dictionaries(st.sampled_from(WRITABLE_FIELDS), values, max_size=4))
def test_content_hash_is_the_frozen_hash(content: dict[str, Any]) -> None:
    assert _content_hash(content) == hash(_freeze(content))


@pytest.fixture
async def http() -> Any:
    async with (
        EmulatorServer(EmulatorConfig(api_keys=("k",))) as srv,
        aiohttp.ClientSession(srv.url, headers={"API-Key": "k"}) as session,
    ):
        yield session


async def test_a_bad_element_among_clean_ones_is_named_by_its_index(
    http: aiohttp.ClientSession,
) -> None:
    body: list[Any] = [{"id": f"i{n}", "src": "https://x.example/a"} for n in range(300)]
    body[7] = {"id": "i7", "src": 5}
    body[250] = {"id": "", "src": "https://x.example/a", "keywords": ["a", 2]}
    async with http.post("/imgs", json=body) as resp:
        assert resp.status == 422
        detail = (await resp.json())["detail"]
    assert [(e["loc"], e["type"]) for e in detail] == [
        (["body", 7, "src"], "string_type"),
        (["body", 250, "id"], "string_too_short"),
        (["body", 250, "keywords", 1], "string_type"),
    ]


async def test_searches_see_every_write_since_the_last_search(
    http: aiohttp.ClientSession,
) -> None:
    """The store derives search records lazily: writes after a search count."""

    async def titles(q: str) -> list[str]:
        async with http.get("/imgs", params={"q": q, "fields": "image_id"}) as resp:
            assert resp.status == 200
            return sorted(r["image_id"] for r in (await resp.json())["results"])

    async def write(method: str, path: str, body: Any) -> None:
        async with http.request(method, path + "?wait=true", json=body) as resp:
            assert resp.status == 200, await resp.text()

    batch = [{"id": f"i{n}", "src": "https://x.example/a", "title": "red car"} for n in range(3)]
    await write("POST", "/imgs", batch)
    assert await titles("t~red") == ["i0", "i1", "i2"]
    await write("PATCH", "/imgs/i1", {"title": "blue boat"})
    await write("DELETE", "/imgs/i2", None)
    await write("POST", "/imgs/i3", {"src": "https://x.example/b", "title": "red bus"})
    await write("PUT", "/imgs/i0", {"src": "https://x.example/c", "title": "green van"})
    assert await titles("t~red") == ["i3"]
    assert await titles("t~blue") == ["i1"]
    assert await titles("t~green") == ["i0"]
