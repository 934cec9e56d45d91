"""What a finished operation's status proves about the records of its write.

One pure decision shared by operation futures and bulk ingestion, so they can
never give two answers for one status. A record is *applied* only when the
status proves it; *failed* when the status lists an error for it; everything
else is *unknown*, with the reason.

The status proves its records when every claim checks out against what was
sent: the operation finished; it is the operation we followed (its ``op_id``,
when present, is ours); ``num_total`` (when present) and ``num_good +
num_bad`` equal the records sent; counts are not negative; ``all_good``
(when present) agrees with ``num_bad``; and the listed errors are exactly
``num_bad`` distinct, valid item indices (or ids of the batch). A status
that lists errors but fewer than ``num_bad`` (a truncated list) proves the
listed failures only: the other records are unknown. Any other
inconsistency leaves every unlisted record unknown.

Note what "applied" means for non-strict writes (D17): a replace, modify or
delete of an id the server does not hold is skipped and counted good. Use
``strict=True`` when "applied" must mean the image existed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from wesog_async._models import Operation, OperationItemError

_MAX_CACHED_POSITIONS: Final = 10_000  # a request's most records (max_batch_items' default)


@attrs.frozen
class Proof:
    """The outcome of each position (0-based, in request order) of one write.

    ``failed`` maps a position to the server's message; ``unknown`` lists the
    positions the status does not prove, and ``reason`` says why (``None``
    only when the status checks out and proves every position applied or
    failed). A reason can stand with no unknown position: a write of no
    records (a future followed by op id alone) that the status does not
    match, or listed failures covering every record of a status that does
    not add up.
    """

    applied: tuple[int, ...]
    failed: Mapping[int, str]
    unknown: tuple[int, ...]
    reason: str | None = None

    @property
    def proven(self) -> bool:
        """Whether the status checks out: every position is proven applied or
        failed and nothing gives a reason for doubt."""
        return not self.unknown and self.reason is None


@functools.lru_cache(maxsize=8)
def _cached_positions(n: int) -> tuple[int, ...]:
    return tuple(range(n))


def _all_positions(n: int) -> tuple[int, ...]:
    """Every position of a write of ``n`` records (batches repeat a few sizes:
    a tuple of 1,000 ints built per proof was its largest cost). Cached up to
    a batch's most records only, so no caller's ``sent=`` is held on to."""
    return _cached_positions(n) if n <= _MAX_CACHED_POSITIONS else tuple(range(n))


def _unknown(sent: int, failed: Mapping[int, str], reason: str) -> Proof:
    return Proof((), failed, tuple(i for i in range(sent) if i not in failed), reason)


def prove(
    op: Operation | None,
    image_ids: Sequence[str],
    *,
    op_id: int | None = None,
    sent: int | None = None,
) -> Proof:
    """What ``op`` proves about the ``sent`` records (default: ``len(image_ids)``)
    of the write followed as ``op_id``."""
    n = len(image_ids) if sent is None else sent
    if op is None or not op.is_finished:
        return _unknown(n, {}, "the operation has not finished")
    name = f"operation {op_id if op_id is not None else op.op_id}"
    if op_id is not None and op.op_id is not None and op.op_id != op_id:
        return _unknown(n, {}, f"{name}: the status is about operation {op.op_id}")
    if min(op.num_total, op.num_good, op.num_bad) < 0:
        return _unknown(n, {}, f"{name}: the status has negative counts")
    if op.num_total != n:
        return _unknown(n, {}, f"{name}: the status counts {op.num_total} items, {n} were sent")
    failed, problem = _listed_failures(op, image_ids, n)
    if op.num_good + op.num_bad != n:
        return _unknown(
            n, failed,
            f"{name}: {op.num_good} good + {op.num_bad} bad does not add up to the {n} sent",
        )  # fmt: skip
    if problem is not None:
        return _unknown(n, failed, f"{name}: {problem}")
    if op.all_good is not None and op.all_good != (op.num_bad == 0):
        return _unknown(n, failed, f"{name}: all_good={op.all_good} with {op.num_bad} bad")
    if len(failed) > op.num_bad:
        return _unknown(n, {}, f"{name}: {len(failed)} errors listed for {op.num_bad} bad")
    if len(failed) < op.num_bad:
        return _unknown(
            n, failed,
            f"{name}: {op.num_bad} bad but only {len(failed)} errors listed (truncated?)",
        )  # fmt: skip
    if not failed:
        return Proof(_all_positions(n), failed, ())
    return Proof(tuple(i for i in range(n) if i not in failed), failed, ())


def _error_positions(
    op: Operation, image_ids: Sequence[str], n: int
) -> tuple[list[int | None], str | None]:
    """The position (0-based, in request order) each listed error names, and
    what was wrong with the list, if anything.

    The one mapping of ``errors[].id`` back to the records sent (D14): an
    index into the batch, or an image id of the batch. An error naming no
    record sent, or repeating one listed before, has no position (``None``).
    """
    positions: list[int | None] = []
    seen: set[int] = set()
    problem: str | None = None
    by_id: dict[str, int] | None = None
    for err in op.errors:
        index = err.index
        position: int | None = None
        if type(index) is int:
            if 0 <= index < n:
                position = index
        elif isinstance(index, str):
            if by_id is None:
                by_id = {}
                for i, image_id in enumerate(image_ids):
                    by_id.setdefault(image_id, i)
            position = by_id.get(index)
        if position is None:
            problem = problem or f"an error names item {index!r}, not one of the {n} sent"
        elif position in seen:
            problem = problem or f"item {index!r} is listed twice"
            position = None
        else:
            seen.add(position)
        positions.append(position)
    return positions, problem


def _listed_failures(
    op: Operation, image_ids: Sequence[str], n: int
) -> tuple[dict[int, str], str | None]:
    """The listed errors by position, and what was wrong with the list, if anything."""
    positions, problem = _error_positions(op, image_ids, n)
    failed = {p: err.msg for p, err in zip(positions, op.errors, strict=True) if p is not None}
    return failed, problem


def map_errors(
    op: Operation, image_ids: Sequence[str], *, op_id: int | None = None
) -> tuple[OperationItemError, ...]:
    """``op.errors`` in listed order, each with ``image_id`` filled in when the
    status shows that record failed.

    For a finished status that is exactly :attr:`Proof.failed` of
    :func:`prove`, so a record is never both failed and unknown, nor failed
    twice; for a running one (progress so far), the listed errors that name a
    record sent, each once. An error naming no record sent, a repeat, or an
    error of a status that proves nothing (about another operation, say)
    keeps ``image_id=None``: its message is kept, but no record is blamed.
    """
    if not op.errors:
        return ()
    positions, _ = _error_positions(op, image_ids, len(image_ids))
    failed: Mapping[int, str] | set[int]
    if op.is_finished:
        failed = prove(op, image_ids, op_id=op_id).failed
    elif op_id is not None and op.op_id is not None and op.op_id != op_id:
        failed = set()
    else:
        failed = {p for p in positions if p is not None}
    return tuple(
        attrs.evolve(err, image_id=image_ids[p] if p is not None and p in failed else None)
        for p, err in zip(positions, op.errors, strict=True)
    )


__all__ = ["Proof", "map_errors", "prove"]
