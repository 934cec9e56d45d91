"""What telemetry calls things: request ids, route templates, error types.

Pure and bounded: the labels of the DEBUG line, spans and metrics
(:mod:`wesog_async._telemetry`) and the request ids the transport sends and
reads. A route template, a status class or an error type has few values; an
op id or a request id is never a metric attribute.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Final

from wesog_async import _wire as wire
from wesog_async._errors import (
    APIStatusError,
    ClientClosedError,
    ConnectError,
    ResponseTooLargeError,
    ResponseValidationError,
    TransportError,
)

_ROUTES: Final = {p: p for p in (wire.PATH_IMAGES, wire.PATH_OPS, wire.PATH_TAG)}
_OP_PREFIX: Final = wire.PATH_OP.split("{", 1)[0]
_IMAGE_PREFIX: Final = wire.PATH_IMAGE.split("{", 1)[0]


def new_request_id() -> str:
    """A short random id for the ``X-Request-ID`` header of one API call."""
    return f"{random.getrandbits(64):016x}"


#: The longest server request id kept; the rest is cut off.
MAX_SERVER_REQUEST_ID: Final = 128


def server_request_id(headers: Mapping[str, str], *, secret: str = "") -> str | None:
    """The server's request id among response ``headers``, if any.

    It is server text that goes into errors, logs and spans, so ``secret``
    (the API key) is replaced by ``<redacted>`` wherever it appears, before
    the value is cut to :data:`MAX_SERVER_REQUEST_ID` characters (cutting
    first could keep part of the key).
    """
    for name in wire.SERVER_REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            if secret and secret in value:
                value = value.replace(secret, "<redacted>")
            return value[:MAX_SERVER_REQUEST_ID]
    return None


def route_template(path: str) -> str:
    """The route template of a request path (``/ops/17`` -> ``/ops/{op_id}``)."""
    route = _ROUTES.get(path)
    if route is not None:
        return route
    if path.startswith(_OP_PREFIX):
        return wire.PATH_OP
    if path.startswith(_IMAGE_PREFIX):
        return wire.PATH_IMAGE
    return "other"


def op_id_of(path: str) -> int | None:
    """The op id in a ``/ops/{op_id}`` path, else ``None``."""
    if not path.startswith(_OP_PREFIX):
        return None
    tail = path[len(_OP_PREFIX) :]
    return int(tail) if tail.isdigit() else None


def error_type(exc: BaseException) -> str:
    """A low-cardinality name for a failure: the status code of an API error,
    else a short kind (``timeout``, ``connect_error`` ...) or the class name."""
    if isinstance(exc, APIStatusError):
        return str(exc.status)
    if isinstance(exc, ConnectError):
        return "connect_error"
    if isinstance(exc, ResponseTooLargeError):
        return "response_too_large"
    if isinstance(exc, TransportError):
        return "timeout" if exc.reason.startswith("timed out") else "connection_error"
    if isinstance(exc, ResponseValidationError):
        return "invalid_body"
    if isinstance(exc, ClientClosedError):
        return "client_closed"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return type(exc).__qualname__


def status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status is not None else "error"


__all__ = [
    "MAX_SERVER_REQUEST_ID",
    "error_type",
    "new_request_id",
    "op_id_of",
    "route_template",
    "server_request_id",
    "status_class",
]
