"""Batches: records on their way to one request, and the batcher that cuts the
input into them by count and bytes (pure: no event loop, no I/O).

In the shape of elasticsearch-py's chunker: :meth:`Batcher.feed` takes one
record and returns the batch it closed, if any; :meth:`Batcher.flush` closes
the open batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Sequence
from typing import Any, Final

from wesog_async import _jsonlib, _validate
from wesog_async import _wire as wire
from wesog_async._errors import InvalidInputError
from wesog_async.bulk.journal.base import JournalRow
from wesog_async.bulk.records import Encoder
from wesog_async.bulk.types import RecordError

_COMMA: Final = ord(",")
_CLOSE: Final = ord("]")
_dumps: Final = _jsonlib.dumps
#: Ids the per-record path refuses by value (the piece check leaves them to it).
_RESERVED: Final = _validate.RESERVED_IDS | {""}


#: Fingerprint scopes: every record sent, or those a done row keeps (not failed).
SENT: Final = "sent:"
KEPT: Final = "kept:"


def fingerprint(encoded: bytes | bytearray) -> str:
    """The fingerprint of encoded records (``[`` then each followed by ``,``)."""
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


class Batch:
    """Records on their way to one request.

    ``image_ids`` lists the image ids in request order: ``open_ids``, a list,
    while the batcher fills the batch, with ``seen``, the same ids as a set
    (the duplicate check); a tuple once :meth:`seal` closed it, and ``seen``
    emptied (a tuple of strings drops out of the cyclic GC's work, a list or a
    set of in-flight batches would be traversed by every collection). The ids'
    input positions are kept as runs of consecutive positions (``ids`` gives
    the id-to-position map, built when asked for: a report, a split, a journal
    row, never the hot path). A list and a set take a piece's ids for about
    half of what building and merging a map did.

    The encoded records are appended to one buffer, ``encoded`` (``[`` then
    each record followed by ``,``), ``ends`` holding where each ends; ``parts``
    gives them back one by one. A piece encoded at once
    (:meth:`Batcher.feed_piece`) leaves ``offsets`` unset: ``ends`` is then
    worked out from the buffer when first asked for (a 413 split, a failed
    record's report, a journal fingerprint without the failed records), never
    on the hot path. One buffer rather than a list of ``orjson.dumps``
    results: each of those pins about 4 KB of memory while it lives (orjson's
    initial output buffer), so batches in flight and pending held ~4 KB per
    record (a 71 MiB peak RSS growth at batch 1000 / 16 in flight, against 5
    MiB with the buffer).

    ``prior`` holds, for a batch that resends records of an earlier run, what
    that run reported for them, by position (``"unknown"`` or ``"failed"``
    and the :class:`RecordError`): what they still are if this send does not
    settle them.
    """

    __slots__ = (
        "encoded",
        "image_ids",
        "invalid",
        "nbytes",
        "next_pos",
        "number",
        "offsets",
        "op_id",
        "open_ids",
        "prior",
        "resent",
        "resumed",
        "row_id",
        "runs",
        "seen",
        "settled",
        "sparse",
        "start",
        "stop",
        "t0",
    )

    def __init__(self, start: int, *, sparse: bool = False) -> None:
        self.start = start
        self.stop = start
        self.sparse = sparse
        self.open_ids: list[str] = []
        self.image_ids: Sequence[str] = self.open_ids
        self.seen: set[str] = set()
        #: ``(index into image_ids, input position)`` where each run of
        #: consecutive positions starts; ``next_pos`` continues the last run.
        self.runs: list[tuple[int, int]] = []
        self.next_pos = -1
        self.encoded = bytearray(b"[")
        #: Where each record ends in ``encoded`` (``None``: not worked out yet).
        self.offsets: list[int] | None = []
        self.nbytes = 2
        self.invalid: list[RecordError] = []
        self.number = 0
        self.row_id: int | None = None
        self.op_id: int | None = None
        self.t0 = 0.0
        self.resumed = False
        self.resent = False
        self.settled = False
        self.prior: dict[int, tuple[str, RecordError]] = {}

    def positions(self) -> range:
        return range(self.start, self.stop)

    def push(self, image_id: str, pos: int) -> None:
        """Add one image id at input position ``pos`` to an open batch (not
        checked: see ``seen``)."""
        self.extend((image_id,), pos)
        self.seen.add(image_id)

    def extend(self, image_ids: Sequence[str], pos: int) -> None:
        """Add ids at consecutive input positions from ``pos`` on to an open
        batch; ``seen`` is the caller's (:meth:`Batcher.feed_piece` updates it
        first: its size is the duplicate check)."""
        if pos != self.next_pos:
            self.runs.append((len(self.open_ids), pos))
        self.open_ids += image_ids
        self.next_pos = pos + len(image_ids)

    def id_positions(self) -> list[int]:
        """The input position of each id of ``image_ids``, in the same order."""
        out: list[int] = []
        runs, n = self.runs, len(self.image_ids)
        for k, (index, pos) in enumerate(runs):
            end = runs[k + 1][0] if k + 1 < len(runs) else n
            out.extend(range(pos, pos + end - index))
        return out

    def held(self) -> set[int]:
        """The input positions this batch holds: its ids' and its invalid records'."""
        return {*self.id_positions(), *(e.position for e in self.invalid)}

    @property
    def ids(self) -> dict[str, int]:
        """Each image id and its input position, in request order."""
        return dict(zip(self.image_ids, self.id_positions(), strict=True))

    def seal(self) -> Batch:
        """Close the batch to new ids (the batcher does, as it hands it out)."""
        self.image_ids, self.open_ids, self.seen = tuple(self.open_ids), [], set()
        return self

    def set_ids(self, image_ids: Sequence[str], positions: Sequence[int]) -> None:
        """Replace the ids of a closed batch (a split half, a journaled batch
        followed again); an id given twice is kept once, at its first position."""
        self.open_ids, self.seen, self.runs, self.next_pos = [], set(), [], -1
        for image_id, pos in zip(image_ids, positions, strict=True):
            if image_id not in self.seen:
                self.push(image_id, pos)
        self.seal()

    def has_records(self) -> bool:
        """Whether any encoded record is here (a followed batch has none)."""
        return len(self.encoded) > 1

    @property
    def ends(self) -> list[int]:
        """Where each encoded record ends in ``encoded`` (after its ``,``)."""
        offsets = self.offsets
        if offsets is None:
            offsets = self.offsets = _offsets(self.encoded)
        return offsets

    def append(self, part: bytes) -> None:
        """Add one encoded record (the batcher's hot loop inlines this)."""
        encoded = self.encoded
        encoded += part
        encoded.append(_COMMA)
        if self.offsets is not None:
            self.offsets.append(len(encoded))

    @property
    def parts(self) -> list[bytes]:
        """The encoded records, one ``bytes`` each."""
        encoded, starts = self.encoded, [1, *self.ends]
        return [bytes(encoded[a : b - 1]) for a, b in zip(starts, self.ends, strict=False)]

    @parts.setter
    def parts(self, parts: list[bytes]) -> None:
        self.encoded = bytearray(b"[")
        self.offsets = []
        for part in parts:
            self.append(part)
        self.nbytes = 2 + sum(len(p) + 1 for p in parts)

    def body(self) -> bytes:
        """The request body: ``[`` the encoded records joined by ``,`` ``]``."""
        encoded = self.encoded
        if len(encoded) == 1:
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

    def fingerprint(self, failed: Container[int] = ()) -> str:
        """A hash of the encoded records in order, without those at the input
        positions ``failed`` (the journal's input check: a failed record may be
        edited before it is retried)."""
        if not failed:
            return SENT + fingerprint(self.encoded)
        hasher = hashlib.blake2b(b"[", digest_size=16)
        for part, pos in zip(self.parts, self.id_positions(), strict=True):
            if pos not in failed:
                hasher.update(part)
                hasher.update(b",")
        return KEPT + hasher.hexdigest()

    def split(self) -> tuple[Batch, Batch]:
        """Two halves by record count (a 413); each keeps its invalid records."""
        items = list(zip(self.image_ids, self.id_positions(), strict=True))
        mid = len(items) // 2
        cut = items[mid][1]
        halves = (Batch(self.start, sparse=self.sparse), Batch(cut, sparse=self.sparse))
        halves[0].stop, halves[1].stop = cut, self.stop
        all_parts = self.parts
        for half, chunk, parts in ((halves[0], items[:mid], all_parts[:mid]),
                                   (halves[1], items[mid:], all_parts[mid:])):  # fmt: skip
            half.set_ids([i for i, _ in chunk], [p for _, p in chunk])
            half.parts = parts
            first = half is halves[0]
            half.invalid = [e for e in self.invalid if (e.position < cut) == first]
            half.prior = {p: e for p, e in self.prior.items() if (p < cut) == first}
            half.t0, half.resent = self.t0, self.resent
        halves[0].number = self.number
        return halves

    def journal_row(self, state: str) -> JournalRow:
        assert self.row_id is not None
        positions = None
        if self.sparse:
            positions = sorted([*self.id_positions(), *(e.position for e in self.invalid)])
        return JournalRow(
            row_id=self.row_id,
            start=self.start,
            stop=self.stop,
            state=state,
            positions=positions,
            image_ids=list(self.image_ids),
            fingerprint=self.fingerprint(),
            invalid=[
                (e.position, e.image_id, e.field, e.message, e.conflict_with) for e in self.invalid
            ],
            resent=self.resent,
        )


def _offsets(encoded: bytearray) -> list[int]:
    """The record ends of a buffer encoded a piece at a time: decoded once and
    each record measured by encoding it again (our own JSON-native output, so
    the lengths are exact; checked)."""
    if len(encoded) == 1:
        return []
    records = _jsonlib.loads(bytes(encoded[:-1]) + b"]")
    ends, at = [], 1
    for rec in records:
        at += len(_dumps(rec)) + 1
        ends.append(at)
    if at != len(encoded):  # pragma: no cover - a re-encoding that is not byte-stable
        raise RuntimeError("wesog_async: a batch's records did not re-encode to their own bytes")
    return ends


class Batcher:
    """Cuts records into batches of at most ``batch_size`` records and
    ``max_bytes`` of body (a single record over ``max_bytes`` goes alone).

    Invalid records are kept in the batch that spans them (never sent); a
    second record with an id already in the open batch is an input conflict.
    A *sparse* batcher takes records from anywhere in the input (resends): its
    batches list their positions.
    """

    __slots__ = (
        "batch_size",
        "checks",
        "encoder",
        "max_bytes",
        "open",
        "sparse",
        "stranded",
        "unfed",
    )

    def __init__(
        self, encoder: Encoder, *, batch_size: int, max_bytes: int, sparse: bool = False
    ) -> None:
        self.encoder = encoder
        self.checks = encoder.checks
        self.batch_size = batch_size
        self.max_bytes = max_bytes
        self.sparse = sparse
        self.open: Batch | None = None
        #: What an unexpected error (a bug) in :meth:`feed_piece` left behind:
        #: the batches it had closed, and the records it had not put in a batch
        #: (position, record), for the caller to settle as not sent.
        self.stranded: list[Batch] = []
        self.unfed: list[tuple[int, Any]] = []

    def feed(self, pos: int, rec: Any) -> Batch | None:
        """Add the record at input position ``pos``; return the batch this closed."""
        batch = self.open
        if batch is None:
            batch = self.open = Batch(pos, sparse=self.sparse)
        checks = self.checks
        if type(rec) is dict and checks is not None:
            # The common case inlined (it runs once per record): a valid dict
            # that fits the batch. Anything else takes the general path.
            shape = tuple(rec)
            check = checks.by_shape.get(shape) or checks.compile(shape)
            if check(rec):
                image_id = rec[wire.BATCH_ID_KEY]
                image_ids = batch.open_ids
                if image_id not in batch.seen:
                    try:
                        part = _dumps(rec)
                    except (TypeError, ValueError):  # a lone surrogate: named by add()
                        return self.add(pos, rec)[0]
                    nbytes = batch.nbytes + len(part) + 1
                    if nbytes <= self.max_bytes or not image_ids:
                        if pos != batch.next_pos:  # Batch.push, inlined
                            batch.runs.append((len(image_ids), pos))
                        image_ids.append(image_id)
                        batch.seen.add(image_id)
                        batch.next_pos = pos + 1
                        encoded = batch.encoded  # Batch.append, inlined
                        encoded += part
                        encoded.append(_COMMA)
                        offsets = batch.offsets
                        if offsets is not None:
                            offsets.append(len(encoded))
                        batch.nbytes = nbytes
                        batch.stop = pos + 1
                        if len(image_ids) >= self.batch_size:
                            self.open = None
                            return batch.seal()
                        return None
        return self.add(pos, rec)[0]

    def room(self) -> int:
        """How many records the open batch still takes (a whole batch when none is open)."""
        batch = self.open
        return self.batch_size if batch is None else self.batch_size - len(batch.image_ids)

    def feed_piece(self, pos: int, recs: list[Any]) -> list[Batch]:
        """Add the records ``recs`` from input position ``pos`` on (at most
        :meth:`room` of them); return the batches this closed. Should it raise
        (a bug), what it had closed is in :attr:`stranded` and the records it
        had not put in a batch are in :attr:`unfed`.

        The common case is checked and encoded at once: dicts of one shape,
        all certainly valid, one ``orjson.dumps`` of the list within the byte
        limit, and no id twice or reserved (the piece's ids join the batch's
        set: one C loop, its size the duplicate check). Anything else goes
        record by record through :meth:`feed`, so that positions, messages and
        byte cuts are exactly those of the per-record path.
        """
        closed: list[Batch] = []
        try:
            return self._feed_piece(pos, recs, closed)
        except BaseException:
            self.strand(pos, recs, closed)
            raise

    def _feed_piece(self, pos: int, recs: list[Any], closed: list[Batch]) -> list[Batch]:
        checks, n = self.checks, len(recs)
        if checks is not None and n > 1 and type(recs[0]) is dict:
            shape = tuple(recs[0])
            check = checks.pieces.get(shape) or checks.compile_piece(shape)
            batch = self.open
            taken = 0 if batch is None else len(batch.image_ids)
            piece_ids = check(recs) if taken + n <= self.batch_size else None
            if piece_ids is not None:
                try:
                    body = _dumps(recs)
                except (TypeError, ValueError):  # e.g. a lone surrogate: named below
                    body = b""
                nbytes = (2 if batch is None else batch.nbytes) + len(body) - 1
                if body and nbytes <= self.max_bytes:
                    seen = set() if batch is None else batch.seen
                    seen.update(piece_ids)
                    # No id twice, none reserved ('', '.', '..'): else the
                    # per-record path below names the record.
                    if len(seen) == taken + n and seen.isdisjoint(_RESERVED):
                        if batch is None:
                            batch = self.open = Batch(pos, sparse=self.sparse)
                            batch.seen = seen
                        batch.extend(piece_ids, pos)
                        encoded = batch.encoded
                        encoded += memoryview(body)[1:-1]
                        encoded.append(_COMMA)
                        batch.offsets = None
                        batch.nbytes = nbytes
                        batch.stop = pos + n
                        if taken + n >= self.batch_size:
                            self.open = None
                            return [batch.seal()]
                        return []
                    if batch is not None:  # back to the batch's own ids
                        batch.seen = set(batch.open_ids)
        feed = self.feed
        for i, rec in enumerate(recs):
            done = feed(pos + i, rec)
            if done is not None:
                closed.append(done)
        return closed

    def strand(self, pos: int, recs: list[Any], closed: list[Batch]) -> None:
        """Keep what a failed :meth:`feed_piece` of ``recs`` (from ``pos`` on)
        left: the batches it closed and the records no batch holds."""
        self.stranded.extend(closed)
        # By the positions the batches hold, not by how far they reached: a
        # record pushed before the error is settled with its batch, once.
        held: set[int] = set()
        for batch in (*closed, self.open):
            if batch is not None:
                held |= batch.held()
        self.unfed.extend((p, rec) for p, rec in enumerate(recs, start=pos) if p not in held)

    def add(self, pos: int, rec: Any) -> tuple[Batch | None, Batch]:
        """The general path of :meth:`feed`: also returns the batch that holds the record."""
        batch = self.open
        if batch is None:
            batch = self.open = Batch(pos, sparse=self.sparse)
        try:
            image_id, part = self.encoder.encode(rec, pos)
        except InvalidInputError as exc:
            batch.invalid.append(RecordError(pos, exc.image_id, exc.reason, exc.field, record=rec))
            batch.stop = pos + 1
            return None, batch
        if image_id in batch.seen:
            first = batch.ids[image_id]
            message = f"input conflict: duplicate id in one batch (first at position {first})"
            batch.invalid.append(
                RecordError(pos, image_id, message, "id", record=rec, conflict_with=first)
            )
            batch.stop = pos + 1
            return None, batch
        closed = None
        size = len(part) + 1
        if batch.nbytes + size > self.max_bytes and batch.open_ids:
            closed = batch.seal()
            batch = self.open = Batch(pos, sparse=self.sparse)
        batch.push(image_id, pos)
        batch.append(part)
        batch.nbytes += size
        batch.stop = pos + 1
        if len(batch.open_ids) >= self.batch_size:
            self.open = None
            batch.seal()
            # Full. No byte cut came first: with batch_size 1 the batch before
            # closed on its first record, so it never held two.
            return batch, batch
        return closed, batch

    def flush(self) -> Batch | None:
        """Close the open batch (at the end of the input, or before a journaled span)."""
        batch, self.open = self.open, None
        return None if batch is None else batch.seal()


__all__ = ["KEPT", "SENT", "Batch", "Batcher", "fingerprint"]
