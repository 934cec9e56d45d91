"""The names :mod:`wesog_async.bulk` exports, under their old module path
(kept for the CLI and the benchmarks until they import the public names)."""

from wesog_async.bulk import (
    IngestMode,
    IngestReport,
    IngestStream,
    InvalidRecord,
    Outcome,
    Progress,
    RecordError,
    ingest,
    ingest_all,
)

__all__ = [
    "IngestMode",
    "IngestReport",
    "IngestStream",
    "InvalidRecord",
    "Outcome",
    "Progress",
    "RecordError",
    "ingest",
    "ingest_all",
]
