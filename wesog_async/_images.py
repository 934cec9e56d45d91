"""Image endpoints: create, replace, modify, delete (1 and N), get; search mixed in (_search)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Unpack

import attrs

from wesog_async import _sansio, _validate
from wesog_async import _wire as wire
from wesog_async._convert import structure_image
from wesog_async._errors import ResponseValidationError
from wesog_async._future import OperationFuture
from wesog_async._models import IMAGE_FIELDS, Image, ImageInput
from wesog_async._retry import PollPolicy, RetryPolicy
from wesog_async._search import SearchEndpoints
from wesog_async._submit import Submitter, WriteMethod
from wesog_async._transport import Transport
from wesog_async.bulk import IngestKeywords, IngestOptions, IngestReport, IngestStream
from wesog_async.bulk import ingest as _ingest
from wesog_async.bulk import ingest_all as _ingest_all

ImageRecord = ImageInput | Mapping[str, Any]
_IMAGE_FIELDS = frozenset(IMAGE_FIELDS)


@attrs.frozen
class _Target:
    submitter: Submitter
    batch_size: int
    max_batch_items: int


class ImagesAPI(SearchEndpoints):
    """``client.images``: every image endpoint.

    Write methods return an :class:`OperationFuture` as soon as the server
    accepted the write; ``await`` it for the final :class:`Operation`. They
    take ``wait``, ``urgent``, ``strict`` (and ``lang``, except delete)
    keyword-only; ``wait`` and ``strict`` are always sent.
    """

    def __init__(
        self,
        transport: Transport,
        submitter: Submitter,
        *,
        batch_size: int,
        max_batch_items: int,
    ) -> None:
        self._transport = transport
        self._submitter = submitter
        self._max_batch_items = max_batch_items
        # What bulk ingestion sends through (bulk.IngestTarget): no client needed.
        self._target = _Target(submitter, batch_size, max_batch_items)

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
        response_timeout: float | None = None,
    ) -> OperationFuture:
        """Create one image (``POST /imgs/{id}``); ``src`` is required.

        With ``strict=False`` (the default) an existing id is overwritten
        (upsert); with ``strict=True`` it is an item error.
        """
        image_id, body = _validate.image_body(image, require_src=True, keep_id=False)
        return await self._submitter.submit(
            "POST", _sansio.image_path(image_id), body, (image_id,),
            wait=wait, urgent=urgent, strict=strict, lang=lang, poll=poll, retry=retry,
            response_timeout=response_timeout,
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
        response_timeout: float | None = None,
    ) -> OperationFuture:
        """Replace one image (``PUT /imgs/{id}``): fields not sent are cleared."""
        image_id, body = _validate.image_body(image, require_src=True, keep_id=False)
        return await self._submitter.submit(
            "PUT", _sansio.image_path(image_id), body, (image_id,),
            wait=wait, urgent=urgent, strict=strict, lang=lang, poll=poll, retry=retry,
            response_timeout=response_timeout,
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
        response_timeout: float | None = None,
    ) -> OperationFuture:
        """Modify one image (``PATCH /imgs/{id}``): only the fields sent change."""
        image_id, body = _validate.image_body(image, require_src=False, keep_id=False)
        return await self._submitter.submit(
            "PATCH", _sansio.image_path(image_id), body, (image_id,),
            wait=wait, urgent=urgent, strict=strict, lang=lang, poll=poll, retry=retry,
            response_timeout=response_timeout,
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
        response_timeout: float | None = None,
    ) -> OperationFuture:
        """Delete one image (``DELETE /imgs/{id}``).

        With ``strict=False`` a missing id is skipped and counted as good.
        """
        _validate.check_image_id(image_id, field="image_id")
        return await self._submitter.submit(
            "DELETE", _sansio.image_path(image_id), None, (image_id,),
            wait=wait, urgent=urgent, strict=strict, lang=None, poll=poll, retry=retry,
            response_timeout=response_timeout,
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
        response_timeout: float | None = None,
    ) -> OperationFuture:
        """Create N images in one operation (``POST /imgs``)."""
        return await self._write_many(
            "POST", images, True, wait, urgent, strict, lang, poll, retry, response_timeout
        )

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
        response_timeout: float | None = None,
    ) -> OperationFuture:
        """Replace N images in one operation (``PUT /imgs``)."""
        return await self._write_many(
            "PUT", images, True, wait, urgent, strict, lang, poll, retry, response_timeout
        )

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
        response_timeout: float | None = None,
    ) -> OperationFuture:
        """Modify N images in one operation (``PATCH /imgs``)."""
        return await self._write_many(
            "PATCH", images, False, wait, urgent, strict, lang, poll, retry, response_timeout
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
        response_timeout: float | None = None,
    ) -> OperationFuture:
        """Delete N images in one operation (``DELETE /imgs``, body: array of ids)."""
        ids = [_validate.check_image_id(i, index=n) for n, i in enumerate(image_ids)]
        _validate.check_batch_ids(ids, max_items=self._max_batch_items)
        return await self._submitter.submit(
            "DELETE", wire.PATH_IMAGES, ids, tuple(ids),
            wait=wait, urgent=urgent, strict=strict, lang=None, poll=poll, retry=retry,
            response_timeout=response_timeout,
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
        response_timeout: float | None,
    ) -> OperationFuture:
        checked = [
            _validate.image_body(r, require_src=require_src, index=n) for n, r in enumerate(images)
        ]
        ids = [image_id for image_id, _ in checked]
        _validate.check_batch_ids(ids, max_items=self._max_batch_items)
        return await self._submitter.submit(
            method, wire.PATH_IMAGES, [body for _, body in checked], tuple(ids),
            wait=wait, urgent=urgent, strict=strict, lang=lang, poll=poll, retry=retry,
            response_timeout=response_timeout,
        )  # fmt: skip

    # -- reads -----------------------------------------------------------------

    async def get(
        self,
        image_id: str,
        *,
        fields: Iterable[str] | None = None,
        retry: RetryPolicy | None = None,
        response_timeout: float | None = None,
    ) -> Image:
        """One image (``GET /imgs/{id}``); ``fields`` projects it. Raises
        :class:`NotFoundError` for an unknown id."""
        _validate.check_image_id(image_id, field="image_id")
        params = None
        if fields is not None:
            params = [
                (wire.Q_FIELDS, f) for f in _sansio._check_choices("fields", fields, _IMAGE_FIELDS)
            ]
        resp = await self._transport.request(
            "GET", _sansio.image_path(image_id), kind="read", params=params, retry=retry,
            response_timeout=response_timeout,
        )  # fmt: skip
        image = structure_image(resp.json(), body=resp.body)
        if image.image_id is not None and image.image_id != image_id:
            # Cross-check the server's claim: an answer about another image is
            # not an answer about this one.
            raise ResponseValidationError(
                f"asked for image {image_id!r}, the server answered about {image.image_id!r}",
                body=resp.body,
            )
        return image

    # -- bulk ------------------------------------------------------------------

    def ingest(
        self,
        records: Any,
        options: IngestOptions | None = None,
        **keywords: Unpack[IngestKeywords],
    ) -> IngestStream:
        """Stream ``records`` to the API in batches; yield one outcome per batch.

        See :func:`wesog_async.ingest` and :class:`IngestOptions` for the options.
        """
        return _ingest(self._target, records, options, **keywords)

    async def ingest_all(
        self,
        records: Any,
        options: IngestOptions | None = None,
        **keywords: Unpack[IngestKeywords],
    ) -> IngestReport:
        """:meth:`ingest` collected into an :class:`IngestReport`."""
        return await _ingest_all(self._target, records, options, **keywords)


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, Mapping) else None
