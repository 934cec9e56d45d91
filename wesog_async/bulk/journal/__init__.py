"""Journals of bulk ingestions: the interface (:mod:`.base`) and the SQLite
backend (:mod:`.sqlite`)."""

from wesog_async.bulk.journal.base import (
    ACCEPTED,
    DONE,
    SUBMITTING,
    UNSENT,
    Binding,
    JournalBackend,
    JournalMismatchError,
    JournalRow,
)
from wesog_async.bulk.journal.sqlite import Journal

__all__ = [
    "ACCEPTED",
    "DONE",
    "SUBMITTING",
    "UNSENT",
    "Binding",
    "Journal",
    "JournalBackend",
    "JournalMismatchError",
    "JournalRow",
]
