"""The SQLite journal of a bulk ingestion: what lets ``ingest`` resume.

One row per batch, stored as a range of input positions (plus the positions of
its invalid records and, once final, of its failed ones): a million records
make about ten thousand rows, not a million. A batch row goes through::

    submitting ──► accepted (op id) ──► done (failed positions, applied count)
         │                │
         └──► unsent      └──► unknown   (op vanished, outcome unknown)

``submitting`` is written before the request and ``accepted`` as soon as the
server names the operation, so after a crash or Ctrl-C the journal says which
batches the server holds. On the next run with the same input:

* ``done`` rows are skipped (their failed and invalid records are resent with
  ``retry_failed=True``, in new *sparse* rows that list their positions and
  override the old row for those positions);
* ``accepted`` rows are followed again by op id;
* ``submitting``, ``unsent`` and ``unknown`` rows are dropped, so their records
  are sent again like fresh input. That resend is safe for ``strict=False``
  writes (upserts, and updates/deletes that skip missing ids); a ``strict=True``
  resend of a batch that did reach the server reports "already exists" /
  "not found" item errors.

SQLite runs in one dedicated worker thread (WAL mode), so journal writes never
block the event loop; writes are queued in order and :meth:`Journal.flush`
waits for them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import attrs

T = TypeVar("T")

SCHEMA_VERSION: Final = 1

# Row states.
SUBMITTING: Final = "submitting"
ACCEPTED: Final = "accepted"
DONE: Final = "done"
UNKNOWN: Final = "unknown"
UNSENT: Final = "unsent"
# States whose records are sent again on the next run.
_RESEND_STATES: Final = (SUBMITTING, UNKNOWN, UNSENT)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    start INTEGER NOT NULL,
    stop INTEGER NOT NULL,
    positions TEXT,
    state TEXT NOT NULL,
    op_id INTEGER,
    first_id TEXT,
    image_ids TEXT,
    invalid TEXT,
    failed TEXT,
    n_applied INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_start ON batches (start);
"""

# (position, image id, field, message) of an invalid record.
InvalidEntry = tuple[int, str | None, str | None, str]
# (position, image id, message) of a failed record.
FailedEntry = tuple[int, str | None, str]


@attrs.define(slots=True, eq=False)
class JournalRow:
    """One batch as the journal stores it.

    ``start``/``stop`` is the span of input positions; ``positions`` lists
    them for a sparse (retry) batch and is ``None`` when the batch covers the
    whole span. ``image_ids`` are the ids sent, in request order, kept until
    the row is final (they are needed to follow the operation).
    """

    row_id: int
    start: int
    stop: int
    state: str
    op_id: int | None = None
    positions: list[int] | None = None
    first_id: str | None = None
    image_ids: list[str] | None = None
    invalid: list[InvalidEntry] = attrs.field(factory=list)
    failed: list[FailedEntry] = attrs.field(factory=list)
    n_applied: int = 0
    # Lookup tables built on first use by the resume logic.
    _failed_map: dict[int, FailedEntry] | None = None
    _invalid_map: dict[int, InvalidEntry] | None = None

    def failed_at(self, position: int) -> FailedEntry | None:
        """The failed entry at ``position``, if that record failed."""
        if self._failed_map is None:
            self._failed_map = {entry[0]: entry for entry in self.failed}
        return self._failed_map.get(position)

    def invalid_at(self, position: int) -> InvalidEntry | None:
        """The invalid entry at ``position``, if that record was invalid."""
        if self._invalid_map is None:
            self._invalid_map = {entry[0]: entry for entry in self.invalid}
        return self._invalid_map.get(position)

    def valid_positions(self) -> list[int]:
        """Input positions of the records sent, in request order."""
        bad = {entry[0] for entry in self.invalid}
        span = self.positions if self.positions is not None else range(self.start, self.stop)
        return [p for p in span if p not in bad]


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


class Journal:
    """A resumable record of one bulk ingestion, in an SQLite file.

    Pass it (or just its path) as ``journal=`` to :func:`wesog_async.ingest`.
    Use as ``async with Journal(path) as journal:``, or let ``ingest`` open and
    close it. One journal belongs to one input and one mode: reusing it with
    another mode raises ``ValueError``. Positions are counted from 0 in input
    order, so resume with the same input in the same order.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._next_id = 1
        self._last: concurrent.futures.Future[None] | None = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        state = "open" if self._executor is not None else "closed"
        return f"<Journal {self.path!r} {state}>"

    # -- lifecycle -------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        return self._executor is not None

    async def open(self) -> None:
        """Open (or create) the file in the journal's worker thread."""
        if self._executor is not None:
            raise RuntimeError(f"journal {self.path!r} is already open")
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="wesog-journal"
        )
        try:
            self._next_id = await self._call(self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        """Wait for queued writes, then close the file and stop the thread."""
        executor = self._executor
        if executor is None:
            return
        try:
            await self._call(self._close_sync)
        finally:
            self._executor = None
            # The worker is idle now: joining it takes no time.
            executor.shutdown(wait=True)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _open_sync(self) -> int:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed row survives a process crash (only
            # an OS crash can lose the last commits), without an fsync per write.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            found = conn.execute("SELECT value FROM meta WHERE key='version'").fetchone()
            if found is None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('version', ?)", (str(SCHEMA_VERSION),)
                )
            elif found[0] != str(SCHEMA_VERSION):
                raise ValueError(
                    f"journal {self.path!r} has format version {found[0]}, "
                    f"this wesog_async writes version {SCHEMA_VERSION}"
                )
            (max_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM batches").fetchone()
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return int(max_id) + 1

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the worker thread -----------------------------------------------------

    def _require(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            raise RuntimeError(f"journal {self.path!r} is not open")
        return self._executor

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self._require().submit(fn, *args))

    def _enqueue(self, fn: Callable[..., None], *args: Any) -> None:
        """Queue a write without waiting; writes run in order, errors surface
        on :attr:`error` and :meth:`flush`."""
        fut = self._require().submit(fn, *args)
        fut.add_done_callback(self._note_error)
        self._last = fut

    def _note_error(self, fut: concurrent.futures.Future[None]) -> None:
        exc = fut.exception()
        if exc is not None and self._error is None:
            self._error = exc

    @property
    def error(self) -> BaseException | None:
        """The first failed write, if any (the ingestion stops on it)."""
        return self._error

    async def flush(self) -> None:
        """Wait until every queued write is on disk; raise the first write error."""
        if self._executor is not None:
            await self._call(lambda: None)
        if self._error is not None:
            raise self._error

    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None, "journal used after close"
        return self._conn

    # -- reading ---------------------------------------------------------------

    async def prepare(self, mode: str) -> list[JournalRow]:
        """Check (or record) the mode, drop the rows whose records must be sent
        again, and return the remaining rows in write order."""
        return await self._call(self._prepare_sync, mode)

    def _prepare_sync(self, mode: str) -> list[JournalRow]:
        db = self._db()
        found = db.execute("SELECT value FROM meta WHERE key='mode'").fetchone()
        if found is None:
            db.execute("INSERT INTO meta (key, value) VALUES ('mode', ?)", (mode,))
        elif found[0] != mode:
            raise ValueError(
                f"journal {self.path!r} belongs to a {found[0]!r} ingestion; it cannot "
                f"resume a {mode!r} one (use another journal file)"
            )
        marks = ",".join("?" * len(_RESEND_STATES))
        db.execute(f"DELETE FROM batches WHERE state IN ({marks})", _RESEND_STATES)
        rows = db.execute(
            "SELECT id, start, stop, state, op_id, positions, first_id, image_ids, invalid, "
            "failed, n_applied FROM batches ORDER BY id"
        ).fetchall()
        return [
            JournalRow(
                row_id=r[0],
                start=r[1],
                stop=r[2],
                state=r[3],
                op_id=r[4],
                positions=_loads(r[5]),
                first_id=r[6],
                image_ids=_loads(r[7]),
                invalid=[tuple(e) for e in _loads(r[8]) or ()],
                failed=[tuple(e) for e in _loads(r[9]) or ()],
                n_applied=r[10],
            )
            for r in rows
        ]

    async def summary(self) -> dict[str, Any]:
        """Counts for humans: mode, rows by state, records applied/failed/invalid,
        and the op ids still pending."""
        return await self._call(self._summary_sync)

    def _summary_sync(self) -> dict[str, Any]:
        db = self._db()
        mode = db.execute("SELECT value FROM meta WHERE key='mode'").fetchone()
        states = dict(db.execute("SELECT state, COUNT(*) FROM batches GROUP BY state").fetchall())
        applied, failed, invalid = 0, 0, 0
        for n_applied, failed_json, invalid_json in db.execute(
            "SELECT n_applied, failed, invalid FROM batches WHERE state = ?", (DONE,)
        ):
            applied += n_applied
            failed += len(_loads(failed_json) or ())
            invalid += len(_loads(invalid_json) or ())
        pending = [
            op_id
            for (op_id,) in db.execute(
                "SELECT op_id FROM batches WHERE state = ? ORDER BY id", (ACCEPTED,)
            )
        ]
        return {
            "mode": mode[0] if mode else None,
            "batches": states,
            "applied": applied,
            "failed": failed,
            "invalid": invalid,
            "pending_op_ids": pending,
        }

    # -- writing (queued, in order) --------------------------------------------

    def next_row_id(self) -> int:
        """A fresh row id (ids grow in write order; a later row wins)."""
        row_id = self._next_id
        self._next_id += 1
        return row_id

    def record_submitting(self, row: JournalRow) -> None:
        """A batch is about to be sent."""
        self._enqueue(self._insert_sync, [row])

    def record_split(self, old_row_id: int, rows: Sequence[JournalRow]) -> None:
        """A batch was too large (413): it is replaced by its halves."""
        self._enqueue(self._split_sync, old_row_id, list(rows))

    def record_accepted(self, row_id: int, op_id: int | None) -> None:
        """The server accepted the batch as operation ``op_id``."""
        self._enqueue(self._update_sync, row_id, ACCEPTED, op_id, None, None)

    def record_final(
        self,
        row_id: int,
        state: str,
        *,
        failed: Sequence[FailedEntry] = (),
        n_applied: int = 0,
    ) -> None:
        """The batch's final state: ``done`` (with its failed records),
        ``unknown``, ``unsent``, or ``accepted`` left pending."""
        self._enqueue(self._update_sync, row_id, state, None, list(failed), n_applied)

    def record_invalid_only(self, row: JournalRow) -> None:
        """A span whose records were all invalid: final at once."""
        self._enqueue(self._insert_sync, [row])

    def _insert_sync(self, rows: list[JournalRow]) -> None:
        self._db().executemany(
            "INSERT INTO batches (id, start, stop, positions, state, op_id, first_id, "
            "image_ids, invalid, failed, n_applied, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.row_id,
                    r.start,
                    r.stop,
                    _dumps(r.positions),
                    r.state,
                    r.op_id,
                    r.first_id,
                    _dumps(r.image_ids),
                    _dumps(r.invalid) if r.invalid else None,
                    _dumps(r.failed) if r.failed else None,
                    r.n_applied,
                    time.time(),
                )
                for r in rows
            ],
        )

    def _split_sync(self, old_row_id: int, rows: list[JournalRow]) -> None:
        db = self._db()
        db.execute("BEGIN")
        try:
            db.execute("DELETE FROM batches WHERE id = ?", (old_row_id,))
            self._insert_sync(rows)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _update_sync(
        self,
        row_id: int,
        state: str,
        op_id: int | None,
        failed: list[FailedEntry] | None,
        n_applied: int | None,
    ) -> None:
        if failed is None:
            self._db().execute(
                "UPDATE batches SET state = ?, op_id = ?, updated_at = ? WHERE id = ?",
                (state, op_id, time.time(), row_id),
            )
            return
        # A final state: the ids are no longer needed once the row is done.
        self._db().execute(
            "UPDATE batches SET state = ?, failed = ?, n_applied = ?, updated_at = ?, "
            "image_ids = CASE WHEN ? = 'done' THEN NULL ELSE image_ids END WHERE id = ?",
            (state, _dumps(failed) if failed else None, n_applied, time.time(), state, row_id),
        )


__all__ = ["Journal", "JournalRow"]
