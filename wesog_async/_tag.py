"""Wesog Tag: ``POST /tag/image`` (multipart)."""

from __future__ import annotations

import asyncio
import os
from typing import BinaryIO

import aiohttp

from wesog_async import _wire as wire
from wesog_async._convert import structure_tag_result
from wesog_async._models import TagResult
from wesog_async._transport import Transport


class TagAPI:
    """``client.tag``: AI tagging of an image file."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def image(
        self,
        image: bytes | BinaryIO | os.PathLike[str] | str,
        *,
        filename: str | None = None,
        lang: str | None = None,
        mode: str | None = None,
        date: str | None = None,
        event: str | None = None,
        city: str | None = None,
        country: str | None = None,
        caption: bool = False,
        keywords: bool = False,
        ocr: bool = False,
        colors: bool = False,
        response_timeout: float | None = None,
    ) -> TagResult:
        """Tag one image: bytes, an open binary file, or a path.

        The context fields (``date``, ``event``, ``city``, ``country``) improve
        the results; ``caption``/``keywords``/``ocr``/``colors`` choose what to
        generate. ``response_timeout`` overrides the client's ``timeout=``
        for this call (tagging a large image can take a while).
        """
        if mode is not None and mode not in wire.TAG_MODES:
            raise ValueError(f"mode must be one of {sorted(wire.TAG_MODES)}, got {mode!r}")
        if isinstance(image, str | os.PathLike):
            path = os.fspath(image)
            # File reads go to a thread: an image can be large, the loop is shared.
            content = await asyncio.to_thread(_read_file, path)
            filename = filename or os.path.basename(path)
        elif isinstance(image, bytes | bytearray):
            content = bytes(image)
        else:
            content = await asyncio.to_thread(image.read)
        if not content:
            raise ValueError("image is empty")

        def form() -> aiohttp.FormData:
            # A FormData is consumed by one request: build one per attempt.
            data = aiohttp.FormData()
            for name, value in (
                ("lang", lang), ("mode", mode), ("date", date), ("event", event),
                ("city", city), ("country", country),
            ):  # fmt: skip
                if value is not None:
                    data.add_field(name, value)
            for name, flag in (
                ("caption", caption), ("keywords", keywords), ("ocr", ocr), ("colors", colors),
            ):  # fmt: skip
                data.add_field(name, "true" if flag else "false")
            data.add_field(
                "image", content, filename=filename or "image",
                content_type="application/octet-stream",
            )  # fmt: skip
            return data

        # Tagging changes nothing server-side: it is retried like a read.
        resp = await self._transport.request(
            "POST", wire.PATH_TAG, kind="read", form=form, response_timeout=response_timeout
        )
        return structure_tag_result(resp.json(), body=resp.body)


def _read_file(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()
