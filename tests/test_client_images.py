"""Every image endpoint against the emulator over loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from wesog_async import (
    UNSET,
    BadRequestError,
    Image,
    ImageInput,
    InvalidInputError,
    NotFoundError,
    OperationMethod,
    OperationResource,
    WesogClient,
)
from wesog_async.emulator import EmulatorServer

SRC = "https://cdn.example.com/image/source.jpg"

FULL = {
    "src": SRC,
    "url_img_watermark": "https://cdn.example.com/image/wm.jpg",
    "url_img_thumbnail": "https://cdn.example.com/image/thumb.jpg",
    "title": "image123",
    "headline": "Sunset over the Hudson River",
    "caption": "A vibrant orange sunset reflecting on the river.",
    "alt_text": "sunset",
    "ai_generated": True,
    "model_release": True,
    "property_release": False,
    "nsfw": False,
    "status": "Active",
    "date": "2024-10-19",
    "location": "123 Main St",
    "city": "New York",
    "country": "United States",
    "event": "Oscar awards 2024",
    "author": "Jane Doe",
    "provider": "Acme Inc.",
    "shot": "Portrait",
    "scene": "Town square",
    "technique": "Drawing",
    "medium": "Oil on canvas",
    "keywords": ["Tree", "Dog"],
    "categories": ["Sport"],
    "collections": ["Exclusive"],
}


async def test_create_one_with_every_field_then_get(client: WesogClient) -> None:
    fut = await client.images.create({"id": "image123", **FULL})
    assert fut.op_id is not None
    op = await fut
    assert op.is_finished and op.num_total == 1 and op.num_good == 1 and op.num_bad == 0
    assert op.method is OperationMethod.ADD and op.resource is OperationResource.IMAGE
    assert op.all_good is True and op.do_wait is False and op.do_strict is False
    assert op.finished_at is not None and op.started_at is not None
    image = await client.images.get("image123")
    assert isinstance(image, Image)
    assert image.image_id == "image123"
    assert image.title == "image123" and image.keywords == ("Tree", "Dog")
    assert image.ai_generated is True and image.property_release is False
    assert image.width is not None and image.height is not None and image.n_faces is not None


async def test_get_with_fields_projects(client: WesogClient) -> None:
    await (await client.images.create({"id": "p1", "src": SRC, "title": "T"}, wait=True))
    image = await client.images.get("p1", fields=["image_id", "title"])
    assert image.image_id == "p1" and image.title == "T"
    assert image.src is None and image.width is None


async def test_create_with_image_input_model(client: WesogClient) -> None:
    op = await (await client.images.create(ImageInput(id="m1", src=SRC, city="Paris")))
    assert op.num_good == 1
    assert (await client.images.get("m1")).city == "Paris"


async def test_wait_true_resolves_without_polling(client: WesogClient) -> None:
    fut = await client.images.create({"id": "w1", "src": SRC}, wait=True)
    assert fut.done()
    assert client.stats()["polls"] == 0
    op = await fut
    assert op.is_finished and op.do_wait is True


async def test_replace_clears_omitted_fields(client: WesogClient) -> None:
    await (await client.images.create({"id": "r1", "src": SRC, "title": "old", "city": "Rome"}))
    op = await (await client.images.replace({"id": "r1", "src": SRC, "title": "new"}))
    assert op.method is OperationMethod.UPD
    image = await client.images.get("r1")
    assert image.title == "new" and image.city is None


async def test_modify_changes_only_sent_fields_and_none_clears(client: WesogClient) -> None:
    await (await client.images.create({"id": "x1", "src": SRC, "title": "old", "city": "Rome"}))
    await (await client.images.modify(ImageInput(id="x1", title="new", city=None)))
    image = await client.images.get("x1")
    assert image.title == "new" and image.city is None and image.src == SRC
    await (await client.images.modify({"id": "x1", "author": "Ann"}))
    image = await client.images.get("x1")
    assert image.title == "new" and image.author == "Ann"
    assert ImageInput(id="x1").title is UNSET


async def test_batch_writes_and_delete(client: WesogClient) -> None:
    records = [{"id": f"b{n}", "src": f"{SRC}?{n}", "title": f"t{n}"} for n in range(20)]
    op = await (await client.images.create_many(records))
    assert (op.num_total, op.num_good, op.num_bad) == (20, 20, 0)
    op = await (
        await client.images.replace_many([{"id": "b0", "src": SRC}, {"id": "b1", "src": SRC}])
    )
    assert op.num_good == 2
    assert (await client.images.get("b0")).title is None
    op = await (
        await client.images.modify_many([{"id": "b2", "title": "z"}, {"id": "b3", "city": "Oslo"}])
    )
    assert op.num_good == 2
    assert (await client.images.get("b2")).title == "z"
    op = await (await client.images.delete_many([f"b{n}" for n in range(10)]))
    assert op.num_good == 10
    with pytest.raises(NotFoundError):
        await client.images.get("b0")
    op = await (await client.images.delete("b10"))
    assert op.method is OperationMethod.DEL and op.num_good == 1


async def test_per_item_errors_are_mapped_to_image_ids(client: WesogClient) -> None:
    records = [
        {"id": "e0", "src": SRC},
        {"id": "e1", "src": "https://host.invalid/x.jpg"},
        {"id": "e2", "src": "ftp://example.com/x.jpg"},
        {"id": "e3", "src": SRC},
    ]
    fut = await client.images.create_many(records)
    op = await fut
    assert (op.num_good, op.num_bad, op.all_good) == (2, 2, False)
    assert fut.failed_ids == ["e1", "e2"]
    assert {e.msg for e in fut.failed} == {"src unreachable"}
    assert fut.applied_ids == ["e0", "e3"]


async def test_strict_create_of_existing_id_is_an_item_error(client: WesogClient) -> None:
    await (await client.images.create({"id": "s1", "src": SRC}))
    fut = await client.images.create({"id": "s1", "src": SRC}, strict=True)
    op = await fut
    assert op.num_bad == 1 and op.do_strict is True
    assert fut.failed_ids == ["s1"]
    # Non-strict is an upsert.
    op = await (await client.images.create({"id": "s1", "src": SRC, "title": "up"}))
    assert op.num_good == 1
    assert (await client.images.get("s1")).title == "up"


async def test_strict_delete_of_missing_id(client: WesogClient) -> None:
    op = await (await client.images.delete("nope", strict=True))
    assert op.num_bad == 1
    op = await (await client.images.delete("nope"))
    assert op.num_bad == 0 and op.num_good == 1


async def test_image_ids_with_reserved_characters_round_trip(client: WesogClient) -> None:
    for image_id in ["a/b", "with space", "ünï", "q?x=1#f", "%2F"]:
        await (await client.images.create({"id": image_id, "src": SRC}))
        assert (await client.images.get(image_id)).image_id == image_id


async def test_search_page_count_facets_sort(client: WesogClient) -> None:
    records = [
        {"id": f"s{n:02d}", "src": SRC, "title": "red car" if n % 2 else "blue sea",
         "keywords": ["car"] if n % 2 else ["sea"], "date": f"2020-01-{n + 1:02d}"}
        for n in range(12)
    ]  # fmt: skip
    await (await client.images.create_many(records))
    page = await client.images.search(
        "k=car", count=True, facets=["keywords"], sort_by="date", sort_order="desc", limit=4
    )
    assert page.count == 6
    assert len(page.results) == 4
    assert [r.image_id for r in page.results] == ["s11", "s09", "s07", "s05"]
    assert page.facets["keywords"]["car"] == 6
    page2 = await client.images.search("k=car", page=2, limit=4, sort_by="date", sort_order="desc")
    assert [r.image_id for r in page2.results] == ["s03", "s01"]
    assert page2.count is None
    hits = await client.images.search("t~sunset && d>2099-01-01")
    assert hits.results == ()


async def test_search_iter_walks_every_page(client: WesogClient) -> None:
    await (await client.images.create_many({"id": f"i{n}", "src": SRC} for n in range(23)))
    ids = [img.image_id async for img in client.images.search_iter(limit=5, sort_by="image_id")]
    assert len(ids) == 23 and len(set(ids)) == 23


async def test_search_fields_projection(client: WesogClient) -> None:
    await (await client.images.create({"id": "f1", "src": SRC, "title": "x"}))
    page = await client.images.search(fields=["image_id"])
    assert page.results[0].image_id == "f1" and page.results[0].title is None


async def test_malformed_formula_is_a_bad_request_naming_where(client: WesogClient) -> None:
    with pytest.raises(BadRequestError) as info:
        await client.images.search("(id=1 && ")
    assert info.value.status == 422
    assert info.value.errors, "the FastAPI detail list is kept"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.images.create({"id": "a"}), "src"),
        (lambda c: c.images.create({"id": "", "src": SRC}), "id"),
        (lambda c: c.images.create({"id": 5, "src": SRC}), "id"),
        (lambda c: c.images.create({"id": "a", "src": SRC, "nsfw": "no"}), "nsfw"),
        (lambda c: c.images.create({"id": "a", "src": SRC, "height": 3}), "height"),
        (lambda c: c.images.create_many([{"id": "a", "src": SRC}, {"id": "a", "src": SRC}]), "id"),
        (lambda c: c.images.replace_many([{"id": "a", "src": SRC}, {"id": "b"}]), "src"),
        (lambda c: c.images.delete_many(["a", ""]), "id"),
        (lambda c: c.images.modify({"id": "a", "keywords": "dog"}), "keywords"),
    ],
)
async def test_invalid_input_is_rejected_before_any_request(
    client: WesogClient, wesog_emulator: EmulatorServer, call: object, field: str
) -> None:
    before = sum(wesog_emulator.state.counters.snapshot()["requests"].values())
    with pytest.raises(InvalidInputError) as info:
        await call(client)  # type: ignore[operator]
    assert info.value.field == field and field in str(info.value)
    assert sum(wesog_emulator.state.counters.snapshot()["requests"].values()) == before


async def test_oversize_batch_is_refused_before_sending(client: WesogClient) -> None:
    with pytest.raises(ValueError, match="at most"):
        await client.images.delete_many([f"id{n}" for n in range(client.max_batch_items + 1)])


async def test_tag_image(client: WesogClient, tmp_path: object) -> None:
    result = await client.tag.image(b"\x89PNG...", keywords=True, caption=True, lang="en")
    assert result.keywords and result.caption
    again = await client.tag.image(b"\x89PNG...", keywords=True, caption=True, lang="en")
    assert again.keywords == result.keywords, "deterministic tags"
    assert result.raw


async def test_tag_from_a_path_and_a_file_object(client: WesogClient, tmp_path: Path) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"\xff\xd8fake-jpeg")
    from_path = await client.tag.image(image, keywords=True, mode="editorial", city="Oslo")
    with image.open("rb") as fh:
        from_file = await client.tag.image(fh, keywords=True, mode="editorial", city="Oslo")
    assert from_path.keywords == from_file.keywords
    with pytest.raises(ValueError, match="mode"):
        await client.tag.image(image, mode="fancy")
    with pytest.raises(ValueError, match="empty"):
        await client.tag.image(b"")


async def test_ops_list_paging_and_argument_checks(client: WesogClient) -> None:
    for n in range(3):
        await (await client.images.create({"id": f"o{n}", "src": SRC}))
    newest_first = await client.ops.list(limit=2)
    assert [op.op_id for op in newest_first] == sorted(
        (op.op_id for op in newest_first), reverse=True
    )
    assert len(newest_first) == 2
    second_page = await client.ops.list(limit=2, page=2)
    assert len(second_page) == 1
    with pytest.raises(ValueError, match="limit"):
        await client.ops.list(limit=0)
    with pytest.raises(ValueError, match="page"):
        await client.ops.list(page=0)
    with pytest.raises(ValueError, match="op_id"):
        await client.ops.get(-1)
    with pytest.raises(ValueError, match="token"):
        client.ops.follow("not a token")
