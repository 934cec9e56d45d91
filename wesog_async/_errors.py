"""The exceptions wesog_async raises.

::

    WesogError                     every error raised on purpose; .request_id .server_request_id
    ├── InvalidInputError          a record fails validation, nothing sent (also a ValueError)
    ├── TransportError             no usable response (connect, reset, timeout)
    │   ├── ConnectError           the connection failed: nothing was sent
    │   ├── OutcomeUnknownError    a write may or may not have been applied; .image_ids
    │   └── ResponseTooLargeError  a body passed its route's size cap; .limit
    ├── APIStatusError             non-2xx; .status .detail .retry_after (.image_ids of a write)
    │   ├── BadRequestError        400 / 413 / 422 (.errors keeps FastAPI's loc/msg/type list)
    │   ├── AuthenticationError    401 / 403
    │   ├── NotFoundError          404
    │   ├── ConflictError          409
    │   ├── RateLimitError         429
    │   └── ServerError            5xx left after the retries (a read; a 503 on a write)
    ├── ResponseValidationError    a 2xx body that does not fit the model
    ├── OperationError             about one operation; .op_id
    │   ├── OperationTimeoutError  your deadline passed (also a TimeoutError)
    │   ├── OperationFailedError   finished with failed items (raise_on_failure=True)
    │   └── OperationNotFoundError the server answered 404 for the op
    └── ClientClosedError          the client closed: operations pending (.op_ids),
                                   or a write cut off (.image_ids .maybe_applied)

Bulk ingestion adds one, defined with its journal: ``JournalMismatchError``
(a ``WesogError`` and a ``ValueError``), a journal of another run.

No aiohttp, cattrs or tenacity exception escapes: they are chained with
``raise ... from``. No error carries request headers, so the API key never
appears in an error, its repr or its traceback.

An error that came from a request carries ``request_id`` (the ``X-Request-ID``
this client sent) and ``server_request_id`` (the server's, if it sent one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from wesog_async._models import Operation, OperationItemError

_BODY_PREVIEW = 500


def _preview(body: bytes | str | None) -> str:
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text if len(text) <= _BODY_PREVIEW else text[:_BODY_PREVIEW] + "…"


def _restore(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    obj = cls.__new__(cls)
    BaseException.__init__(obj, *args)
    obj.__dict__.update(state)
    return obj


class WesogError(Exception):
    """Base class of every error wesog_async raises on purpose."""

    # [telemetry] Request ids, set by the transport on errors of a request.
    #: The ``X-Request-ID`` this client sent with the failed call (``None`` when
    #: the error did not come from a request).
    request_id: str | None = None
    #: The server's request id (``X-Request-ID`` / ``Request-Id``), if it sent one.
    server_request_id: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors defeat Exception's default pickling, which
        # process pools and some task queues rely on.
        return (_restore, (type(self), self.args, self.__dict__))


class InvalidInputError(WesogError, ValueError):
    """A record the caller passed is invalid; nothing was sent.

    ``index`` is its position in the caller's batch or stream (``None`` for a
    single-record call), ``field`` the offending field.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        index: int | None = None,
        image_id: str | None = None,
    ) -> None:
        where = f"record {index}" if index is not None else "record"
        if image_id is not None:
            where += f" (id {image_id!r})"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")
        self.reason = message
        self.field = field
        self.index = index
        self.image_id = image_id


class TransportError(WesogError):
    """The request got no usable HTTP response (connect error, reset, timeout)."""

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(f"{method} {path}: {message}" if method else message)
        self.reason = message
        self.method = method
        self.path = path


class ConnectError(TransportError):
    """The connection could not be made: the request certainly never arrived."""


class OutcomeUnknownError(TransportError):
    """A write was sent but its outcome is unknown, and resending it is unsafe.

    Raised for a ``strict=True`` write at once after an ambiguous failure
    (reset after the body was sent, read timeout, 500/502/504), for a
    ``strict=False`` write when such a failure still stands after the retries,
    and for any write answered 2xx without an operation id or with a body that
    is not JSON. ``raw_body`` holds what the server answered, if anything.
    Check the images (``get``) before resending a strict write.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        raw_body: bytes | None = None,
        image_ids: Sequence[str] = (),
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.raw_body = raw_body
        self.image_ids = tuple(image_ids)


class APIStatusError(WesogError):
    """The server answered with a non-2xx status.

    ``detail`` is the parsed ``detail`` of the body (a string, or FastAPI's list
    of ``{loc, msg, type}``), ``retry_after`` the server's hint in seconds.
    """

    #: The records of the write the status answered (empty for reads).
    image_ids: tuple[str, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str = "",
        path: str = "",
        detail: Any = None,
        body: bytes | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{method} {path} -> {status}: {message}" if method else message)
        self.status = status
        self.method = method
        self.path = path
        self.detail = detail
        self.body = body
        self.retry_after = retry_after

    @property
    def errors(self) -> list[Mapping[str, Any]]:
        """FastAPI's per-field validation items (``loc``, ``msg``, ``type``), if any."""
        if isinstance(self.detail, list):
            return [d for d in self.detail if isinstance(d, Mapping)]
        return []


class BadRequestError(APIStatusError):
    """400, 413 or 422: the server rejected the request's content."""


class AuthenticationError(APIStatusError):
    """401 or 403: the API key is missing, wrong or not allowed."""


class NotFoundError(APIStatusError):
    """404: no such image or operation (for this API key)."""


class ConflictError(APIStatusError):
    """409: the request conflicts with the resource's state (e.g. cancel after start)."""


class RateLimitError(APIStatusError):
    """429: too many requests; ``retry_after`` says when to come back."""


class ServerError(APIStatusError):
    """5xx: the server failed."""


class ResponseValidationError(WesogError):
    """A 2xx response whose body does not fit the expected model.

    ``errors`` lists the offending fields (``"$.num_good: expected int"``);
    ``body`` is the raw body.
    """

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[str] = (),
        body: bytes | None = None,
        op_id: int | None = None,
    ) -> None:
        detail = f"{message}: {'; '.join(errors)}" if errors else message
        if body is not None and not errors:
            detail += f" (body: {_preview(body)!r})"
        if op_id is not None:
            detail = f"operation {op_id}: {detail}"
        super().__init__(detail)
        self.errors = tuple(errors)
        self.body = body
        #: The operation whose status body was invalid, when polling.
        self.op_id = op_id


class OperationError(WesogError):
    """Something about one server operation; ``op_id`` names it."""

    def __init__(self, message: str, *, op_id: int | None) -> None:
        super().__init__(message)
        self.op_id = op_id


class OperationTimeoutError(OperationError, TimeoutError):
    """The caller's deadline passed before the operation finished.

    The operation goes on server-side and can still be followed by id;
    ``last_status`` is the last :class:`Operation` seen (``None`` if none).
    """

    def __init__(self, message: str, *, op_id: int | None, last_status: Operation | None) -> None:
        super().__init__(message, op_id=op_id)
        self.last_status = last_status


class OperationFailedError(OperationError):
    """The operation finished with failed items (raised only when asked to)."""

    def __init__(
        self,
        message: str,
        *,
        op_id: int | None,
        operation: Operation,
        failed: Sequence[OperationItemError],
    ) -> None:
        super().__init__(message, op_id=op_id)
        self.operation = operation
        self.failed = tuple(failed)

    @property
    def failed_ids(self) -> list[str]:
        """Image ids of the failed items, where the client knows them."""
        return [e.image_id for e in self.failed if e.image_id is not None]


class OperationNotFoundError(OperationError):
    """The server answered 404 for the operation; ``image_ids`` are the records it held."""

    def __init__(self, message: str, *, op_id: int | None, image_ids: Sequence[str] = ()) -> None:
        super().__init__(message, op_id=op_id)
        self.image_ids = tuple(image_ids)


class ClientClosedError(WesogError):
    """The client was closed while operations or requests were still pending.

    ``op_ids`` lists pending operations; they go on server-side and can be
    followed later (``client.ops.follow(op_id)``). For a write cut off by the
    close, ``image_ids`` are its records and ``maybe_applied`` tells whether
    the request had left (its outcome is then unknown); a write the server
    accepted as the client closed also names its operation in ``op_ids``.
    """

    def __init__(
        self,
        message: str,
        *,
        op_ids: Sequence[int | None] = (),
        image_ids: Sequence[str] = (),
        maybe_applied: bool = False,
    ) -> None:
        super().__init__(message)
        self.op_ids = tuple(op_ids)
        self.image_ids = tuple(image_ids)
        self.maybe_applied = maybe_applied


class ResponseTooLargeError(TransportError):
    """A response body passed the size cap of its route (checked while reading,
    after decompression); ``limit`` is the cap in bytes."""

    def __init__(self, message: str, *, method: str = "", path: str = "", limit: int) -> None:
        super().__init__(message, method=method, path=path)
        self.limit = limit


_E = TypeVar("_E", bound=BaseException)


def carry_request_ids(error: _E, source: BaseException | None) -> _E:
    """``error`` given the request ids of ``source``, the error it wraps."""
    if isinstance(error, WesogError) and isinstance(source, WesogError):
        if error.request_id is None:
            error.request_id = source.request_id
        if error.server_request_id is None:
            error.server_request_id = source.server_request_id
    return error
