"""The PostgreSQL journal backend: :class:`PostgresJournal` (the ``postgres`` extra).

The same rows and states as the SQLite journal (see
:mod:`wesog_async.bulk.journal.base`), in two tables that many journals share:
``wesog_journals`` (one row per journal: its binding) and
``wesog_journal_batches`` (one row per batch, keyed by journal name and row
id). A scale-out job keeps one journal per shard in the job's database, so
that a worker taking over a shard resumes it exactly as a local run resumes
its file.
The tables' SQL, their creation and a row's columns are in
:mod:`wesog_async.bulk.journal.postgres_schema`.

Pass ``journal="postgresql://user@host/db"`` (the journal is named
``default``, or by a ``journal=NAME`` query parameter of the URL) or a
:class:`PostgresJournal` to an ingestion. Writes go over one connection, in
the order they are issued; each returns once committed, and a cancelled
caller does not cancel its write.

A ``fence`` (a coroutine function given the connection) runs inside the
transaction of every write that adds rows - :meth:`PostgresJournal.insert`,
which comes before each batch is sent, and :meth:`PostgresJournal.split` -
and refuses the write by raising. A scale-out worker fences its shard's
journal with its lease (:func:`wesog_async.scale.leases.fence`), so a worker
whose lease was taken over can send nothing more: its next batch is refused
before it leaves.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

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
from wesog_async.bulk.journal.postgres_schema import (
    INSERT,
    SCHEMA_VERSION,
    ensure_schema,
    insert_args,
)

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")

#: Run in the transaction of every insert and split; raises to refuse the write.
JournalFence = Callable[["asyncpg.Connection[Any]"], Awaitable[None]]

DSN_SCHEMES: Final = ("postgresql", "postgres")
_NAME_PARAM: Final = "journal"


def is_postgres_dsn(spec: object) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL."""
    return isinstance(spec, str) and spec.split("://", 1)[0].lower() in DSN_SCHEMES


def split_dsn(dsn: str) -> tuple[str, str | None]:
    """``dsn`` without its ``journal=`` query parameter, and that parameter."""
    parts = urllib.parse.urlsplit(dsn)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    names = [v for k, v in query if k == _NAME_PARAM]
    rest = urllib.parse.urlencode([(k, v) for k, v in query if k != _NAME_PARAM])
    return urllib.parse.urlunsplit(parts._replace(query=rest)), (names[-1] if names else None)


def redact_dsn(dsn: str) -> str:
    """``dsn`` with any password replaced by ``***`` (for messages)."""
    parts = urllib.parse.urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class PostgresJournal:
    """A resumable record of one bulk ingestion, in a PostgreSQL database.

    ``dsn`` is a ``postgresql://`` URL (a ``journal=NAME`` query parameter
    names the journal, else ``name``, else ``"default"``). Use as ``async
    with PostgresJournal(dsn, name)`` or pass it as ``journal=``; many
    journals share one database, each under its own name. Needs ``asyncpg``
    (``pip install "wesog-async[postgres]"``). ``fence``, if given, is
    awaited in the transaction of every :meth:`insert` and :meth:`split`
    (before the rows are written) and refuses the write by raising (see the
    module docstring).
    """

    def __init__(
        self, dsn: str, name: str | None = None, *, fence: JournalFence | None = None
    ) -> None:
        if not is_postgres_dsn(dsn):
            raise ValueError(f"dsn must be a postgresql:// URL, got {redact_dsn(str(dsn))!r}")
        self._dsn, from_url = split_dsn(dsn)
        self._name = name or from_url or "default"
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._fence = fence

    def __repr__(self) -> str:
        state = "open" if self._conn is not None else "closed"
        return f"<PostgresJournal {self.path!r} {state}>"

    @property
    def path(self) -> str:
        """The DSN without its password, and the journal's name."""
        return f"{redact_dsn(self._dsn)} (journal {self._name!r})"

    @property
    def name(self) -> str:
        """The journal's name in its database."""
        return self._name

    # -- lifecycle -------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        return self._conn is not None

    async def open(self) -> None:
        """Connect, create the tables if needed and check the format version."""
        if self._conn is not None:
            raise RuntimeError(f"journal {self.path!r} is already open")
        try:
            import asyncpg  # noqa: PLC0415 - the optional postgres extra
        except ImportError:  # pragma: no cover - the extra is part of dev
            raise RuntimeError(
                'a postgresql:// journal needs asyncpg: pip install "wesog-async[postgres]"'
            ) from None
        conn = await asyncpg.connect(self._dsn)
        try:
            await ensure_schema(conn)
            await conn.execute(
                "INSERT INTO wesog_journals (name, version) VALUES ($1, $2) "
                "ON CONFLICT (name) DO NOTHING",
                self._name,
                SCHEMA_VERSION,
            )
            found = await conn.fetchval(
                "SELECT version FROM wesog_journals WHERE name = $1", self._name
            )
            if found != SCHEMA_VERSION:
                raise ValueError(
                    f"journal {self.path!r} has format version {found}, this wesog_async "
                    f"reads version {SCHEMA_VERSION}: finish that ingestion with the version "
                    "that wrote it, or use a new journal name"
                )
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        """Wait for queued writes, then disconnect."""
        conn = self._conn
        if conn is None:
            return
        try:
            async with self._lock:
                await conn.close()
        finally:
            self._conn = None

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

    async def _call(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError(f"journal {self.path!r} is not open")

        async def locked() -> T:
            async with self._lock:  # one statement at a time, in issue order
                return await fn(conn)

        # Shielded: a cancelled caller must not cancel a write queued behind others.
        write = asyncio.ensure_future(locked())
        # Its error, if the caller was cancelled meanwhile, is nobody's to log.
        write.add_done_callback(_consume)
        return await asyncio.shield(write)

    # -- the backend interface -------------------------------------------------

    async def bind(self, binding: Binding) -> list[JournalRow]:
        """Check (or record) the binding; return every row in write order."""

        async def run(conn: asyncpg.Connection) -> list[JournalRow]:
            async with conn.transaction():
                meta = await conn.fetchval(
                    "SELECT meta FROM wesog_journals WHERE name = $1 FOR UPDATE", self._name
                )
                stored: dict[str, str] = json.loads(meta) if meta else {}
                try:
                    check_binding(self.path, stored, binding)
                except JournalMismatchError:
                    states = await conn.fetch(
                        "SELECT state FROM wesog_journal_batches WHERE journal = $1", self._name
                    )
                    if not nothing_sent([r[0] for r in states]):
                        raise
                    # Nothing of the other run ever left (a wrong key, say):
                    # this run may have the journal.
                    await conn.execute(
                        "DELETE FROM wesog_journal_batches WHERE journal = $1", self._name
                    )
                    stored = {k: v for k, v in stored.items() if k not in binding.as_dict()}
                merged = {**binding.as_dict(), **stored}
                await conn.execute(
                    "UPDATE wesog_journals SET meta = $2::jsonb WHERE name = $1",
                    self._name,
                    json.dumps(merged),
                )
                records = await conn.fetch(
                    f"SELECT {ROW_COLUMNS} FROM wesog_journal_batches "
                    "WHERE journal = $1 ORDER BY id",
                    self._name,
                )
            return [row_from_columns(r) for r in records]

        return await self._call(run)

    async def insert(self, rows: Sequence[JournalRow]) -> None:
        """Store new rows (behind the fence, if any, in one transaction)."""
        args = [insert_args(self._name, r) for r in rows]
        fence = self._fence

        async def run(conn: asyncpg.Connection) -> None:
            if fence is None:
                await conn.executemany(INSERT, args)
                return
            async with conn.transaction():
                await fence(conn)
                await conn.executemany(INSERT, args)

        await self._call(run)

    async def split(self, old_row_id: int, rows: Sequence[JournalRow]) -> None:
        """Replace a row by its halves, in one transaction (behind the fence, if any)."""
        args = [insert_args(self._name, r) for r in rows]
        fence = self._fence

        async def run(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                if fence is not None:
                    await fence(conn)
                await conn.execute(
                    "DELETE FROM wesog_journal_batches WHERE journal = $1 AND id = $2",
                    self._name,
                    old_row_id,
                )
                await conn.executemany(INSERT, args)

        await self._call(run)

    async def accept(self, row_id: int, op_id: int | None) -> None:
        """The server accepted the row's batch as operation ``op_id``."""

        async def run(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "UPDATE wesog_journal_batches SET state = $3, op_id = $4, updated_at = now() "
                "WHERE journal = $1 AND id = $2",
                self._name, row_id, ACCEPTED, op_id,
            )  # fmt: skip

        await self._call(run)

    async def finish(self, row: JournalRow) -> None:
        """Store a row's final state and entries (its id list is dropped)."""
        args = (
            self._name, row.row_id, row.state, row.op_id, encode_text(row.failed),
            encode_text(row.unknown), row.n_applied, row.resent, row.fingerprint,
        )  # fmt: skip

        async def run(conn: asyncpg.Connection) -> None:
            # The fingerprint too: a done row keeps the one without its failed
            # records, which a retry may have edited (as the SQLite journal does).
            await conn.execute(
                "UPDATE wesog_journal_batches SET state = $3, op_id = COALESCE($4, op_id), "
                "failed = $5, unknown = $6, n_applied = $7, resent = $8, image_ids = NULL, "
                "fingerprint = COALESCE($9, fingerprint), "
                "updated_at = now() WHERE journal = $1 AND id = $2",
                *args,
            )

        await self._call(run)

    async def discard(self, row_ids: Sequence[int]) -> None:
        """Drop rows."""
        ids = list(row_ids)

        async def run(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "DELETE FROM wesog_journal_batches WHERE journal = $1 AND id = ANY($2::bigint[])",
                self._name,
                ids,
            )

        await self._call(run)

    async def summary(self) -> dict[str, Any]:
        """Counts for humans: binding, rows by state, records applied, failed,
        invalid and unknown, and the op ids still pending."""

        async def run(conn: asyncpg.Connection) -> dict[str, Any]:
            meta_json = await conn.fetchval(
                "SELECT meta FROM wesog_journals WHERE name = $1", self._name
            )
            meta = json.loads(meta_json) if meta_json else {}
            states = {
                r[0]: r[1]
                for r in await conn.fetch(
                    "SELECT state, COUNT(*) FROM wesog_journal_batches WHERE journal = $1 "
                    "GROUP BY state",
                    self._name,
                )
            }
            applied = failed = invalid = unknown = 0
            for r in await conn.fetch(
                "SELECT n_applied, failed, invalid, unknown FROM wesog_journal_batches "
                "WHERE journal = $1 AND state = $2",
                self._name,
                DONE,
            ):
                applied += r[0]
                failed += len(decode_text(r[1]) or ())
                invalid += len(decode_text(r[2]) or ())
                unknown += len(decode_text(r[3]) or ())
            pending = [
                r[0]
                for r in await conn.fetch(
                    "SELECT op_id FROM wesog_journal_batches WHERE journal = $1 AND state = $2 "
                    "ORDER BY id",
                    self._name,
                    ACCEPTED,
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

        return await self._call(run)


__all__ = [
    "DSN_SCHEMES",
    "SCHEMA_VERSION",
    "JournalFence",
    "PostgresJournal",
    "is_postgres_dsn",
    "split_dsn",
]
