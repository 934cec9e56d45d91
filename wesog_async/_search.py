"""Search endpoints: one page of results (``GET /imgs``) and every result across pages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from typing import Literal

from wesog_async import _sansio
from wesog_async import _wire as wire
from wesog_async._convert import structure_search_page
from wesog_async._errors import ResponseValidationError
from wesog_async._models import IMAGE_FIELDS, Image, SearchPage
from wesog_async._retry import RetryPolicy
from wesog_async._transport import Transport

logger = logging.getLogger("wesog_async")

_IMAGE_FIELDS = frozenset(IMAGE_FIELDS)


class SearchEndpoints:
    """``client.images.search`` and ``search_iter``: :class:`ImagesAPI` mixes this in."""

    _transport: Transport

    async def search(
        self,
        q: str | None = None,
        *,
        page: int = 1,
        limit: int | None = None,
        sort_by: str | None = None,
        sort_order: Literal["asc", "desc"] | None = None,
        fields: Iterable[str] | None = None,
        facets: Iterable[str] | None = None,
        count: bool | None = None,
        lang: str | None = None,
        retry: RetryPolicy | None = None,
        response_timeout: float | None = None,
    ) -> SearchPage:
        """One page of results (``GET /imgs``).

        ``q`` is the filter formula (e.g. ``"d>2020-01-01 && k=dog"``); options
        left ``None`` are not sent (server defaults: page 1, limit 50).
        """
        params = _sansio.search_params(
            q=q, page=page, limit=limit, sort_by=sort_by, sort_order=sort_order,
            fields=fields, facets=facets, count=count, lang=lang, image_fields=_IMAGE_FIELDS,
        )  # fmt: skip
        resp = await self._transport.request(
            "GET", wire.PATH_IMAGES, kind="read", params=params, retry=retry,
            response_timeout=response_timeout,
        )  # fmt: skip
        return structure_search_page(resp.json(), page=page, limit=limit, body=resp.body)

    async def search_iter(
        self,
        q: str | None = None,
        *,
        limit: int = 500,
        sort_by: str | None = None,
        sort_order: Literal["asc", "desc"] | None = None,
        fields: Iterable[str] | None = None,
        lang: str | None = None,
        max_pages: int | None = None,
        response_timeout: float | None = None,
    ) -> AsyncIterator[Image]:
        """Every result across pages, ``limit`` at a time.

        The first page asks for the total ``count``. While that count says
        more results remain, paging goes on, whatever the size of each page (a
        server may cap ``limit`` or cut pages by bytes). It ends at the count,
        or at the first empty page (a page past the end is empty): an empty
        page before the count is reached (results deleted meanwhile, or a count
        the server overstated) ends it too, with a WARNING on the
        ``wesog_async`` logger saying how many of how many were seen. Without a
        count, a page shorter than the server's own page size ends it as well.
        Every page that does not end it holds at least one new result, so with
        a count the requests are bounded by it. A page that repeats the one
        before (a server ignoring ``page``) raises
        :class:`ResponseValidationError`. Results that change between pages
        may be skipped or repeated (the API pages by offset).
        ``response_timeout`` overrides the client's ``timeout=`` for each page.
        """
        fields = list(fields) if fields is not None else None
        page = 1
        seen = 0
        total: int | None = None
        page_size: int | None = None
        previous: list[str | None] | None = None
        while max_pages is None or page <= max_pages:
            result = await self.search(
                q, page=page, limit=limit, sort_by=sort_by, sort_order=sort_order,
                fields=fields, lang=lang, count=True if page == 1 else None,
                response_timeout=response_timeout,
            )  # fmt: skip
            if page == 1 and result.count is not None:
                total = result.count
            ids = [image.image_id for image in result.results]
            if not ids:
                if total is not None and seen < total:
                    logger.warning(
                        "search_iter: page %d is empty after %d of the %d results the "
                        "count announced; stopping (results deleted meanwhile, or an "
                        "overstated count)",
                        page, seen, total,
                        extra={"wesog_page": page, "wesog_seen": seen, "wesog_count": total},
                    )  # fmt: skip
                return
            if previous is not None and ids == previous and any(i is not None for i in ids):
                raise ResponseValidationError(
                    f"search page {page} repeats page {page - 1}: the server ignores paging"
                )
            previous = ids
            for image in result.results:
                yield image
            seen += len(ids)
            if total is not None:
                # The count decides: a short page (a capped or byte-cut page,
                # deletes between pages) does not mean the end.
                if seen >= total:
                    return
            else:
                if page_size is None:
                    page_size = min(limit, len(ids))
                if len(ids) < page_size:
                    return
            page += 1
