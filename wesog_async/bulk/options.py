"""The options of one ingestion, checked once: :class:`IngestOptions`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Final, TypedDict

import attrs

from wesog_async import _sansio
from wesog_async._retry import PollPolicy
from wesog_async._submit import WriteMethod
from wesog_async.bulk.journal.base import JournalBackend
from wesog_async.bulk.types import IngestMode, Progress

METHODS: Final[dict[str, WriteMethod]] = {
    "create": "POST",
    "replace": "PUT",
    "modify": "PATCH",
    "delete": "DELETE",
}

JournalSpec = str | os.PathLike[str] | JournalBackend


def _mode(_inst: Any, _attr: Any, value: Any) -> None:
    if value not in METHODS:
        raise ValueError(f"mode must be one of {sorted(METHODS)}, got {value!r}")


def _at_least(minimum: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not int or value < minimum:
            raise ValueError(f"{attr.name} must be an int >= {minimum}, got {value!r}")

    return check


def _batch_size(_inst: Any, _attr: Any, value: Any) -> None:
    if value is not None and (type(value) is not int or value < 1):
        raise ValueError(f"batch_size must be an int from 1 up, got {value!r}")


def _lang(inst: IngestOptions, _attr: Any, value: str | None) -> None:
    if value is None:
        return
    if inst.mode == "delete":
        raise ValueError("lang: delete does not take lang")
    _sansio.write_params(wait=False, urgent=False, strict=False, lang=value)  # checks it


@attrs.frozen(kw_only=True)
class IngestOptions:
    """How :func:`wesog_async.ingest` sends records (checked when built).

    ``mode`` picks the write: create (POST), replace (PUT), modify (PATCH) or
    delete (DELETE). Batches hold at most ``batch_size`` records (default: the
    client's) and ``max_batch_bytes`` of body. At most ``max_in_flight`` write
    requests are on the wire and ``max_pending_ops`` operations unfinished.
    ``urgent``, ``strict`` and ``lang`` are the write options, ``poll`` the
    polling policy. ``journal`` (a path or a journal backend such as
    :class:`wesog_async.Journal`) makes the run resumable: run again with the
    same input and journal to skip what is done (``retry_failed=True`` also
    resends failed records, and invalid ones that are now valid).
    ``on_progress`` receives a :class:`Progress` at most every 100 ms.
    """

    mode: IngestMode = attrs.field(default="create", validator=_mode)
    batch_size: int | None = attrs.field(default=None, validator=_batch_size)
    max_batch_bytes: int = attrs.field(default=4_000_000, validator=_at_least(64))
    max_in_flight: int = attrs.field(default=4, validator=_at_least(1))
    max_pending_ops: int = attrs.field(default=16, validator=_at_least(1))
    urgent: bool = False
    strict: bool = False
    lang: str | None = attrs.field(default=None, validator=_lang)
    journal: JournalSpec | None = None
    retry_failed: bool = False
    poll: PollPolicy | None = None
    on_progress: Callable[[Progress], None] | None = attrs.field(default=None, eq=False)

    @property
    def method(self) -> WriteMethod:
        """The HTTP method of ``mode``."""
        return METHODS[self.mode]

    def batch_size_for(self, default: int, maximum: int) -> int:
        """``batch_size`` (or ``default``), checked against the client's ``maximum``."""
        size = default if self.batch_size is None else self.batch_size
        if not 1 <= size <= maximum:
            raise ValueError(f"batch_size must be an int from 1 to {maximum}, got {size!r}")
        return size


class IngestKeywords(TypedDict, total=False):
    """The fields of :class:`IngestOptions`, as keyword arguments."""

    mode: IngestMode
    batch_size: int | None
    max_batch_bytes: int
    max_in_flight: int
    max_pending_ops: int
    urgent: bool
    strict: bool
    lang: str | None
    journal: JournalSpec | None
    retry_failed: bool
    poll: PollPolicy | None
    on_progress: Callable[[Progress], None] | None


def build_options(options: IngestOptions | None, keywords: IngestKeywords) -> IngestOptions:
    """``options`` (or the defaults) with ``keywords`` on top, checked."""
    if options is None:
        return IngestOptions(**keywords)
    return attrs.evolve(options, **keywords) if keywords else options


__all__ = ["METHODS", "IngestKeywords", "IngestOptions", "JournalSpec", "build_options"]
