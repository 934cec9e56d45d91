"""Image endpoints: create, replace, modify, delete (1 and N), get, search."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from wesog_async import _sansio
from wesog_async import _wire as wire
from wesog_async._client import json_body
from wesog_async._convert import structure_image, structure_operation, structure_search_page
from wesog_async._errors import (
    ConnectError,
    OutcomeUnknownError,
    ResponseValidationError,
    TransportError,
)
from wesog_async._models import IMAGE_FIELDS, Image, ImageInput, SearchPage
from wesog_async._operations import OperationFuture
from wesog_async._retry import PollPolicy, RetryPolicy

if TYPE_CHECKING:
    from wesog_async._bulk import IngestMode, IngestReport, Outcome
    from wesog_async._client import WesogClient

ImageRecord = ImageInput | Mapping[str, Any]
WriteMethod = Literal["POST", "PUT", "PATCH", "DELETE"]
_IMAGE_FIELDS = frozenset(IMAGE_FIELDS)


class ImagesAPI:
    """``client.images``: every image endpoint.

    Write methods return an :class:`OperationFuture` as soon as the server
    accepted the write; ``await`` it for the final :class:`Operation`. They
    take ``wait``, ``urgent``, ``strict`` (and ``lang``, except delete)
    keyword-only; ``wait`` and ``strict`` are always sent.
    """

    def __init__(self, client: WesogClient) -> None:
        self._client = client

    # -- writes: one image -----------------------------------------------------

    async def create(
        self,
        image: ImageRecord,
        *,
        wait: bool = False,
        urgent: bool = False,
        strict: bool = False,
        lang: str | None = None,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
    ) -> OperationFuture:
        """Create one image (``POST /imgs/{id}``); ``src`` is required.

        With ``strict=False`` (the default) an existing id is overwritten
        (upsert); with ``strict=True`` it is an item error.
        """
        image_id, body = _sansio.image_body(image, require_src=True, keep_id=False)
        return await self.submit(
            "POST", _sansio.image_path(image_id), body, (image_id,),
            wait=wait, urgent=urgent, strict=strict, lang=lang, poll=poll, retry=retry,
        )  # fmt: skip

    async def replace(
        self,
        image: ImageRecord,
        *,
        wait: bool = False,
        urgent: bool = False,
        strict: bool = False,
        lang: str | None = None,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
    ) -> OperationFuture:
        """Replace one image (``PUT /imgs/{id}``): fields not sent are cleared."""
        image_id, body = _sansio.image_body(image, require_src=True, keep_id=False)
        return await self.submit(
            "PUT", _sansio.image_path(image_id), body, (image_id,),
            wait=wait, urgent=urgent, strict=strict, lang=lang, poll=poll, retry=retry,
        )  # fmt: skip

    async def modify(
        self,
        image: ImageRecord,
        *,
        wait: bool = False,
        urgent: bool = False,
        strict: bool = False,
        lang: str | None = None,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
    ) -> OperationFuture:
        """Modify one image (``PATCH /imgs/{id}``): only the fields sent change."""
        image_id, body = _sansio.image_body(image, require_src=False, keep_id=False)
        return await self.submit(
            "PATCH", _sansio.image_path(image_id), body, (image_id,),
            wait=wait, urgent=urgent, strict=strict, lang=lang, poll=poll, retry=retry,
        )  # fmt: skip

    async def delete(
        self,
        image_id: str,
        *,
        wait: bool = False,
        urgent: bool = False,
        strict: bool = False,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
    ) -> OperationFuture:
        """Delete one image (``DELETE /imgs/{id}``).

        With ``strict=False`` a missing id is skipped and counted as good.
        """
        _sansio.check_image_id(image_id, field="image_id")
        return await self.submit(
            "DELETE", _sansio.image_path(image_id), None, (image_id,),
            wait=wait, urgent=urgent, strict=strict, lang=None, poll=poll, retry=retry,
        )  # fmt: skip

    # -- writes: N images ------------------------------------------------------

    async def create_many(
        self,
        images: Iterable[ImageRecord],
        *,
        wait: bool = False,
        urgent: bool = False,
        strict: bool = False,
        lang: str | None = None,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
    ) -> OperationFuture:
        """Create N images in one operation (``POST /imgs``)."""
        return await self._write_many("POST", images, True, wait, urgent, strict, lang, poll, retry)

    async def replace_many(
        self,
        images: Iterable[ImageRecord],
        *,
        wait: bool = False,
        urgent: bool = False,
        strict: bool = False,
        lang: str | None = None,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
    ) -> OperationFuture:
        """Replace N images in one operation (``PUT /imgs``)."""
        return await self._write_many("PUT", images, True, wait, urgent, strict, lang, poll, retry)

    async def modify_many(
        self,
        images: Iterable[ImageRecord],
        *,
        wait: bool = False,
        urgent: bool = False,
        strict: bool = False,
        lang: str | None = None,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
    ) -> OperationFuture:
        """Modify N images in one operation (``PATCH /imgs``)."""
        return await self._write_many(
            "PATCH", images, False, wait, urgent, strict, lang, poll, retry
        )

    async def delete_many(
        self,
        image_ids: Iterable[str],
        *,
        wait: bool = False,
        urgent: bool = False,
        strict: bool = False,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
    ) -> OperationFuture:
        """Delete N images in one operation (``DELETE /imgs``, body: array of ids)."""
        ids = [_sansio.check_image_id(i, index=n) for n, i in enumerate(image_ids)]
        _sansio.check_batch_ids(ids, max_items=self._client.max_batch_items)
        return await self.submit(
            "DELETE", wire.PATH_IMAGES, ids, tuple(ids),
            wait=wait, urgent=urgent, strict=strict, lang=None, poll=poll, retry=retry,
        )  # fmt: skip

    async def _write_many(
        self,
        method: WriteMethod,
        images: Iterable[ImageRecord],
        require_src: bool,
        wait: bool,
        urgent: bool,
        strict: bool,
        lang: str | None,
        poll: PollPolicy | None,
        retry: RetryPolicy | None,
    ) -> OperationFuture:
        checked = [
            _sansio.image_body(r, require_src=require_src, index=n) for n, r in enumerate(images)
        ]
        ids = [image_id for image_id, _ in checked]
        _sansio.check_batch_ids(ids, max_items=self._client.max_batch_items)
        return await self.submit(
            method, wire.PATH_IMAGES, [body for _, body in checked], tuple(ids),
            wait=wait, urgent=urgent, strict=strict, lang=lang, poll=poll, retry=retry,
        )  # fmt: skip

    async def submit(
        self,
        method: WriteMethod,
        path: str,
        body: Any,
        image_ids: Sequence[str],
        *,
        wait: bool,
        urgent: bool,
        strict: bool,
        lang: str | None,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
        encoded: bytes | None = None,
    ) -> OperationFuture:
        """Send one checked write and return its future (the request path shared
        by every write method and by :meth:`ingest`).

        A 2xx answer without an operation id, or an ambiguous transport failure
        of a ``strict=True`` write, raises :class:`OutcomeUnknownError`.
        """
        client = self._client
        params = _sansio.write_params(
            wait=wait, urgent=urgent, strict=strict, lang=lang, allow_lang=method != "DELETE"
        )
        data = encoded if encoded is not None else (None if body is None else json_body(body))
        try:
            resp = await client.request(
                method,
                path,
                params=params,
                body=data,
                resend_safe=not strict,
                long_wait=wait,
                retry=retry,
            )
        except (OutcomeUnknownError, ConnectError):
            raise
        except TransportError as exc:
            raise OutcomeUnknownError(
                f"{exc.reason}; the write may or may not have been applied",
                method=method,
                path=path,
                image_ids=image_ids,
            ) from exc
        try:
            parsed = resp.json()
        except ResponseValidationError:
            raise OutcomeUnknownError(
                f"the server accepted the write (HTTP {resp.status}) but its body is not JSON",
                method=method,
                path=path,
                raw_body=resp.body,
                image_ids=image_ids,
            ) from None
        op_id = _sansio.extract_op_id(parsed)
        initial = None
        # A queued operation's first status says nothing the first poll will not:
        # skip structuring it (CPU and memory per pending op, BENCH W1/W3).
        queued = op_id is not None and not wait and _get(parsed, "is_finished") is False
        if isinstance(parsed, Mapping) and not queued:
            try:
                initial = structure_operation(parsed, body=resp.body)
            except ResponseValidationError:
                initial = None  # D1: a body holding only the op id is fine
        client.stats_counters.submitted += 1
        poller = client.poller
        raise_on_failure = client.raise_on_failure
        if initial is not None and initial.is_finished:
            # D2: wait=true (or an instant server) — resolved without polling.
            tracked = poller.resolved(
                initial.with_op_id(op_id),
                tuple(image_ids),
                poll or client.poll_policy,
            )
            return OperationFuture(
                tracked, image_ids, raise_on_failure=raise_on_failure, resent=resp.resent
            )
        if op_id is None:
            raise OutcomeUnknownError(
                f"the server accepted the write (HTTP {resp.status}) but named no operation id",
                method=method,
                path=path,
                raw_body=resp.body,
                image_ids=image_ids,
            )
        tracked = poller.track(
            op_id,
            initial=initial.with_op_id(op_id) if initial is not None else None,
            num_total=len(image_ids),
            image_ids=tuple(image_ids),
            policy=poll,
            retry=retry,
        )
        return OperationFuture(
            tracked, image_ids, raise_on_failure=raise_on_failure, resent=resp.resent
        )

    # -- reads -----------------------------------------------------------------

    async def get(
        self,
        image_id: str,
        *,
        fields: Iterable[str] | None = None,
        retry: RetryPolicy | None = None,
    ) -> Image:
        """One image (``GET /imgs/{id}``); ``fields`` projects it. Raises
        :class:`NotFoundError` for an unknown id."""
        _sansio.check_image_id(image_id, field="image_id")
        params = None
        if fields is not None:
            params = [
                (wire.Q_FIELDS, f) for f in _sansio._check_choices("fields", fields, _IMAGE_FIELDS)
            ]
        resp = await self._client.request(
            "GET", _sansio.image_path(image_id), params=params, resend_safe=True, retry=retry
        )
        return structure_image(resp.json(), body=resp.body)

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
    ) -> SearchPage:
        """One page of results (``GET /imgs``).

        ``q`` is the filter formula (e.g. ``"d>2020-01-01 && k=dog"``); options
        left ``None`` are not sent (server defaults: page 1, limit 50).
        """
        params = _sansio.search_params(
            q=q, page=page, limit=limit, sort_by=sort_by, sort_order=sort_order,
            fields=fields, facets=facets, count=count, lang=lang, image_fields=_IMAGE_FIELDS,
        )  # fmt: skip
        resp = await self._client.request(
            "GET", wire.PATH_IMAGES, params=params, resend_safe=True, retry=retry
        )
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
    ) -> AsyncIterator[Image]:
        """Every result across pages, fetched ``limit`` at a time, until a short
        page. Results that change between pages may be skipped or repeated (the
        API pages by offset)."""
        fields = list(fields) if fields is not None else None
        page = 1
        while max_pages is None or page <= max_pages:
            result = await self.search(
                q, page=page, limit=limit, sort_by=sort_by, sort_order=sort_order,
                fields=fields, lang=lang,
            )  # fmt: skip
            for image in result.results:
                yield image
            if len(result.results) < limit:
                return
            page += 1

    # -- bulk ------------------------------------------------------------------

    def ingest(
        self, records: Any, *, mode: IngestMode = "create", **options: Any
    ) -> AsyncIterator[Outcome]:
        """Stream ``records`` to the API in batches; yield one outcome per batch.

        See :func:`wesog_async.ingest` for the options.
        """
        from wesog_async._bulk import ingest

        return ingest(self._client, records, mode=mode, **options)

    async def ingest_all(
        self, records: Any, *, mode: IngestMode = "create", **options: Any
    ) -> IngestReport:
        """:meth:`ingest` collected into an :class:`IngestReport`."""
        from wesog_async._bulk import ingest_all

        return await ingest_all(self._client, records, mode=mode, **options)


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, Mapping) else None
