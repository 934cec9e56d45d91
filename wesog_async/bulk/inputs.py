"""Streaming record readers for bulk uploads: JSON Lines, CSV, plain id lists.

:func:`open_records` returns a *source*: an iterable of records that
:func:`wesog_async.ingest` consumes lazily, plus :meth:`RecordSource.line_of`
to turn an input position back into a line number for error reports.

How reading avoids blocking the event loop: files are read as **sync
iterators** through a 1 MiB buffer. Reading a local file costs microseconds per
record and the pipeline yields to the event loop every few hundred records, so
the loop is never held for long. A pipe or a terminal on stdin can block for
as long as the writer likes, so stdin (unless redirected from a file) is read
by a daemon thread and handed over as an **async iterator**, in chunks.

Bad input never raises mid-stream: a line that cannot be parsed becomes an
:class:`~wesog_async.InvalidRecord` carrying its line number, which the
pipeline reports as an invalid record at that position.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import csv
import io
import os
import re
import stat
import sys
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from types import TracebackType
from typing import IO, Any, Final, Literal, Self

from wesog_async import _jsonlib
from wesog_async._models import BOOL_FIELDS, COMPUTED_FIELDS, LIST_FIELDS, WRITABLE_FIELDS
from wesog_async.bulk.types import InvalidRecord

RecordFormat = Literal["jsonl", "csv", "ids"]
FORMATS: Final = ("jsonl", "csv", "ids")

_EXTENSIONS: Final[dict[str, RecordFormat]] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".txt": "ids",
    ".ids": "ids",
}
_BUFFER: Final = 1 << 20
_LIST_SPLIT: Final = re.compile(r"[|;]")
_TRUE: Final = frozenset({"true", "1", "yes", "y", "t"})
_FALSE: Final = frozenset({"false", "0", "no", "n", "f"})
_BOOLS: Final = frozenset(BOOL_FIELDS)
_LISTS: Final = frozenset(LIST_FIELDS)
_COLUMNS: Final = frozenset({"id", *WRITABLE_FIELDS})
_ALIASES: Final = {"image_id": "id"}
_STDIN_CHUNK: Final = 1000


def detect_format(path: str, fmt: str | None = None) -> RecordFormat:
    """The format of ``path``: ``fmt`` if given, else from the extension
    (``.jsonl``/``.ndjson``/``.json``, ``.csv``, ``.txt``/``.ids``); stdin
    (``-``) defaults to JSON Lines."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt  # type: ignore[return-value]
    if path == "-":
        return "jsonl"
    ext = os.path.splitext(path)[1].lower()
    try:
        return _EXTENSIONS[ext]
    except KeyError:
        raise ValueError(
            f"cannot tell the format of {path!r} from its extension; "
            "pass --format jsonl, csv or ids"
        ) from None


class _Lines:
    """Maps input positions to line numbers, storing only where they drift
    apart (blank lines, multi-line CSV cells): flat memory on any input."""

    def __init__(self, first_line: int) -> None:
        self._positions: list[int] = [0]
        self._offsets: list[int] = [first_line]

    def note(self, position: int, line: int) -> None:
        if line - position != self._offsets[-1]:
            self._positions.append(position)
            self._offsets.append(line - position)

    def line_of(self, position: int) -> int:
        i = bisect.bisect_right(self._positions, position) - 1
        return position + self._offsets[i]


def _parse_jsonl(stream: IO[bytes], lines: _Lines) -> Generator[Any, None, None]:
    position = 0
    for number, raw in enumerate(stream, start=1):
        text = raw.strip()
        if not text:
            continue
        lines.note(position, number)
        position += 1
        try:
            yield _jsonlib.loads(text)
        except _jsonlib.JSON_DECODE_ERRORS as exc:
            yield InvalidRecord(f"line {number}: malformed JSON ({exc})")


def _parse_ids(stream: IO[bytes], lines: _Lines) -> Generator[Any, None, None]:
    position = 0
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            lines.note(position, number)
            position += 1
            yield InvalidRecord(f"line {number}: not UTF-8 text")
            continue
        if text:
            lines.note(position, number)
            position += 1
            yield text


def csv_columns(header: list[str]) -> list[str]:
    """The record keys of a CSV header (``image_id`` is accepted for ``id``).

    Raises ``ValueError`` naming any column that is not a writable image field.
    """
    columns = [_ALIASES.get(h.strip(), h.strip()) for h in header]
    unknown = [c for c in columns if c not in _COLUMNS]
    if unknown:
        computed = [c for c in unknown if c in COMPUTED_FIELDS]
        hint = (
            f" ({', '.join(computed)} are computed by Wesog: drop those columns)"
            if computed
            else ""
        )
        raise ValueError(
            f"CSV column(s) {', '.join(map(repr, unknown))} are not image fields{hint}; "
            f"known columns: id, {', '.join(WRITABLE_FIELDS)}"
        )
    if "id" not in columns:
        raise ValueError("the CSV header needs an 'id' column")
    if len(set(columns)) != len(columns):
        raise ValueError("the CSV header names a column twice")
    return columns


def csv_record(columns: list[str], row: list[str], line: int) -> Any:
    """One CSV row as a record: empty cells are left out, list cells split on
    ``|`` or ``;``, booleans read from true/false/1/0/yes/no."""
    if len(row) != len(columns):
        return InvalidRecord(f"line {line}: expected {len(columns)} cells, got {len(row)}")
    record: dict[str, Any] = {}
    for name, cell in zip(columns, row, strict=True):
        value = cell.strip()
        if not value:
            continue
        if name in _LISTS:
            record[name] = [v.strip() for v in _LIST_SPLIT.split(value) if v.strip()]
        elif name in _BOOLS:
            lowered = value.lower()
            if lowered in _TRUE:
                record[name] = True
            elif lowered in _FALSE:
                record[name] = False
            else:
                return InvalidRecord(
                    f"line {line}: {value!r} is not a boolean (true/false/1/0/yes/no)",
                    field=name,
                    image_id=record.get("id") or (row[columns.index("id")].strip() or None),
                )
        else:
            record[name] = value
    return record


def _parse_csv(stream: IO[bytes], lines: _Lines) -> Generator[Any, None, None]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        yield from _csv_rows(csv.reader(text), lines)
    finally:
        # Hand the byte stream back: the source closes it, not the wrapper's
        # finalizer (which would complain about a closed file).
        with contextlib.suppress(ValueError):
            text.detach()


def _csv_rows(reader: Any, lines: _Lines) -> Iterator[Any]:
    try:
        header = next(reader)
    except StopIteration:
        return
    columns = csv_columns(header)
    position = 0
    previous = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            line = previous + 1
            lines.note(position, line)
            position += 1
            previous = reader.line_num
            yield InvalidRecord(f"line {line}: unreadable CSV ({exc})")
            continue
        line = previous + 1
        previous = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        lines.note(position, line)
        position += 1
        yield csv_record(columns, row, line)


_PARSERS: Final[dict[str, Callable[[IO[bytes], _Lines], Generator[Any, None, None]]]] = {
    "jsonl": _parse_jsonl,
    "csv": _parse_csv,
    "ids": _parse_ids,
}


class RecordSource:
    """Records read from a file as a sync iterable (see the module docstring).

    ``line_of(position)`` gives the line number of the record at an input
    position. Use as a context manager to close the file.
    """

    def __init__(self, stream: IO[bytes], fmt: RecordFormat, *, name: str = "") -> None:
        self.name = name
        self.format = fmt
        self._stream = stream
        self._lines = _Lines(2 if fmt == "csv" else 1)
        self._records = _PARSERS[fmt](stream, self._lines)
        if fmt == "csv":
            # Read the header now, so a bad header is reported before any upload.
            self._first: list[Any] = []
            for record in self._records:
                self._first.append(record)
                break
        else:
            self._first = []

    def __iter__(self) -> Iterator[Any]:
        yield from self._first
        self._first = []
        yield from self._records

    def line_of(self, position: int) -> int:
        """The line number of the record at ``position`` (0-based)."""
        return self._lines.line_of(position)

    def close(self) -> None:
        """Close the underlying file."""
        self._records.close()
        self._stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ThreadedSource:
    """Records read by a daemon thread and handed over as an async iterable.

    For streams that may block (a pipe or a terminal on stdin). The thread
    parses ``_STDIN_CHUNK`` records at a time and stays at most a few chunks
    ahead. A daemon thread cannot hold the process at exit while it waits for
    input that never comes.
    """

    def __init__(self, source: RecordSource) -> None:
        self.source = source
        self.name = source.name
        self.format = source.format
        self._started = False
        self._stop = threading.Event()

    def line_of(self, position: int) -> int:
        """The line number of the record at ``position`` (0-based)."""
        return self.source.line_of(position)

    def __aiter__(self) -> AsyncIterator[Any]:
        if self._started:
            raise RuntimeError("a threaded source can be iterated once")
        self._started = True
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[list[Any] | BaseException | None] = asyncio.Queue()
        room = threading.Semaphore(4)
        stop = self._stop

        def hand_over(item: list[Any] | BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(chunks.put_nowait, item)

        def read() -> None:
            try:
                chunk: list[Any] = []
                for record in self.source:
                    chunk.append(record)
                    if len(chunk) >= _STDIN_CHUNK:
                        room.acquire()
                        if stop.is_set():
                            return
                        hand_over(chunk)
                        chunk = []
                if chunk:
                    hand_over(chunk)
                hand_over(None)
            except BaseException as exc:  # handed to the reader side, raised there
                hand_over(exc)

        threading.Thread(target=read, name="wesog-stdin", daemon=True).start()
        try:
            while True:
                item = await chunks.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                room.release()
                for record in item:
                    yield record
        finally:
            stop.set()
            room.release()

    def close(self) -> None:
        """Stop the reader thread at its next chunk (it is a daemon anyway)."""
        self._stop.set()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_records(
    path: str, fmt: str | None = None, *, stdin: IO[bytes] | None = None
) -> RecordSource | ThreadedSource:
    """Open ``path`` (``-`` for stdin) as a source of records for ``ingest``.

    ``fmt`` is ``jsonl``, ``csv`` or ``ids`` (one image id per line, for
    deletes); by default it comes from the extension. A bad CSV header raises
    ``ValueError`` here, before anything is uploaded.
    """
    kind = detect_format(path, fmt)
    if path == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        try:
            regular = stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
        except (OSError, ValueError, io.UnsupportedOperation):
            regular = False
        source = RecordSource(stream, kind, name="<stdin>")
        return source if regular else ThreadedSource(source)
    stream = open(path, "rb", buffering=_BUFFER)  # noqa: SIM115 - the source owns it
    try:
        return RecordSource(stream, kind, name=path)
    except BaseException:
        stream.close()
        raise


__all__ = ["RecordSource", "ThreadedSource", "csv_record", "detect_format", "open_records"]
