"""OperationFuture: the awaitable handle of one server operation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Sequence
from typing import Any, Literal, Protocol, overload

from wesog_async._errors import OperationFailedError, OperationTimeoutError
from wesog_async._models import Operation, OperationItemError
from wesog_async._outcome import Proof, map_errors, prove


class Tracked(Protocol):
    """What a future reads of the poller's state of its operation."""

    @property
    def op_id(self) -> int | None: ...
    @property
    def future(self) -> asyncio.Future[Operation]: ...
    @property
    def latest(self) -> Operation | None: ...


TOKEN_VERSION = 1


class OperationFuture:
    """A server operation started by a write; ``await`` it for the final
    :class:`Operation`.

    Returned as soon as the server accepted the write. ``op_id`` names the
    operation, ``latest`` is the newest status seen (progress: ``num_good``,
    ``num_bad``, ``num_total``). ``image_ids`` are the ids the write covered, in
    request order: failed items are mapped back to them (:attr:`failed`).

    Awaiting never cancels the operation: cancelling one awaiter cancels only
    that awaiter. Several futures on one op share one poll stream.
    """

    __slots__ = (
        "_raise_on_failure", "_tracked", "image_ids", "request_id", "resent", "server_request_id",
    )  # fmt: skip

    def __init__(
        self,
        tracked: Tracked,
        image_ids: Sequence[str] = (),
        *,
        raise_on_failure: bool = False,
        resent: bool = False,
        request_id: str | None = None,
        server_request_id: str | None = None,
    ) -> None:
        self._tracked = tracked
        self.image_ids: tuple[str, ...] = tuple(image_ids)
        self._raise_on_failure = raise_on_failure
        #: The write was sent again after a failure that may have left the first
        #: attempt applied: the server may have run it twice (harmless for
        #: ``strict=False`` writes, which are upserts; strict ones are never resent).
        self.resent = resent
        # [telemetry]
        #: The ``X-Request-ID`` of the write that started the operation
        #: (``None`` for one followed by id).
        self.request_id = request_id
        #: The server's request id of that write, if it sent one.
        self.server_request_id = server_request_id

    def __repr__(self) -> str:
        latest = self._tracked.latest
        progress = (
            f" {latest.num_good}+{latest.num_bad}/{latest.num_total}" if latest is not None else ""
        )
        state = "done" if self.done() else "pending"
        return f"<OperationFuture op_id={self.op_id} {state}{progress}>"

    @property
    def op_id(self) -> int | None:
        """The server's operation id (``None`` only for a ``wait=True`` write whose
        answer carried none)."""
        return self._tracked.op_id

    @property
    def latest(self) -> Operation | None:
        """The newest :class:`Operation` polled, finished or not (``None`` before
        the first poll of a queued operation)."""
        return self._tracked.latest

    def done(self) -> bool:
        """True once the operation finished (or the future failed)."""
        return self._tracked.future.done()

    def _finish(self, op: Operation) -> Operation:
        if self._raise_on_failure and op.num_bad > 0:
            failed = map_errors(op, self.image_ids, op_id=self.op_id)
            raise OperationFailedError(
                f"operation {op.op_id if op.op_id is not None else self.op_id} finished with "
                f"{op.num_bad} of {op.num_total} items failed",
                op_id=self.op_id,
                operation=op,
                failed=failed,
            )
        return op

    def __await__(self) -> Generator[Any, None, Operation]:
        shared = self._tracked.future
        if not shared.done():
            # One plain waiter per awaiter, relayed by one callback: cancelling
            # the awaiter cancels only its waiter, never the shared future (what
            # asyncio.shield does, at about half the memory per pending await).
            waiter: asyncio.Future[None] = shared.get_loop().create_future()

            def relay(_: asyncio.Future[Operation]) -> None:
                if not waiter.done():
                    waiter.set_result(None)

            shared.add_done_callback(relay)
            try:
                yield from waiter
            finally:
                shared.remove_done_callback(relay)
        return self._finish(shared.result())

    async def _wait(self) -> Operation:
        return await self

    # A timeout argument, deliberately (ASYNC109): the deadline error must carry
    # the op id and last status, which a caller-side asyncio.timeout cannot add.
    async def result(self, timeout: float | None = None) -> Operation:  # noqa: ASYNC109
        """The final Operation, waiting at most ``timeout`` seconds.

        On the deadline, :class:`OperationTimeoutError` (also a ``TimeoutError``)
        carries the op id and the last status; the operation goes on and can be
        awaited again or followed by id. A deadline can also come from the
        caller: ``async with asyncio.timeout(...): await fut``.
        """
        if timeout is None:
            return await self
        try:
            async with asyncio.timeout(timeout):
                return await self
        except TimeoutError:
            latest = self._tracked.latest
            raise OperationTimeoutError(
                f"operation {self.op_id} not finished after {timeout:g}s"
                + (
                    f" ({latest.num_good + latest.num_bad}/{latest.num_total} items done)"
                    if latest is not None
                    else ""
                ),
                op_id=self.op_id,
                last_status=latest,
            ) from None

    def result_nowait(self) -> Operation:
        """The final Operation of a done future (``asyncio.InvalidStateError`` if
        it is still pending)."""
        return self._finish(self._tracked.future.result())

    def exception(self) -> BaseException | None:
        """The error of a done future, or ``None``."""
        return self._tracked.future.exception()

    def add_done_callback(self, fn: Callable[[OperationFuture], object]) -> None:
        """Call ``fn(self)`` when the operation finishes (or the future fails)."""
        self._tracked.future.add_done_callback(lambda _f: fn(self))

    @property
    def failed(self) -> tuple[OperationItemError, ...]:
        """Item errors of the latest status, in listed order, each with the
        image id it shows failed.

        For a finished status these are exactly the records :attr:`proof`
        counts failed, so a record is never both in :attr:`failed_ids` and
        :attr:`unknown_ids`, nor listed twice. An error that names no record
        of the write, repeats one, or comes with a status that proves nothing
        keeps ``image_id=None``.
        """
        latest = self._tracked.latest
        return map_errors(latest, self.image_ids, op_id=self.op_id) if latest is not None else ()

    @property
    def failed_ids(self) -> list[str]:
        """Image ids of the failed items (each once, in listed order)."""
        return [e.image_id for e in self.failed if e.image_id is not None]

    @property
    def proof(self) -> Proof:
        """What the latest status proves about each record of the write
        (see :func:`wesog_async.prove`): applied, failed, or unknown with a reason."""
        return prove(self._tracked.latest, self.image_ids, op_id=self.op_id)

    @property
    def applied_ids(self) -> list[str]:
        """Image ids the finished operation proves applied.

        Empty while pending. Ids are never guessed: when the status does not
        add up (counts that differ from the records sent, fewer listed errors
        than ``num_bad``, invalid indices, another op's status), the records it
        does not prove are in :attr:`unknown_ids` instead.
        """
        proof = self.proof
        return [self.image_ids[i] for i in proof.applied]

    @property
    def unknown_ids(self) -> list[str]:
        """Image ids whose outcome the finished status does not prove
        (:attr:`unknown_reason` says why); empty while pending."""
        if not self.done() or self.exception() is not None:
            return []
        return [self.image_ids[i] for i in self.proof.unknown if i < len(self.image_ids)]

    @property
    def unknown_reason(self) -> str | None:
        """Why some records are unknown (``None`` when the status proves them all)."""
        if not self.done() or self.exception() is not None:
            return None
        return self.proof.reason

    @property
    def succeeded(self) -> bool:
        """True only when the operation finished and its status proves the
        write applied in full: no failed item, nothing unknown, no reason for
        doubt (:attr:`proof` is proven).

        Every image id of the write must be proven applied. A future that
        knows no image ids (``client.ops.follow(op_id)``) succeeds only when
        the final status itself says all good with counts that add up
        (``num_good == num_total``, no bad item, no error listed). False while
        pending and when the future failed.
        """
        shared = self._tracked.future
        latest = self._tracked.latest
        if not shared.done() or shared.cancelled() or shared.exception() is not None:
            return False
        if latest is None or not latest.is_finished:
            return False
        if self.image_ids:
            proof = self.proof
            return proof.proven and not proof.failed and len(proof.applied) == len(self.image_ids)
        # No records known: check the status against its own count.
        proof = prove(latest, (), op_id=self.op_id, sent=latest.num_total)
        return proof.proven and not proof.failed and latest.succeeded

    def token(self) -> str:
        """A small versioned JSON token to follow this operation later
        (``client.ops.follow(token)``), e.g. after a restart."""
        return json.dumps(
            {"v": TOKEN_VERSION, "op_id": self.op_id, "image_ids": list(self.image_ids)},
            separators=(",", ":"),
        )


def parse_token(token: str) -> tuple[int, tuple[str, ...]]:
    """``(op_id, image_ids)`` from :meth:`OperationFuture.token`."""
    try:
        data = json.loads(token)
    except ValueError as exc:
        raise ValueError("not an operation token: invalid JSON") from exc
    if not isinstance(data, dict) or data.get("v") != TOKEN_VERSION:
        raise ValueError(f"not an operation token of version {TOKEN_VERSION}")
    op_id, image_ids = data.get("op_id"), data.get("image_ids", [])
    if type(op_id) is not int:
        raise ValueError("operation token without an integer op_id")
    if not isinstance(image_ids, list) or any(type(i) is not str for i in image_ids):
        raise ValueError("operation token image_ids must be a list of strings")
    return op_id, tuple(image_ids)


@overload
async def gather_operations(
    futures: Iterable[OperationFuture], *, return_exceptions: Literal[False] = False
) -> list[Operation]: ...
@overload
async def gather_operations(
    futures: Iterable[OperationFuture], *, return_exceptions: bool
) -> list[Operation | BaseException]: ...
async def gather_operations(
    futures: Iterable[OperationFuture], *, return_exceptions: bool = False
) -> list[Operation] | list[Operation | BaseException]:
    """Await every future; results in the order given.

    With ``return_exceptions=True`` a failed future contributes its exception
    instead of raising (the others are still awaited).
    """
    return list(
        await asyncio.gather(*(f._wait() for f in futures), return_exceptions=return_exceptions)
    )


async def as_completed(futures: Iterable[OperationFuture]) -> AsyncIterator[OperationFuture]:
    """Yield futures as their operations finish (fastest first)."""
    pending = list(futures)
    if not pending:
        return
    queue: asyncio.Queue[OperationFuture] = asyncio.Queue()
    for fut in pending:
        fut.add_done_callback(queue.put_nowait)
    for _ in range(len(pending)):
        yield await queue.get()
