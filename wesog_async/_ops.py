"""Operation endpoints: get, list, cancel, and following operations by id."""

from __future__ import annotations

from collections.abc import Sequence

from wesog_async import _sansio
from wesog_async import _wire as wire
from wesog_async._convert import structure_operation
from wesog_async._errors import ResponseValidationError
from wesog_async._future import OperationFuture, parse_token
from wesog_async._models import Operation
from wesog_async._retry import PollPolicy
from wesog_async._submit import Submitter
from wesog_async._transport import Transport


class OpsAPI:
    """``client.ops``: the operation endpoints."""

    def __init__(self, transport: Transport, submitter: Submitter) -> None:
        self._transport = transport
        self._submitter = submitter

    async def get(self, op_id: int, *, response_timeout: float | None = None) -> Operation:
        """The current status of one operation (``GET /ops/{op_id}``).

        Raises :class:`NotFoundError` for an unknown (or another tenant's) id.
        ``response_timeout`` overrides the client's ``timeout=`` for this call.
        """
        _check_op_id(op_id)
        resp = await self._transport.request(
            "GET", _sansio.op_path(op_id), kind="read", response_timeout=response_timeout
        )
        return _checked(structure_operation(resp.json(), body=resp.body), op_id, resp.body)

    async def list(
        self,
        *,
        limit: int | None = None,
        page: int | None = None,
        response_timeout: float | None = None,
    ) -> list[Operation]:
        """This tenant's operations, newest first (``GET /ops``, D12).

        ``response_timeout`` overrides the client's ``timeout=`` for this call.
        """
        params: list[tuple[str, str]] = []
        if limit is not None:
            if type(limit) is not int or limit < 1:
                raise ValueError(f"limit must be a positive int, got {limit!r}")
            params.append((wire.Q_LIMIT, str(limit)))
        if page is not None:
            if type(page) is not int or page < 1:
                raise ValueError(f"page must be an int >= 1, got {page!r}")
            params.append((wire.Q_PAGE, str(page)))
        resp = await self._transport.request(
            "GET", wire.PATH_OPS, kind="read", params=params or None,
            response_timeout=response_timeout,
        )  # fmt: skip
        data = resp.json()
        # Tolerate a wrapped list ({"results": [...]}) as well as the bare array.
        if isinstance(data, dict):
            data = data.get("results", data.get("ops", data.get("operations")))
        if not isinstance(data, list):
            raise ResponseValidationError("operation list: expected a JSON array", body=resp.body)
        return [structure_operation(item, body=resp.body) for item in data]

    async def cancel(self, op_id: int, *, response_timeout: float | None = None) -> Operation:
        """Cancel an operation that has not started (``DELETE /ops/{op_id}``).

        Inferred endpoint (D13): the answer is the operation, now finished with
        every item counted bad (``cancelled``). An operation already started
        raises :class:`ConflictError`. Futures following it resolve with that
        final status at their next poll. ``response_timeout`` overrides the
        client's ``timeout=`` for this call.
        """
        _check_op_id(op_id)
        # Cancelling twice is harmless, so the request may be resent.
        resp = await self._transport.request(
            "DELETE", _sansio.op_path(op_id), kind="write", response_timeout=response_timeout
        )
        return _checked(structure_operation(resp.json(), body=resp.body), op_id, resp.body)

    def follow(
        self,
        op_id_or_token: int | str,
        *,
        image_ids: Sequence[str] = (),
        poll: PollPolicy | None = None,
    ) -> OperationFuture:
        """A future for an operation submitted elsewhere (another process, before
        a restart), by op id or by :meth:`OperationFuture.token`.

        ``image_ids`` (the ids the write covered, in request order) let failed
        items be mapped back to ids; a token carries them.
        """
        if isinstance(op_id_or_token, str):
            op_id, token_ids = parse_token(op_id_or_token)
            image_ids = image_ids or token_ids
        else:
            op_id = op_id_or_token
            _check_op_id(op_id)
        return self._submitter.follow(op_id, image_ids=image_ids, poll=poll)

    async def wait(self, op_id: int, *, timeout: float | None = None) -> Operation:  # noqa: ASYNC109
        """Follow ``op_id`` until it finishes (see :meth:`follow`)."""
        return await self.follow(op_id).result(timeout)


def _checked(op: Operation, op_id: int, body: bytes) -> Operation:
    """``op`` as the status of ``op_id``, or an error if it names another operation."""
    if op.op_id is not None and op.op_id != op_id:
        raise ResponseValidationError(
            f"asked for operation {op_id}, the server answered about operation {op.op_id}",
            body=body,
        )
    return op.with_op_id(op_id)


def _check_op_id(op_id: object) -> None:
    if type(op_id) is not int or op_id < 0:
        raise ValueError(f"op_id must be a non-negative int, got {op_id!r}")
