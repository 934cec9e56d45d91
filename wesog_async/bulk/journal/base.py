"""What a journal stores and the interface every journal backend provides.

A journal holds one row per batch (not per record), keyed by input
positions. A row goes through::

    insert(submitting) ──accept(op id)──► accepted ──finish──► done
          │   │                                     (failed + unknown entries)
          │   ├──finish──► done      (rejected, or unknown before an op id)
          │   └──finish──► unsent    (certainly never sent)
          └──split──► replaced by its halves, each submitting

    insert(done): a span of invalid records only, final at once.

``submitting`` is stored (and awaited) before the request goes out and
``accepted`` as soon as the server names the operation, so after a crash or a
kill the journal says which batches the server may hold. A row is *done* only
when each of its records has a definite outcome or is listed as unknown: the
records of a done row that are neither failed, invalid nor unknown were
proven applied. Rows stay ``accepted`` when the run stopped following their
operation; the next run follows it again.

A journal is bound (:meth:`JournalBackend.bind`) to one destination (base URL
and tenant, identified by a hash of the API key), one mode and strictness;
each row keeps a fingerprint of the records it sent, so an edited input is
detected. A backend stores and returns rows; the bulk pipeline decides what
they mean on a resume (:mod:`wesog_async.bulk.resume`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol, runtime_checkable

import attrs

from wesog_async._errors import WesogError

# Row states.
SUBMITTING: Final = "submitting"
ACCEPTED: Final = "accepted"
DONE: Final = "done"
UNSENT: Final = "unsent"
STATES: Final = (SUBMITTING, ACCEPTED, DONE, UNSENT)

# (position, image id, field, message, conflict_with) of an invalid record.
InvalidEntry = tuple[int, str | None, str | None, str, int | None]
# (position, image id, message) of a failed record.
FailedEntry = tuple[int, str | None, str]
# (position, image id, message, op id) of a record whose outcome is unknown.
UnknownEntry = tuple[int, str | None, str, int | None]


@attrs.define(slots=True, eq=False)
class JournalRow:
    """One batch as a journal stores it.

    ``start``/``stop`` is the span of input positions; ``positions`` lists
    them for a sparse (resend) batch and is ``None`` when the batch covers the
    whole span. ``image_ids`` are the ids sent, in request order, kept until
    the row is final (they are needed to follow the operation).
    ``fingerprint`` is a hash of the encoded records sent (``sent:...``), or,
    once done, of those not failed (``kept:...``); ``resent`` marks a batch
    sent again after an unknown outcome.
    """

    row_id: int
    start: int
    stop: int
    state: str
    op_id: int | None = None
    positions: list[int] | None = None
    image_ids: list[str] | None = None
    fingerprint: str | None = None
    invalid: list[InvalidEntry] = attrs.field(factory=list)
    failed: list[FailedEntry] = attrs.field(factory=list)
    unknown: list[UnknownEntry] = attrs.field(factory=list)
    n_applied: int = 0
    resent: bool = False
    _maps: dict[str, dict[int, Any]] | None = None

    def _map(self, name: str) -> dict[int, Any]:
        if self._maps is None:
            self._maps = {
                "failed": {e[0]: e for e in self.failed},
                "invalid": {e[0]: e for e in self.invalid},
                "unknown": {e[0]: e for e in self.unknown},
            }
        return self._maps[name]

    def failed_at(self, position: int) -> FailedEntry | None:
        """The failed entry at ``position``, if that record failed."""
        entry: FailedEntry | None = self._map("failed").get(position)
        return entry

    def invalid_at(self, position: int) -> InvalidEntry | None:
        """The invalid entry at ``position``, if that record was invalid."""
        entry: InvalidEntry | None = self._map("invalid").get(position)
        return entry

    def unknown_at(self, position: int) -> UnknownEntry | None:
        """The unknown entry at ``position``, if that record's outcome is unknown."""
        entry: UnknownEntry | None = self._map("unknown").get(position)
        return entry

    def span(self) -> Sequence[int]:
        """Every input position the row covers, in order."""
        return self.positions if self.positions is not None else range(self.start, self.stop)

    def valid_positions(self) -> list[int]:
        """Input positions of the records sent, in request order."""
        bad = self._map("invalid")
        return [p for p in self.span() if p not in bad]


@attrs.frozen
class Binding:
    """What a journal belongs to: checked on every run, stored on the first.

    ``tenant`` is a hash of the API key (never the key); ``mode`` and
    ``strict`` are the write options of the ingestion.
    """

    base_url: str
    tenant: str
    mode: str
    strict: bool

    def as_dict(self) -> dict[str, str]:
        """The binding as text values, for storage."""
        return {
            "base_url": self.base_url,
            "tenant": self.tenant,
            "mode": self.mode,
            "strict": "true" if self.strict else "false",
        }


#: What to do about each binding field that differs, for the error message.
_ADVICE: Final = {
    "base_url": "a journal records what one server holds",
    "tenant": "a journal records what one tenant (API key) holds",
    "mode": "a journal records one kind of write",
    "strict": "a journal records one strictness",
    "input": "resume with the same input in the same order",
}


class JournalMismatchError(WesogError, ValueError):
    """A journal used for another destination, mode or input than its own.

    A :class:`~wesog_async.WesogError` (so ``except WesogError`` catches it)
    and a ``ValueError`` (a usage error: ``ingest_all`` and the CLI raise it,
    never store it on the report).

    ``field`` names what differs (``base_url``, ``tenant``, ``mode``,
    ``strict`` or ``input``), ``journal_value`` what the journal holds and
    ``run_value`` what this run has (a tenant is a key hash, never the key).
    Nothing is sent for a refused binding; an input mismatch stops the run at
    the first batch that differs.
    """

    def __init__(
        self, path: str, field: str, journal_value: str, run_value: str, detail: str = ""
    ) -> None:
        self.path = path
        self.field = field
        self.journal_value = journal_value
        self.run_value = run_value
        what = detail or f"the journal has {field}={journal_value!r}, this run {run_value!r}"
        super().__init__(
            f"this run does not match the journal {path!r}: {what}; "
            f"{_ADVICE.get(field, 'use the matching settings')}, or use a new journal file"
        )


#: The columns :func:`row_from_columns` reads, in its order (both backends).
ROW_COLUMNS: Final = (
    "id, start, stop, positions, state, op_id, image_ids, fingerprint, invalid, failed, "
    "unknown, n_applied, resent"
)


def encode_text(value: Any) -> str | None:
    """A list column as compact JSON text (``None`` when empty)."""
    return json.dumps(value, separators=(",", ":")) if value else None


def decode_text(value: str | None) -> Any:
    """A JSON text column (``NULL`` is ``None``)."""
    return None if value is None else json.loads(value)


def row_from_columns(r: Any) -> JournalRow:
    """A :class:`JournalRow` from the columns both backends select, in order:
    id, start, stop, positions, state, op_id, image_ids, fingerprint, invalid,
    failed, unknown, n_applied, resent (list columns as JSON text)."""
    return JournalRow(
        row_id=r[0],
        start=r[1],
        stop=r[2],
        positions=decode_text(r[3]),
        state=r[4],
        op_id=r[5],
        image_ids=decode_text(r[6]),
        fingerprint=r[7],
        invalid=[tuple(e) for e in decode_text(r[8]) or ()],
        failed=[tuple(e) for e in decode_text(r[9]) or ()],
        unknown=[tuple(e) for e in decode_text(r[10]) or ()],
        n_applied=r[11],
        resent=bool(r[12]),
    )


def nothing_sent(states: Sequence[str]) -> bool:
    """Whether rows in these states prove nothing was ever sent (all ``unsent``,
    or no row): such a journal may be bound again, to another run."""
    return all(state == UNSENT for state in states)


def check_binding(path: str, stored: Mapping[str, str], binding: Binding) -> None:
    """Raise :class:`JournalMismatchError` for the first stored field that differs."""
    for key, value in binding.as_dict().items():
        found = stored.get(key)
        if found is not None and found != value:
            detail = ""
            if key == "mode":
                detail = f"the journal belongs to a {found!r} ingestion, this run is {value!r}"
            elif key == "tenant":
                detail = "the journal was written with another API key (tenant)"
            raise JournalMismatchError(path, key, found, value, detail)


@runtime_checkable
class JournalBackend(Protocol):
    """The storage of a journal (see the module docstring for the states).

    Every method is a coroutine so that a backend may do network I/O; a write
    returns once it is durable. Writes of one ingestion are issued in order
    from one task at a time per row; a backend must keep them in that order.
    Row ids are chosen by the caller (greater than every id :meth:`bind`
    returned), so a later row wins over an earlier one for the positions
    they share.
    """

    @property
    def path(self) -> str:
        """Where the journal lives, for messages (a file path, a DSN without secrets)."""
        ...

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        ...

    async def open(self) -> None:
        """Connect (create the storage if needed); ``RuntimeError`` if already open."""
        ...

    async def close(self) -> None:
        """Disconnect (after every write returned)."""
        ...

    async def bind(self, binding: Binding) -> list[JournalRow]:
        """Check ``binding`` against the stored one (record it on first use),
        raising :class:`JournalMismatchError` on a difference; return every
        row in write (id) order."""
        ...

    async def insert(self, rows: Sequence[JournalRow]) -> None:
        """Store new rows (``submitting``, or ``done`` for invalid-only spans)."""
        ...

    async def split(self, old_row_id: int, rows: Sequence[JournalRow]) -> None:
        """Replace a row by its halves, atomically (a 413 split)."""
        ...

    async def accept(self, row_id: int, op_id: int | None) -> None:
        """The server accepted the row's batch as operation ``op_id``."""
        ...

    async def finish(self, row: JournalRow) -> None:
        """Store a row's final ``state`` (``done`` or ``unsent``) with its
        ``failed`` and ``unknown`` entries, ``n_applied``, ``resent`` and, when
        not ``None``, its new ``fingerprint`` (else the stored one stays)."""
        ...

    async def discard(self, row_ids: Sequence[int]) -> None:
        """Drop rows whose records are sent again as fresh input (``unsent``)."""
        ...

    async def summary(self) -> dict[str, Any]:
        """Counts for humans: the binding, rows by state, records applied,
        failed, invalid and unknown, and the op ids still pending."""
        ...


__all__ = [
    "ROW_COLUMNS",
    "encode_text",
    "nothing_sent",
    "decode_text",
    "row_from_columns",
    "ACCEPTED",
    "DONE",
    "STATES",
    "SUBMITTING",
    "UNSENT",
    "Binding",
    "FailedEntry",
    "InvalidEntry",
    "JournalBackend",
    "JournalMismatchError",
    "JournalRow",
    "UnknownEntry",
    "check_binding",
]
