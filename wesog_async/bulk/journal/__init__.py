"""Journals of bulk ingestions: the interface (:mod:`.base`), the SQLite
backend (:mod:`.sqlite`) and the PostgreSQL one (:mod:`.postgres`)."""

from __future__ import annotations

import os

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
from wesog_async.bulk.journal.postgres import PostgresJournal, is_postgres_dsn
from wesog_async.bulk.journal.sqlite import Journal


def open_journal(spec: str | os.PathLike[str]) -> JournalBackend:
    """The backend a ``journal=`` path or URL names: a ``postgresql://`` URL
    is a :class:`PostgresJournal`, anything else an SQLite file."""
    if is_postgres_dsn(spec):
        return PostgresJournal(os.fspath(spec))
    return Journal(spec)


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
    "PostgresJournal",
    "open_journal",
]
