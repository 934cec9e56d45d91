"""What a batch's end means for each of its records (pure: no I/O).

A finished operation is classified by :func:`wesog_async._outcome.prove`,
the one decision shared with operation futures: a record is applied only when
the status proves it. A batch whose submit raised is classified by
:func:`submit_bucket`: *unknown* whenever the request may have been sent.
"""

from __future__ import annotations

from typing import Final, Literal

from wesog_async import _attempts
from wesog_async._errors import (
    APIStatusError,
    AuthenticationError,
    ClientClosedError,
    ConnectError,
    RateLimitError,
    TransportError,
    WesogError,
)
from wesog_async._models import Operation
from wesog_async._outcome import prove
from wesog_async.bulk.batcher import Batch
from wesog_async.bulk.types import Outcome, RecordError

Bucket = Literal["failed", "unknown", "not_sent"]
UNKNOWN_PREFIX: Final = "outcome unknown: "


def is_fatal(exc: BaseException, cap: float) -> bool:
    """Errors after which no further batch can succeed."""
    if isinstance(exc, AuthenticationError | ConnectError | ClientClosedError):
        return True
    return isinstance(exc, RateLimitError) and exc.retry_after is not None and exc.retry_after > cap


def describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, WesogError) else f"{type(exc).__name__}: {exc}"


def submit_bucket(exc: BaseException, cap: float) -> Bucket:
    """The records of a batch whose submit raised ``exc``.

    *unknown* when the request may have been sent (:func:`_attempts.maybe_applied`,
    :attr:`ClientClosedError.maybe_applied`, or any unexpected exception);
    otherwise *not_sent* after a fatal error (the run stops there: bad key,
    unreachable server, closed client, a ``Retry-After`` over the cap) and
    *failed* for a rejection (4xx, or 429/503 after the retries).
    """
    if isinstance(exc, ClientClosedError):
        maybe = exc.maybe_applied
    elif isinstance(exc, APIStatusError | TransportError):
        maybe = _attempts.maybe_applied(exc)
    else:
        maybe = True  # a bug, or a close mid-request: the request may have left
    if maybe:
        return "unknown"
    if is_fatal(exc, cap) or not isinstance(exc, APIStatusError):
        return "not_sent"
    return "failed"


def record_errors(
    batch: Batch, message: str, op_id: int | None, offsets: range | list[int] | None = None
) -> tuple[RecordError, ...]:
    """One :class:`RecordError` per record sent (or at ``offsets``), with ``message``."""
    ids, positions = batch.image_ids, batch.id_positions()
    chosen = range(len(ids)) if offsets is None else offsets
    return tuple(
        RecordError(positions[i], ids[i], message, op_id=op_id, record=batch.record_at(i))
        for i in chosen
    )


def from_operation(batch: Batch, op: Operation, *, elapsed: float = 0.0) -> Outcome:
    """The outcome of a batch whose operation ``op`` finished (``batch.op_id``
    is the operation followed)."""
    ids = batch.image_ids
    op_id = batch.op_id if batch.op_id is not None else op.op_id
    proof = prove(op, ids, op_id=batch.op_id)
    failed: tuple[RecordError, ...] = ()
    if proof.failed:
        positions = batch.id_positions()
        failed = tuple(
            RecordError(positions[i], ids[i], msg, op_id=op_id, record=batch.record_at(i))
            for i, msg in sorted(proof.failed.items())
        )
    unknown: tuple[RecordError, ...] = ()
    if proof.unknown:
        unknown = record_errors(
            batch, f"{UNKNOWN_PREFIX}{proof.reason}", op_id, list(proof.unknown)
        )
    applied = tuple(ids) if len(proof.applied) == len(ids) else tuple(ids[i] for i in proof.applied)
    return Outcome(
        batch.number, op_id, op, batch.positions(),
        applied_ids=applied, failed=failed, invalid=tuple(batch.invalid), unknown=unknown,
        elapsed=elapsed, resumed=batch.resumed, resent=batch.resent,
    )  # fmt: skip


def from_failure(
    batch: Batch,
    bucket: Bucket,
    message: str,
    *,
    op_id: int | None = None,
    error: BaseException | None = None,
    elapsed: float = 0.0,
) -> Outcome:
    """Every record of ``batch`` in ``bucket`` with ``message`` (prefixed for unknown)."""
    if bucket == "unknown" and not message.startswith(UNKNOWN_PREFIX):
        message = UNKNOWN_PREFIX + message
    records = record_errors(batch, message, op_id)
    return carry_prior(
        batch,
        Outcome(
            batch.number, op_id, None, batch.positions(),
            failed=records if bucket == "failed" else (),
            invalid=tuple(batch.invalid),
            unknown=records if bucket == "unknown" else (),
            not_sent=records if bucket == "not_sent" else (),
            error=error, elapsed=elapsed, resumed=batch.resumed, resent=batch.resent,
        ),
    )  # fmt: skip


def carry_prior(batch: Batch, outcome: Outcome) -> Outcome:
    """A resend that never reached the server leaves its records as an earlier
    run reported them: a record unknown then (it may have been applied) is not
    turned into ``not_sent`` now."""
    if not batch.prior or not outcome.not_sent:
        return outcome
    not_sent: list[RecordError] = []
    unknown, failed = list(outcome.unknown), list(outcome.failed)
    for e in outcome.not_sent:
        bucket, before = batch.prior.get(e.position, ("not_sent", e))
        {"unknown": unknown, "failed": failed, "not_sent": not_sent}[bucket].append(
            before if bucket != "not_sent" else e
        )
    return Outcome(
        outcome.batch, outcome.op_id, outcome.operation, outcome.positions,
        applied_ids=outcome.applied_ids, failed=tuple(failed), invalid=outcome.invalid,
        unknown=tuple(unknown), not_sent=tuple(not_sent), error=outcome.error,
        elapsed=outcome.elapsed, resumed=outcome.resumed, resent=outcome.resent,
    )  # fmt: skip


__all__ = [
    "Bucket",
    "carry_prior",
    "describe",
    "from_failure",
    "from_operation",
    "is_fatal",
    "record_errors",
    "submit_bucket",
]
