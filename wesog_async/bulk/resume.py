"""Resuming from a journal: where each input position stands, what to do with
it, and the check that the input is the one the journal recorded (pure).

A record of a ``done`` row is counted as the journal says (applied, failed,
invalid or unknown), except that ``retry_failed`` resends failed records and
re-validates invalid ones (an input conflict stays what it is), and that a
non-strict run resends records whose outcome is unknown, saying so
(:attr:`Outcome.resent`). A strict run never resends a record that may have
been applied: it reports it unknown again. A ``submitting`` row (the run
before stopped with the request possibly sent) is unknown in the same way.
``accepted`` rows are followed again by op id; ``unsent`` rows are dropped
and their records sent as fresh input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final, Literal

from wesog_async._errors import InvalidInputError
from wesog_async.bulk.batcher import KEPT
from wesog_async.bulk.journal.base import (
    ACCEPTED,
    SUBMITTING,
    UNSENT,
    JournalMismatchError,
    JournalRow,
)
from wesog_async.bulk.records import Encoder
from wesog_async.bulk.report import Tally
from wesog_async.bulk.types import RecordError

Action = Literal["counted", "pending", "retry", "resend"]
_STOPPED: Final = "outcome unknown: the run that sent this batch stopped before the server answered"


class _Check:
    """The running fingerprint of one span row's records, as this input has
    them, and the records read so far that wait for its verdict."""

    __slots__ = ("expected", "hasher", "held", "kept", "left", "row")

    def __init__(self, row: JournalRow) -> None:
        assert row.fingerprint is not None
        self.row = row
        self.kept = row.fingerprint.startswith(KEPT)  # failed records left out
        self.expected = row.fingerprint.partition(":")[2]
        self.hasher = hashlib.blake2b(b"[", digest_size=16)
        self.left = sum(1 for p in row.valid_positions() if not self.skips(p))
        self.held: list[tuple[int, Any, list[JournalRow]]] = []

    def skips(self, pos: int) -> bool:
        """Whether the fingerprint leaves ``pos`` out (invalid, or failed in a done row)."""
        row = self.row
        return row.invalid_at(pos) is not None or (self.kept and row.failed_at(pos) is not None)


Held = list[tuple[int, Any, list[JournalRow]]]


class Resume:
    """The journal's rows, looked up by input position as the input is read.

    The records of a span row are held back until the whole span has been
    read and its fingerprint matched (:meth:`take`), so that nothing of an
    edited input is counted from the journal.
    """

    def __init__(
        self,
        path: str,
        rows: Sequence[JournalRow],
        encoder: Encoder,
        *,
        strict: bool,
        retry_failed: bool,
    ) -> None:
        self.path = path
        self.encoder = encoder
        self.strict = strict
        self.retry_failed = retry_failed
        self.next_row_id = max((r.row_id for r in rows), default=0) + 1
        self.discarded = [r.row_id for r in rows if r.state == UNSENT]
        live = [r for r in rows if r.state != UNSENT]
        #: Operations an earlier run left pending: followed again by op id.
        self.to_follow = [r for r in live if r.state == ACCEPTED and r.op_id is not None]
        self.spans = sorted((r for r in live if r.positions is None), key=lambda r: r.start)
        self.index = 0
        self.sparse: dict[int, list[JournalRow]] = {}
        for row in live:  # in write order
            if row.positions is not None:
                for pos in row.positions:
                    self.sparse.setdefault(pos, []).append(row)
        self.check: _Check | None = None
        self.last_position = max((max(r.span(), default=-1) for r in live), default=-1)
        self._ids: dict[int, dict[int, str]] = {}

    def covering(self, pos: int) -> list[JournalRow]:
        """The rows that hold ``pos``, oldest first (the last one decides)."""
        spans, index = self.spans, self.index
        while index < len(spans) and spans[index].stop <= pos:
            index += 1
        self.index = index
        rows = [spans[index]] if index < len(spans) and spans[index].start <= pos else []
        if self.sparse:
            rows.extend(self.sparse.get(pos, ()))
        return rows

    def take(self, pos: int, rec: Any) -> Held | None:
        """``None`` when the journal does not hold ``pos`` (a fresh record);
        else the journaled records now verified, ready for :meth:`replay`
        (none while the span is still being read). Raises
        :class:`JournalMismatchError` when the span's records differ."""
        rows = self.covering(pos)
        if not rows:
            return None
        span = rows[0] if rows[0].positions is None else None
        if span is None or span.fingerprint is None:
            return [(pos, rec, rows)]
        check = self.check
        if check is not None and check.row is not span:
            # Spans never overlap: an unfinished one means rows out of order.
            raise self._mismatch(check.row, "its span was not read to the end")
        if check is None:
            check = self.check = _Check(span)
        check.held.append((pos, rec, rows))
        if not check.skips(pos):
            try:
                _, part = self.encoder.encode(rec, pos)
            except InvalidInputError as exc:
                raise self._mismatch(span, f"record {pos} is invalid now ({exc})") from None
            check.hasher.update(part)
            check.hasher.update(b",")
            check.left -= 1
        if pos + 1 < span.stop:
            return []
        self.check = None
        if check.left or check.hasher.hexdigest() != check.expected:
            self.check = check  # its records stay held: reported not sent
            raise self._mismatch(span, "")
        return check.held

    def holds(self, pos: int) -> bool:
        """Whether the record at ``pos`` is held for a span check (see :meth:`held`)."""
        check = self.check
        return check is not None and any(p == pos for p, _, _ in check.held)

    def held(self) -> list[tuple[int, Any]]:
        """The records read but not yet verified (after a mismatch or a stop)."""
        check, self.check = self.check, None
        return [] if check is None else [(pos, rec) for pos, rec, _ in check.held]

    def replay(
        self, rows: list[JournalRow], pos: int, rec: Any, tally: Tally
    ) -> tuple[Action, tuple[str, RecordError] | None]:
        """What to do with the verified record at ``pos`` that ``rows`` hold:
        counted here (into ``tally``), pending (its operation is followed), or
        retried / resent (with what it was before)."""
        row = rows[-1]
        if row.state == ACCEPTED:
            return "pending", None
        if row.state == SUBMITTING:
            image_id = self._id_at(row, pos)
            return self._unknown(pos, RecordError(pos, image_id, _STOPPED, record=rec), tally)
        invalid = row.invalid_at(pos)
        if invalid is not None:
            error = RecordError(
                pos, invalid[1], invalid[3], invalid[2], record=rec, conflict_with=invalid[4]
            )
            if self.retry_failed and invalid[4] is None:
                return "retry", None  # validated again: still invalid, or sent now
            tally.resumed_record("invalid", error)
            return "counted", None
        failed = row.failed_at(pos)
        if failed is not None:
            error = RecordError(pos, failed[1], failed[2], op_id=row.op_id, record=rec)
            if self.retry_failed:
                return "retry", ("failed", error)
            tally.resumed_record("failed", error)
            return "counted", None
        unknown = row.unknown_at(pos)
        if unknown is not None:
            error = RecordError(pos, unknown[1], unknown[2], op_id=unknown[3], record=rec)
            return self._unknown(pos, error, tally)
        tally.resumed_record("applied")
        return "counted", None

    def _unknown(
        self, pos: int, error: RecordError, tally: Tally
    ) -> tuple[Action, tuple[str, RecordError] | None]:
        if self.strict:
            # A strict write must not be sent twice: it stays unknown.
            tally.resumed_record("unknown", error)
            return "counted", None
        return "resend", ("unknown", error)

    def _mismatch(self, row: JournalRow, why: str) -> JournalMismatchError:
        span = row.span()
        where = f"positions {span[0]} to {span[-1]}" if span else "an empty span"
        detail = f"the records at {where} differ from the ones the journal recorded"
        return JournalMismatchError(
            self.path, "input", row.fingerprint or "", "", f"{detail}{'; ' + why if why else ''}"
        )

    def _id_at(self, row: JournalRow, pos: int) -> str | None:
        ids = self._ids.get(row.row_id)
        if ids is None:
            ids = self._ids[row.row_id] = dict(
                zip(row.valid_positions(), row.image_ids or (), strict=False)
            )
        return ids.get(pos)

    def check_end(self, read: int) -> None:
        """After the input ended at ``read`` records: the journal holds no more."""
        if self.last_position >= read:
            raise JournalMismatchError(
                self.path, "input", str(self.last_position + 1), str(read),
                f"the input has {read} records, the journal holds records up to "
                f"position {self.last_position}",
            )  # fmt: skip


__all__ = ["Action", "Held", "Resume"]
