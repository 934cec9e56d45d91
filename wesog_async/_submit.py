"""The submitter: a checked write goes out, its op id comes back, and a future
follows it. Shared by every write endpoint and by bulk ingestion.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from wesog_async import _jsonlib, _sansio, _telemetry
from wesog_async._attempts import status_maybe_applied
from wesog_async._convert import structure_operation
from wesog_async._errors import (
    APIStatusError,
    ClientClosedError,
    ConnectError,
    OutcomeUnknownError,
    ResponseValidationError,
    TransportError,
    carry_request_ids,
)
from wesog_async._future import OperationFuture
from wesog_async._http import Response
from wesog_async._poller import Poller, resolved
from wesog_async._retry import PollPolicy, RetryPolicy
from wesog_async._stats import ClientStats
from wesog_async._telemetry_runs import OpObs
from wesog_async._transport import Transport

WriteMethod = Literal["POST", "PUT", "PATCH", "DELETE"]

logger = logging.getLogger("wesog_async")


class Submitter:
    """Sends writes and follows operations for one client."""

    def __init__(
        self,
        transport: Transport,
        stats: ClientStats,
        poll: PollPolicy,
        *,
        raise_on_failure: bool,
        max_polls_in_flight: int,
    ) -> None:
        self.transport = transport
        self.poll_policy = poll
        self.raise_on_failure = raise_on_failure
        self._stats = stats
        self._max_polls_in_flight = max_polls_in_flight
        self._poller: Poller | None = None

    @property
    def poller(self) -> Poller:
        """The client's single poller, started lazily in the running loop."""
        self.transport.check_usable()
        if self._poller is None:
            self._poller = Poller(
                self.transport, self._stats, self.poll_policy,
                max_in_flight=self._max_polls_in_flight,
            )  # fmt: skip
        return self._poller

    def _closing(self) -> bool:
        """Whether the client began closing: no new operation is followed."""
        poller = self._poller
        return self.transport.closed or (poller is not None and poller.closing)

    @property
    def pending_count(self) -> int:
        """Operations still followed."""
        return self._poller.pending_count if self._poller is not None else 0

    async def close(self, *, drain: bool = False) -> None:
        """Stop following operations (see :meth:`Poller.close`)."""
        if self._poller is not None:
            await self._poller.close(drain=drain)

    async def submit(
        self,
        method: WriteMethod,
        path: str,
        body: Any,
        image_ids: Sequence[str],
        *,
        wait: bool,
        urgent: bool,
        strict: bool,
        lang: str | None,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
        encoded: bytes | None = None,
        response_timeout: float | None = None,
        on_throttle: Callable[[], None] | None = None,
    ) -> OperationFuture:
        """Send one checked write and return its future.

        A 2xx answer without an operation id, or an ambiguous failure of a
        write that may not be resent (``strict=True``), raises
        :class:`OutcomeUnknownError` with the image ids; a close of the client
        mid-request raises :class:`ClientClosedError` with them, and with the
        op id when the server's answer arrived while the client closed (the
        operation exists server-side, ``maybe_applied``).
        """
        params = _sansio.write_params(
            wait=wait, urgent=urgent, strict=strict, lang=lang, allow_lang=method != "DELETE"
        )
        data = encoded if encoded is not None else (None if body is None else _jsonlib.dumps(body))
        # [telemetry] the operation's span and duration start with its submit.
        started_ns = time.time_ns() if self.transport.telemetry.active else 0
        try:
            resp = await self.transport.request(
                method, path, kind="strict_write" if strict else "write",
                params=params, body=data, long_wait=wait, retry=retry,
                response_timeout=response_timeout, on_throttle=on_throttle,
            )  # fmt: skip
        except ClientClosedError as exc:
            raise carry_request_ids(
                ClientClosedError(
                    f"{exc}; {len(image_ids)} record(s) "
                    + (
                        "may or may not have been applied" if exc.maybe_applied else "were not sent"
                    ),
                    image_ids=image_ids,
                    maybe_applied=exc.maybe_applied,
                ),
                exc,
            ) from None
        except (OutcomeUnknownError, ConnectError):
            raise
        except APIStatusError as exc:
            if status_maybe_applied(exc.status):
                # A 500/502/504 left standing (strict, or past the budget): the
                # server may have applied the write. Never reported as "failed".
                raise carry_request_ids(
                    OutcomeUnknownError(
                        f"HTTP {exc.status} ({exc}); the write may or may not have been applied",
                        method=method,
                        path=path,
                        raw_body=exc.body,
                        image_ids=image_ids,
                    ),
                    exc,
                ) from exc
            exc.image_ids = tuple(image_ids)
            raise
        except TransportError as exc:
            raise carry_request_ids(
                OutcomeUnknownError(
                    f"{exc.reason}; the write may or may not have been applied",
                    method=method,
                    path=path,
                    image_ids=image_ids,
                ),
                exc,
            ) from exc
        try:
            parsed = resp.json()
        except ResponseValidationError:
            raise _with_ids(
                OutcomeUnknownError(
                    f"the server accepted the write (HTTP {resp.status}) but its body is not JSON",
                    method=method,
                    path=path,
                    raw_body=resp.body,
                    image_ids=image_ids,
                ),
                resp,
            ) from None
        op_id = _sansio.extract_op_id(parsed)
        if op_id is not None and logger.isEnabledFor(logging.DEBUG):
            _telemetry.log_submitted(method, path, op_id, resp)  # [telemetry]
        obs = (
            OpObs(
                self.transport.telemetry, method, path, len(image_ids), started_ns,
                resp.request_id, resp.server_request_id,
            )
            if started_ns
            else None
        )  # fmt: skip
        initial = None
        # A queued operation's first status says nothing the first poll will not:
        # skip structuring it (CPU and memory per pending op, BENCH W1/W3).
        queued = (
            op_id is not None
            and not wait
            and (type(parsed) is dict or isinstance(parsed, Mapping))
            and parsed.get("is_finished") is False
        )
        if (type(parsed) is dict or isinstance(parsed, Mapping)) and not queued:
            try:
                initial = structure_operation(parsed, body=resp.body)
            except ResponseValidationError:
                initial = None  # D1: a body holding only the op id is fine
        self._stats.submitted += 1
        if initial is not None and initial.is_finished:
            # D2: wait=true (or an instant server): resolved without polling,
            # even by a client closing meanwhile (the outcome is known).
            tracked = resolved(
                initial.with_op_id(op_id), tuple(image_ids), poll or self.poll_policy,
                self._stats, obs=obs,
            )  # fmt: skip
            return _future(tracked, image_ids, self.raise_on_failure, resp)
        if op_id is None:
            raise _with_ids(
                OutcomeUnknownError(
                    f"the server accepted the write (HTTP {resp.status}) but named no operation id",
                    method=method,
                    path=path,
                    raw_body=resp.body,
                    image_ids=image_ids,
                ),
                resp,
            )
        if self._closing():
            # The answer arrived while the client closes: the operation exists
            # server-side but can no longer be followed here (F20, F27).
            raise _with_ids(
                ClientClosedError(
                    f"the client closed as the server accepted the write ({method} {path}) "
                    f"as operation {op_id}; its {len(image_ids)} record(s) may or may not "
                    f"have been applied: follow it later with client.ops.follow({op_id})",
                    op_ids=[op_id],
                    image_ids=image_ids,
                    maybe_applied=True,
                ),
                resp,
            )
        tracked = self.poller.track(
            op_id,
            initial=initial.with_op_id(op_id) if initial is not None else None,
            num_total=len(image_ids),
            image_ids=tuple(image_ids),
            policy=poll,
            retry=retry,
            method=method,
            obs=obs,
        )
        return _future(tracked, image_ids, self.raise_on_failure, resp)

    def follow(
        self,
        op_id: int,
        *,
        image_ids: Sequence[str] = (),
        poll: PollPolicy | None = None,
    ) -> OperationFuture:
        """A future for an operation submitted elsewhere (not learned from)."""
        tel = self.transport.telemetry
        obs = (
            OpObs(tel, None, _sansio.op_path(op_id), len(image_ids), time.time_ns(), None, None)
            if tel.active
            else None
        )  # [telemetry]
        tracked = self.poller.track(
            op_id,
            initial=None,
            num_total=len(image_ids),
            image_ids=tuple(image_ids),
            policy=poll,
            learnable=False,
            obs=obs,
        )
        return OperationFuture(tracked, image_ids, raise_on_failure=self.raise_on_failure)


_W = TypeVar("_W", OutcomeUnknownError, ClientClosedError)


def _with_ids(error: _W, resp: Response) -> _W:
    # [telemetry] the request ids of the answered write.
    error.request_id, error.server_request_id = resp.request_id, resp.server_request_id
    return error


def _future(
    tracked: Any, image_ids: Sequence[str], raise_on_failure: bool, resp: Response
) -> OperationFuture:
    return OperationFuture(
        tracked,
        image_ids,
        raise_on_failure=raise_on_failure,
        resent=resp.resent,
        request_id=resp.request_id,
        server_request_id=resp.server_request_id,
    )


__all__ = ["Submitter", "WriteMethod"]
