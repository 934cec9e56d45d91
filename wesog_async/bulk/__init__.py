"""Streaming bulk ingestion: :func:`ingest` and :func:`ingest_all`.

Records flow one way::

    input ─► records (check + encode) ─► batcher (count, bytes) ─► submit (≤ max_in_flight)
          ─► operations pending (≤ max_pending_ops) ─► outcomes (completion order)

* Input is consumed lazily; nothing is kept per record once its batch's outcome
  is out, except counters and the records that did not end applied.
* Each record is validated once (the checks of ``client.images.create_many``)
  and encoded once; a batch body is the join of its encoded records. Invalid
  records are never sent and do not stop the run. A second record with an id
  already in its batch is an input conflict (invalid, never resent).
* Two bounds (:mod:`.flow`): HTTP write requests in flight, and operations
  accepted but not finished. A slow consumer holds outcomes in a bounded
  queue, which holds the operations, which holds the input: backpressure all
  the way. This ingestion's own 429s halve the in-flight limit (AIMD).
* 413 splits a batch in halves (down to single records).
* A record is *applied* only when the operation's finished status proves it
  (:func:`wesog_async.prove`); a request that may have reached the server is
  never *not_sent*; every exception while submitting, following or
  classifying a batch becomes that batch's outcome (:mod:`.outcomes`).
* Fatal errors (bad API key, a ``Retry-After`` over the cap, server
  unreachable, client closed): input reading stops, pending operations
  finish, the batches not sent are reported ``not_sent``, and the error is
  raised by the iterator.

Modules: :mod:`.options`, :mod:`.records`, :mod:`.batcher`, :mod:`.flow`,
:mod:`.outcomes`, :mod:`.report`, :mod:`.journal` (interface and SQLite
backend), :mod:`.resume`, :mod:`.pipeline` (the tasks), :mod:`.stream` (the
entry points), :mod:`.inputs` (file readers) and :mod:`.types` (results).
"""

from wesog_async.bulk.inputs import RecordSource, ThreadedSource, open_records
from wesog_async.bulk.journal import Journal, JournalBackend, JournalMismatchError
from wesog_async.bulk.options import IngestKeywords, IngestOptions
from wesog_async.bulk.stream import IngestStream, IngestTarget, ingest, ingest_all
from wesog_async.bulk.types import (
    IngestMode,
    IngestReport,
    InvalidRecord,
    Outcome,
    Progress,
    RecordError,
)

__all__ = [
    "RecordSource",
    "ThreadedSource",
    "IngestKeywords",
    "IngestMode",
    "IngestOptions",
    "IngestReport",
    "IngestStream",
    "IngestTarget",
    "InvalidRecord",
    "Journal",
    "JournalBackend",
    "JournalMismatchError",
    "Outcome",
    "Progress",
    "RecordError",
    "ingest",
    "ingest_all",
    "open_records",
]
