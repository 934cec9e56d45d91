"""The record readers under their old module path (kept for the CLI until it
imports :mod:`wesog_async.bulk.inputs`)."""

from wesog_async.bulk.inputs import (
    FORMATS,
    RecordFormat,
    RecordSource,
    ThreadedSource,
    csv_columns,
    csv_record,
    detect_format,
    open_records,
)

__all__ = [
    "FORMATS",
    "RecordFormat",
    "RecordSource",
    "ThreadedSource",
    "csv_columns",
    "csv_record",
    "detect_format",
    "open_records",
]
