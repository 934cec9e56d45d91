"""Shards: the pieces of a scale-out job's input, and how one is read.

A shard is a whole input file (any format :func:`wesog_async.open_records`
reads), a range of lines of one large file, or a range of bytes of one large
file (JSON Lines or id lists: one record per line, so a range can start
anywhere). Input positions count from 0 within each shard, which has its own
journal.

A byte range ``[start, stop)`` holds the lines that *start* inside it: a
reader at ``start > 0`` skips the rest of the line it lands in (the previous
range reads it whole), so ranges cut anywhere cover every line exactly once.
"""

from __future__ import annotations

import glob
import io
import os
from collections.abc import Iterable, Sequence
from typing import IO, Any, Final, Literal, cast

import attrs

from wesog_async.bulk.inputs import RecordSource, detect_format

ShardKind = Literal["file", "lines", "bytes"]
_LINE_FORMATS: Final = ("jsonl", "ids")
_CHUNK: Final = 1 << 20


@attrs.frozen
class ShardSpec:
    """One shard: ``path`` read whole (``kind="file"``), or lines / bytes
    ``[start, stop)`` of it; ``format`` is ``jsonl``, ``csv`` or ``ids``."""

    path: str
    format: str
    kind: ShardKind = "file"
    start: int | None = None
    stop: int | None = None

    def describe(self) -> str:
        """``path`` plus its range, for humans."""
        if self.kind == "file":
            return self.path
        return f"{self.path} {self.kind} {self.start}-{self.stop}"


def _format_of(path: str, fmt: str | None) -> str:
    return detect_format(path, fmt)


def shards_of_files(paths: Iterable[str], fmt: str | None = None) -> list[ShardSpec]:
    """One shard per file; a directory stands for the files in it, a pattern
    with ``*``, ``?`` or ``[`` for the files it matches (sorted, so that every
    coordinator plans the same shards)."""
    found: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found.extend(
                sorted(
                    os.path.join(path, name)
                    for name in os.listdir(path)
                    if os.path.isfile(os.path.join(path, name)) and not name.startswith(".")
                )
            )
        elif glob.has_magic(path):
            found.extend(sorted(p for p in glob.glob(path) if os.path.isfile(p)))
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise ValueError(f"input {path!r}: no such file, directory or pattern match")
    if not found:
        raise ValueError(f"no input files in {list(paths)!r}")
    return [ShardSpec(os.path.abspath(p), _format_of(p, fmt)) for p in found]


def _one_record_per_line(path: str, fmt: str | None) -> str:
    kind = _format_of(path, fmt)
    if kind not in _LINE_FORMATS:
        raise ValueError(
            f"input {path!r}: line and byte ranges need one record per line (jsonl or ids), "
            f"not {kind}; shard CSV input by file"
        )
    return kind


def shards_of_lines(path: str, lines_per_shard: int, fmt: str | None = None) -> list[ShardSpec]:
    """Ranges of ``lines_per_shard`` lines of one JSON Lines or id-list file."""
    if lines_per_shard < 1:
        raise ValueError(f"lines_per_shard must be >= 1, got {lines_per_shard!r}")
    kind = _one_record_per_line(path, fmt)
    total = count_lines(path)
    full = os.path.abspath(path)
    return [
        ShardSpec(full, kind, "lines", start, min(start + lines_per_shard, total))
        for start in range(0, max(total, 1), lines_per_shard)
    ]


def shards_of_bytes(path: str, bytes_per_shard: int, fmt: str | None = None) -> list[ShardSpec]:
    """Ranges of about ``bytes_per_shard`` bytes of one JSON Lines or id-list file."""
    if bytes_per_shard < 1:
        raise ValueError(f"bytes_per_shard must be >= 1, got {bytes_per_shard!r}")
    kind = _one_record_per_line(path, fmt)
    size = os.path.getsize(path)
    full = os.path.abspath(path)
    return [
        ShardSpec(full, kind, "bytes", start, min(start + bytes_per_shard, size))
        for start in range(0, max(size, 1), bytes_per_shard)
    ]


def count_lines(path: str) -> int:
    """The number of lines of ``path`` (a last line without a newline counts)."""
    n = 0
    last = b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


class _RangeReader(io.RawIOBase):
    """The lines of a file within a line or byte range, as a binary stream."""

    def __init__(self, path: str, kind: ShardKind, start: int, stop: int) -> None:
        super().__init__()
        self._file = open(path, "rb", buffering=_CHUNK)  # noqa: SIM115 - closed in close()
        self._kind = kind
        self._stop = stop
        self._line = 0
        if kind == "lines":
            for _ in range(start):
                if not self._file.readline():
                    break
            self._line = start
        elif start > 0:
            self._file.seek(start - 1)
            if self._file.read(1) != b"\n":
                self._file.readline()  # the previous range holds this line

    def readable(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> bytes:
        if self._kind == "lines":
            if self._line >= self._stop:
                return b""
            self._line += 1
        elif self._file.tell() >= self._stop:
            return b""
        return self._file.readline()

    def close(self) -> None:
        self._file.close()
        super().close()


def open_shard(shard: ShardSpec) -> RecordSource:
    """The records of ``shard`` as a source for ``ingest`` (close it when done)."""
    if shard.kind == "file":
        stream: IO[bytes] = open(shard.path, "rb", buffering=_CHUNK)  # noqa: SIM115
    else:
        if shard.start is None or shard.stop is None:
            raise ValueError(f"shard {shard.describe()!r}: a {shard.kind} range needs start/stop")
        stream = cast(IO[bytes], _RangeReader(shard.path, shard.kind, shard.start, shard.stop))
    try:
        return RecordSource(stream, cast(Any, shard.format), name=shard.describe())
    except BaseException:
        stream.close()
        raise


def plan_shards(
    inputs: Sequence[str],
    *,
    fmt: str | None = None,
    lines_per_shard: int | None = None,
    bytes_per_shard: int | None = None,
) -> list[ShardSpec]:
    """The shards of a job: one per input file, or ranges of one large file."""
    if lines_per_shard is not None and bytes_per_shard is not None:
        raise ValueError("give lines_per_shard or bytes_per_shard, not both")
    if lines_per_shard is None and bytes_per_shard is None:
        return shards_of_files(inputs, fmt)
    if len(inputs) != 1 or not os.path.isfile(inputs[0]):
        raise ValueError("line and byte ranges split one input file: give exactly one file")
    if lines_per_shard is not None:
        return shards_of_lines(inputs[0], lines_per_shard, fmt)
    assert bytes_per_shard is not None
    return shards_of_bytes(inputs[0], bytes_per_shard, fmt)


__all__ = [
    "ShardKind",
    "ShardSpec",
    "count_lines",
    "open_shard",
    "plan_shards",
    "shards_of_bytes",
    "shards_of_files",
    "shards_of_lines",
]
