"""The SQLite journal backend: :class:`Journal`.

One row per batch, stored as a range of input positions (plus the entries of
its invalid, failed and unknown records): a million records make about ten
thousand rows, not a million. See :mod:`wesog_async.bulk.journal.base` for the
states.

SQLite runs in one dedicated worker thread (WAL mode), so journal writes never
block the event loop. Writes run in the order they are issued; each returns
once committed, and a cancelled caller does not cancel its write.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Final, Self, TypeVar

from wesog_async.bulk.journal.base import (
    ACCEPTED,
    DONE,
    ROW_COLUMNS,
    Binding,
    JournalMismatchError,
    JournalRow,
    check_binding,
    decode_text,
    encode_text,
    nothing_sent,
    row_from_columns,
)

T = TypeVar("T")

SCHEMA_VERSION: Final = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    start INTEGER NOT NULL,
    stop INTEGER NOT NULL,
    positions TEXT,
    state TEXT NOT NULL,
    op_id INTEGER,
    image_ids TEXT,
    fingerprint TEXT,
    invalid TEXT,
    failed TEXT,
    unknown TEXT,
    n_applied INTEGER NOT NULL DEFAULT 0,
    resent INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_start ON batches (start);
"""


class Journal:
    """A resumable record of one bulk ingestion, in an SQLite file.

    Pass it (or just its path) as ``journal=`` to :func:`wesog_async.ingest`.
    Use as ``async with Journal(path) as journal:``, or let ``ingest`` open and
    close it. A journal belongs to one destination, mode and input: reusing
    it for another raises :class:`~wesog_async.JournalMismatchError`.
    Positions are counted from 0 in input order, so resume with the same
    input in the same order.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        state = "open" if self._executor is not None else "closed"
        return f"<Journal {self._path!r} {state}>"

    @property
    def path(self) -> str:
        """The file path."""
        return self._path

    # -- lifecycle -------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        return self._executor is not None

    async def open(self) -> None:
        """Open (or create) the file in the journal's worker thread."""
        if self._executor is not None:
            raise RuntimeError(f"journal {self._path!r} is already open")
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="wesog-journal"
        )
        try:
            await self._call(self._open_sync)
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
            executor.shutdown(wait=True)  # idle now: joining takes no time

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

    def _open_sync(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed row survives a process crash (only
            # an OS crash can lose the last commits), without an fsync per write.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            found = conn.execute("SELECT value FROM meta WHERE key='version'").fetchone()
            if found is not None and found[0] != str(SCHEMA_VERSION):
                raise ValueError(
                    f"journal {self._path!r} has format version {found[0]}, this "
                    f"wesog_async reads version {SCHEMA_VERSION}: finish that ingestion with "
                    "the version that wrote it, or use a new journal file"
                )
            conn.executescript(_SCHEMA)
            if found is None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('version', ?)", (str(SCHEMA_VERSION),)
                )
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the worker thread -----------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError(f"journal {self._path!r} is not open")
        # Shielded: a cancelled caller must not cancel a write queued behind others.
        return await asyncio.shield(asyncio.wrap_future(self._executor.submit(fn, *args)))

    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None, "journal used after close"
        return self._conn

    # -- the backend interface -------------------------------------------------

    async def bind(self, binding: Binding) -> list[JournalRow]:
        """Check (or record) the binding; return every row in write order."""
        return await self._call(self._bind_sync, binding)

    def _bind_sync(self, binding: Binding) -> list[JournalRow]:
        db = self._db()
        stored = dict(db.execute("SELECT key, value FROM meta").fetchall())
        try:
            check_binding(self._path, stored, binding)
        except JournalMismatchError:
            states = [state for (state,) in db.execute("SELECT state FROM batches")]
            if not nothing_sent(states):
                raise
            # Nothing of the other run ever left (a wrong key, say): this run
            # may have the journal, rather than leave it tied to that run.
            keys = list(binding.as_dict())
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM batches")
            db.executemany("DELETE FROM meta WHERE key = ?", [(k,) for k in keys])
            db.execute("COMMIT")
        db.executemany(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", binding.as_dict().items()
        )
        cursor = db.execute(f"SELECT {ROW_COLUMNS} FROM batches ORDER BY id")
        return [row_from_columns(r) for r in cursor.fetchall()]

    async def insert(self, rows: Sequence[JournalRow]) -> None:
        """Store new rows."""
        await self._call(self._insert_sync, list(rows))

    def _insert_sync(self, rows: list[JournalRow]) -> None:
        self._db().executemany(
            f"INSERT INTO batches ({ROW_COLUMNS}, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.row_id,
                    r.start,
                    r.stop,
                    encode_text(r.positions),
                    r.state,
                    r.op_id,
                    encode_text(r.image_ids),
                    r.fingerprint,
                    encode_text(r.invalid),
                    encode_text(r.failed),
                    encode_text(r.unknown),
                    r.n_applied,
                    int(r.resent),
                    time.time(),
                )
                for r in rows
            ],
        )

    async def split(self, old_row_id: int, rows: Sequence[JournalRow]) -> None:
        """Replace a row by its halves, in one transaction."""
        await self._call(self._split_sync, old_row_id, list(rows))

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

    async def accept(self, row_id: int, op_id: int | None) -> None:
        """The server accepted the row's batch as operation ``op_id``."""
        await self._call(self._accept_sync, row_id, op_id)

    def _accept_sync(self, row_id: int, op_id: int | None) -> None:
        self._db().execute(
            "UPDATE batches SET state = ?, op_id = ?, updated_at = ? WHERE id = ?",
            (ACCEPTED, op_id, time.time(), row_id),
        )

    async def finish(self, row: JournalRow) -> None:
        """Store a row's final state and entries (its id list is dropped)."""
        await self._call(self._finish_sync, row)

    def _finish_sync(self, row: JournalRow) -> None:
        self._db().execute(
            "UPDATE batches SET state = ?, op_id = COALESCE(?, op_id), failed = ?, unknown = ?, "
            "n_applied = ?, resent = ?, fingerprint = COALESCE(?, fingerprint), "
            "image_ids = NULL, updated_at = ? WHERE id = ?",
            (
                row.state,
                row.op_id,
                encode_text(row.failed),
                encode_text(row.unknown),
                row.n_applied,
                int(row.resent),
                row.fingerprint,
                time.time(),
                row.row_id,
            ),
        )

    async def discard(self, row_ids: Sequence[int]) -> None:
        """Drop rows."""
        await self._call(self._discard_sync, list(row_ids))

    def _discard_sync(self, row_ids: list[int]) -> None:
        self._db().executemany("DELETE FROM batches WHERE id = ?", [(i,) for i in row_ids])

    async def summary(self) -> dict[str, Any]:
        """Counts for humans: binding, rows by state, records applied, failed,
        invalid and unknown, and the op ids still pending."""
        return await self._call(self._summary_sync)

    def _summary_sync(self) -> dict[str, Any]:
        db = self._db()
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        states = dict(db.execute("SELECT state, COUNT(*) FROM batches GROUP BY state").fetchall())
        applied = failed = invalid = unknown = 0
        for n_applied, failed_json, invalid_json, unknown_json in db.execute(
            "SELECT n_applied, failed, invalid, unknown FROM batches WHERE state = ?", (DONE,)
        ):
            applied += n_applied
            failed += len(decode_text(failed_json) or ())
            invalid += len(decode_text(invalid_json) or ())
            unknown += len(decode_text(unknown_json) or ())
        pending = [
            op_id
            for (op_id,) in db.execute(
                "SELECT op_id FROM batches WHERE state = ? ORDER BY op_id", (ACCEPTED,)
            )
        ]
        return {
            "mode": meta.get("mode"),
            "base_url": meta.get("base_url"),
            "batches": states,
            "applied": applied,
            "failed": failed,
            "invalid": invalid,
            "unknown": unknown,
            "pending_op_ids": pending,
        }


__all__ = ["SCHEMA_VERSION", "Journal"]
