"""``GET /imgs``: filter with a compiled formula, sort, page, count, facets, project.

Choices where the docs are silent: ``sort_by=""`` keeps insertion order;
``sort_order`` defaults to ``asc``, except ``desc`` for ``similarity``/``sim``,
which needs a ``~`` filter in ``q`` (else 422); images without a value for the
sort field come last in either direction; ``count`` is ``null`` unless asked;
``facets`` count booleans as ``"true"``/``"false"`` and list fields per element.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

import attrs

from wesog_async.emulator.query import Query
from wesog_async.emulator.store import BOOL_FIELDS, IMAGE_FIELDS, LIST_FIELDS, ImageStore, Record

SORT_BY: Final = (
    "",
    "image_id",
    "src",
    "url_img_watermark",
    "url_img_thumbnail",
    "height",
    "width",
    "aspect_ratio",
    "n_faces",
    "date",
    "title",
    "headline",
    "caption",
    "location",
    "city",
    "country",
    "event",
    "author",
    "provider",
    "shot",
    "scene",
    "medium",
    "technique",
    "similarity",
    "sim",
)
FACETS: Final = (
    "ai_generated",
    "model_release",
    "property_release",
    "nsfw",
    "orientation",
    "status",
    "location",
    "city",
    "country",
    "event",
    "author",
    "provider",
    "shot",
    "scene",
    "medium",
    "technique",
    "keywords",
    "categories",
    "collections",
)
SORT_ORDERS: Final = ("asc", "desc")
SEARCH_LANGS: Final = ("ml", "en", "es")


@attrs.frozen
class SearchParams:
    """Validated search parameters (``sort_order=None`` means the sort's default)."""

    query: Query
    sort_by: str = ""
    sort_order: str | None = None
    page: int = 1
    limit: int = 50
    fields: tuple[str, ...] = ()
    facets: tuple[str, ...] = ()
    count: bool = False


def _sort_key(sort_by: str, query: Query) -> Callable[[Record], Any]:
    if sort_by in ("similarity", "sim"):
        return query.score
    if sort_by == "aspect_ratio":
        return lambda rec: rec.aspect_ratio
    if sort_by == "date":
        return lambda rec: rec.date
    if sort_by in ("height", "width", "n_faces"):
        return lambda rec: rec.doc[sort_by]
    # Text fields sort case-insensitively.
    return lambda rec: v.casefold() if isinstance(v := rec.doc[sort_by], str) else v


def _sorted(hits: list[Record], params: SearchParams) -> list[Record]:
    key = _sort_key(params.sort_by, params.query)
    similarity = params.sort_by in ("similarity", "sim")
    descending = (params.sort_order or ("desc" if similarity else "asc")) == "desc"
    # Images without a value go last in either direction. No (key, record)
    # tuples: allocating 100k tracked objects wakes the cyclic GC over the store.
    present = [rec for rec in hits if key(rec) is not None]
    missing = [rec for rec in hits if key(rec) is None]
    present.sort(key=key, reverse=descending)
    return present + missing


def _facet_values(rec: Record, facet: str) -> Iterable[str]:
    if facet == "orientation":
        return () if rec.orientation is None else (rec.orientation,)
    value = rec.doc[facet]
    if value is None:
        return ()
    if facet in BOOL_FIELDS:
        return ("true" if value else "false",)
    if facet in LIST_FIELDS:
        return value  # type: ignore[no-any-return]
    return (value,)


def facet_counts(hits: Sequence[Record], facets: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{facet: {value: count}}``, most frequent values first."""
    result: dict[str, dict[str, int]] = {}
    for facet in facets:
        counts: Counter[str] = Counter()
        for rec in hits:
            counts.update(_facet_values(rec, facet))
        result[facet] = dict(counts.most_common())
    return result


def project(doc: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """Keep only ``fields`` (in documented order); the others are left out."""
    if not fields:
        return doc
    wanted = set(fields)
    return {name: doc[name] for name in IMAGE_FIELDS if name in wanted}


def search(store: ImageStore, params: SearchParams) -> dict[str, Any]:
    """Run one search over ``store`` without copying it."""
    predicate = params.query.predicate
    records: Iterator[Record] = store.records()
    matching: Iterator[Record] = filter(predicate, records) if predicate else records
    offset = (params.page - 1) * params.limit
    count: int | None = None
    facets: dict[str, dict[str, int]] = {}
    if params.sort_by or params.count or params.facets:
        hits = list(matching)
        if params.sort_by:
            hits = _sorted(hits, params)
        if params.count:
            count = len(hits)
        if params.facets:
            facets = facet_counts(hits, params.facets)
        page = hits[offset : offset + params.limit]
    else:
        # Unsorted, uncounted: stop scanning as soon as the page is full.
        page = list(itertools.islice(matching, offset, offset + params.limit))
    return {
        "results": [project(rec.doc, params.fields) for rec in page],
        "count": count,
        "facets": facets,
    }
