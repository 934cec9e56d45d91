"""The parts of the bulk pipeline: record validation and encoding, batches,
the AIMD gate, running totals and the journal router (no I/O here)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

from wesog_async import _jsonlib
from wesog_async import _wire as wire
from wesog_async._bulk_types import InvalidRecord, Outcome, RecordError
from wesog_async._errors import (
    AuthenticationError,
    ClientClosedError,
    ConnectError,
    RateLimitError,
    WesogError,
)
from wesog_async._journal import JournalRow
from wesog_async._models import BOOL_FIELDS, LIST_FIELDS, STRING_FIELDS, ImageInput

# AIMD: the in-flight limit grows back by one after this many good submits.
RECOVER_AFTER: Final = 8


# -- validation ----------------------------------------------------------------------

_STR, _SRC, _BOOL, _LIST, _ID = range(5)
_KINDS: Final[dict[str, int]] = {
    **dict.fromkeys(STRING_FIELDS, _STR),
    **dict.fromkeys(BOOL_FIELDS, _BOOL),
    **dict.fromkeys(LIST_FIELDS, _LIST),
    "src": _SRC,
    wire.BATCH_ID_KEY: _ID,
}
_CHECK_LINES: Final[dict[int, str]] = {
    _STR: "    if v is not None and type(v) is not str: return False",
    _BOOL: "    if v is not None and type(v) is not bool: return False",
    _ID: "    if type(v) is not str or not v or v.isspace() or v in ('.', '..'): return False",
    _LIST: (
        "    if v is not None:\n"
        "        if type(v) is not list: return False\n"
        "        for x in v:\n"
        "            if type(x) is not str: return False"
    ),
}
_MAX_SHAPES: Final = 256
ShapeCheck = Callable[[dict[str, Any]], bool]
_COMMA: Final = ord(",")
_CLOSE: Final = ord("]")


def _never(_rec: dict[str, Any]) -> bool:
    return False


def compile_check(keys: tuple[str, ...], require_src: bool) -> ShapeCheck:
    """A validator for dicts with exactly these keys, in this order.

    The hot loop of a million-record upload: straight-line type checks, a
    subset of :func:`_sansio.image_body`'s. False means "not certainly valid":
    the record then goes through ``image_body``, which names the error.
    Tuples in list fields are left to ``image_body`` too.
    """
    if wire.BATCH_ID_KEY not in keys or (require_src and "src" not in keys):
        return _never
    lines = ["def check(r):"]
    for key in keys:
        kind = _KINDS.get(key)
        if kind is None:
            return _never  # unknown or computed field
        lines.append(f"    v = r[{key!r}]")
        if kind == _SRC:
            src_ok = "type(v) is str and v"
            lines.append(
                f"    if not ({src_ok}): return False"
                if require_src
                else f"    if v is not None and not ({src_ok}): return False"
            )
        else:
            lines.append(_CHECK_LINES[kind])
    lines.append("    return True")
    namespace: dict[str, Any] = {}
    exec("\n".join(lines), namespace)  # keys are known field names, never user text
    check: ShapeCheck = namespace["check"]
    return check


class Checks:
    """Compiled validators by record shape (key order), bounded."""

    def __init__(self, require_src: bool) -> None:
        self.require_src = require_src
        self.by_shape: dict[tuple[str, ...], ShapeCheck] = {}

    def compile(self, shape: tuple[str, ...]) -> ShapeCheck:
        check = compile_check(shape, self.require_src)
        if len(self.by_shape) < _MAX_SHAPES:
            self.by_shape[shape] = check
        return check


def loose_id(rec: Any) -> str | None:
    """The id of a record without validating it (for messages and checks)."""
    if type(rec) is str:
        return rec
    if isinstance(rec, ImageInput):
        value: Any = rec.id
    elif isinstance(rec, Mapping):
        value = rec.get(wire.BATCH_ID_KEY)
    elif isinstance(rec, InvalidRecord):
        value = rec.image_id
    else:
        return None
    return value if type(value) is str else None


# -- internals ----------------------------------------------------------------------


class Batch:
    """Records on their way to one request.

    ``ids`` maps each image id to its input position, in request order (it
    doubles as the duplicate check). The encoded records are appended to one
    buffer, ``encoded`` (``[`` then each record followed by ``,``), ``ends``
    holding where each ends; ``parts`` gives them back one by one. One buffer
    rather than a list of ``orjson.dumps`` results: each of those pins about
    4 KB of memory while it lives (orjson's initial output buffer), so batches
    in flight and pending held ~4 KB per record (a 71 MiB peak RSS growth at
    batch 1000 / 16 in flight, against 5 MiB with the buffer).
    """

    __slots__ = (
        "encoded",
        "ends",
        "first_id",
        "ids",
        "invalid",
        "nbytes",
        "number",
        "op_id",
        "resumed",
        "row_id",
        "sparse",
        "start",
        "stop",
        "t0",
    )

    def __init__(self, start: int, *, sparse: bool = False) -> None:
        self.start = start
        self.stop = start
        self.sparse = sparse
        self.ids: dict[str, int] = {}
        self.encoded = bytearray(b"[")
        self.ends: list[int] = []
        self.nbytes = 2
        self.invalid: list[RecordError] = []
        self.number = 0
        self.row_id: int | None = None
        self.op_id: int | None = None
        self.first_id: str | None = None
        self.t0 = 0.0
        self.resumed = False

    def positions(self) -> range:
        return range(self.start, self.stop)

    def append(self, part: bytes) -> None:
        """Add one encoded record (the pipeline's hot loop inlines this)."""
        encoded = self.encoded
        encoded += part
        encoded.append(_COMMA)
        self.ends.append(len(encoded))

    @property
    def parts(self) -> list[bytes]:
        """The encoded records, one ``bytes`` each."""
        encoded, starts = self.encoded, [1, *self.ends]
        return [bytes(encoded[a : b - 1]) for a, b in zip(starts, self.ends, strict=False)]

    @parts.setter
    def parts(self, parts: list[bytes]) -> None:
        self.encoded = bytearray(b"[")
        self.ends = []
        for part in parts:
            self.append(part)

    def body(self) -> bytes:
        """The request body: ``[`` the encoded records joined by ``,`` ``]``."""
        encoded = self.encoded
        if not self.ends:
            return b"[]"
        encoded[-1] = _CLOSE  # the last record's comma, for the copy only
        try:
            return bytes(encoded)
        finally:
            encoded[-1] = _COMMA

    def record_at(self, offset: int) -> Any:
        """The decoded record sent at ``offset`` (for failed-record reports)."""
        ends = self.ends
        if offset >= len(ends):
            return None
        start = ends[offset - 1] if offset else 1
        try:
            return _jsonlib.loads(bytes(self.encoded[start : ends[offset] - 1]))
        except _jsonlib.JSON_DECODE_ERRORS:  # pragma: no cover - we encoded it
            return None

    def journal_row(self, state: str) -> JournalRow:
        assert self.row_id is not None
        positions = None
        if self.sparse:
            positions = sorted([*self.ids.values(), *(e.position for e in self.invalid)])
        return JournalRow(
            row_id=self.row_id,
            start=self.start,
            stop=self.stop,
            state=state,
            positions=positions,
            first_id=self.first_id,
            image_ids=list(self.ids),
            invalid=[(e.position, e.image_id, e.field, e.message) for e in self.invalid],
        )


class Gate:
    """A counting limit whose size can change (AIMD) and that can be overdrawn
    (a split batch becomes several operations under one reservation)."""

    def __init__(self, limit: int) -> None:
        self.max = limit
        self.limit = limit
        self.used = 0
        self._ok = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.used < self.limit and not self._waiters:
            self.used += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted, but the waiter is gone: hand it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    def release(self, n: int = 1) -> None:
        self.used -= n
        self._wake()

    def force(self, n: int) -> None:
        self.used += n

    def _wake(self) -> None:
        while self._waiters and self.used < self.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.used += 1
                fut.set_result(None)

    def throttled(self) -> None:
        self.limit = max(1, self.limit // 2)
        self._ok = 0

    def succeeded(self) -> None:
        if self.limit < self.max:
            self._ok += 1
            if self._ok >= RECOVER_AFTER:
                self._ok = 0
                self.limit += 1
                self._wake()


class Tally:
    """Running totals; the source of :class:`IngestReport` and :class:`Progress`."""

    def __init__(self) -> None:
        self.total = self.applied = self.failed = self.invalid = 0
        self.unknown = self.not_sent = self.resumed = self.sent = 0
        self.batches = 0
        self.op_ids: list[int] = []
        self.failed_items: list[RecordError] = []
        self.invalid_items: list[RecordError] = []
        self.unknown_items: list[RecordError] = []
        self.not_sent_items: list[RecordError] = []

    def add(self, o: Outcome) -> None:
        self.batches += 1
        if o.op_id is not None:
            self.op_ids.append(o.op_id)
        self.applied += len(o.applied_ids)
        self.failed += len(o.failed)
        self.invalid += len(o.invalid)
        self.unknown += len(o.unknown)
        self.not_sent += len(o.not_sent)
        self.total += o.num_records
        self.failed_items.extend(o.failed)
        self.invalid_items.extend(o.invalid)
        self.unknown_items.extend(o.unknown)
        self.not_sent_items.extend(o.not_sent)


def is_fatal(exc: BaseException, cap: float) -> bool:
    """Errors after which no further batch can succeed."""
    if isinstance(exc, AuthenticationError | ConnectError | ClientClosedError):
        return True
    return isinstance(exc, RateLimitError) and exc.retry_after is not None and exc.retry_after > cap


def describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, WesogError) else f"{type(exc).__name__}: {exc}"


class Router:
    """Where each input position stands according to the journal (resume)."""

    def __init__(self, rows: list[JournalRow]) -> None:
        # Whole-span rows never overlap; sparse (retry) rows override them for
        # the positions they list, the latest row winning.
        self.rows = sorted((r for r in rows if r.positions is None), key=lambda r: r.start)
        self.index = 0
        self.override: dict[int, JournalRow] = {}
        for row in rows:  # in write order
            if row.positions is not None:
                for pos in row.positions:
                    self.override[pos] = row

    def lookup(self, pos: int) -> JournalRow | None:
        if self.override:
            row = self.override.get(pos)
            if row is not None:
                return row
        rows, index = self.rows, self.index
        while index < len(rows) and rows[index].stop <= pos:
            index += 1
        self.index = index
        if index < len(rows) and rows[index].start <= pos:
            return rows[index]
        return None


__all__ = [
    "RECOVER_AFTER",
    "Batch",
    "Checks",
    "Gate",
    "Router",
    "Tally",
    "compile_check",
    "describe",
    "is_fatal",
    "loose_id",
]
