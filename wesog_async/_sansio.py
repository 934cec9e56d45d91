"""Pure HTTP logic: no I/O, no clock.

Status → exception, ``Retry-After`` parsing, query building and operation-id
extraction are plain functions, tested with tables. Write-input checking is in
:mod:`wesog_async._validate`.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC
from typing import Any
from urllib.parse import quote, urlsplit

from wesog_async import _wire as wire
from wesog_async._errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    RateLimitError,
    ServerError,
)

Query = list[tuple[str, str]]


# -- URLs --------------------------------------------------------------------


def image_path(image_id: str) -> str:
    """``/imgs/{image_id}`` with the id percent-encoded (``/`` included)."""
    return wire.PATH_IMAGE.format(image_id=quote(image_id, safe=""))


def op_path(op_id: int) -> str:
    """``/ops/{op_id}``."""
    return wire.PATH_OP.format(op_id=op_id)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_base_url(base_url: str, *, allow_insecure_http: bool = False) -> str:
    """Validate a base URL and strip its trailing slash.

    Plain ``http://`` is refused for anything but loopback unless
    ``allow_insecure_http`` is set: the API key would travel in clear.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = base_url if "@" not in parts.netloc else "<URL with credentials>"
        raise ValueError(f"base_url must be an http(s) URL with a host, got {shown!r}")
    if parts.query or parts.fragment:
        raise ValueError("base_url must not carry a query string or fragment")
    if parts.username or parts.password:
        raise ValueError("base_url must not carry credentials; pass api_key instead")
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"refusing plain http:// to non-loopback host {parts.hostname!r}: the API key "
            "would be sent unencrypted. Use https://, or pass allow_insecure_http=True."
        )
    return base_url.rstrip("/")


# -- query strings -----------------------------------------------------------


def encode_bool(value: bool) -> str:
    """The wire form of a boolean query value."""
    return "true" if value else "false"


def write_params(
    *, wait: bool, urgent: bool, strict: bool, lang: str | None, allow_lang: bool = True
) -> Query:
    """The shared write parameters. ``wait`` and ``strict`` are always sent (their
    documented defaults conflict); ``urgent`` only when set, ``lang`` only when
    given (D19)."""
    params: Query = [(wire.Q_WAIT, encode_bool(wait)), (wire.Q_STRICT, encode_bool(strict))]
    if urgent:
        params.append((wire.Q_URGENT, "true"))
    if lang is not None:
        if not allow_lang:
            raise ValueError("delete does not take lang")
        if lang not in wire.WRITE_LANGS:
            raise ValueError(f"lang must be one of {sorted(wire.WRITE_LANGS)}, got {lang!r}")
        params.append((wire.Q_LANG, lang))
    return params


def _check_choices(name: str, values: Iterable[str], allowed: frozenset[str]) -> list[str]:
    out = [values] if isinstance(values, str) else list(values)
    for value in out:
        if value not in allowed:
            raise ValueError(f"{name}: {value!r} is not one of {sorted(allowed)}")
    return out


def search_params(
    *,
    q: str | None = None,
    page: int = 1,
    limit: int | None = None,
    sort_by: str | None = None,
    sort_order: str | None = None,
    fields: Iterable[str] | None = None,
    facets: Iterable[str] | None = None,
    count: bool | None = None,
    lang: str | None = None,
    image_fields: frozenset[str] = frozenset(),
) -> Query:
    """The query of ``GET /imgs``; arrays repeat their key (section 2.2)."""
    if type(page) is not int or page < 1:
        raise ValueError(f"page must be an int >= 1, got {page!r}")
    params: Query = []
    if q:
        params.append((wire.Q_QUERY, q))
    params.append((wire.Q_PAGE, str(page)))
    if limit is not None:
        if type(limit) is not int or not 1 <= limit <= 10000:
            raise ValueError(f"limit must be an int from 1 to 10000, got {limit!r}")
        params.append((wire.Q_LIMIT, str(limit)))
    if sort_by is not None:
        _check_choices("sort_by", [sort_by], wire.SORT_FIELDS)
        params.append((wire.Q_SORT_BY, sort_by))
    if sort_order is not None:
        _check_choices("sort_order", [sort_order], wire.SORT_ORDERS)
        params.append((wire.Q_SORT_ORDER, sort_order))
    if fields is not None:
        params.extend((wire.Q_FIELDS, f) for f in _check_choices("fields", fields, image_fields))
    if facets is not None:
        params.extend((wire.Q_FACETS, f) for f in _check_choices("facets", facets, wire.FACETS))
    if count is not None:
        params.append((wire.Q_COUNT, encode_bool(count)))
    if lang is not None:
        _check_choices("lang", [lang], wire.SEARCH_LANGS)
        params.append((wire.Q_SEARCH_LANG, lang))
    return params


# -- responses ---------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds, fractional seconds,
    or an HTTP date relative to ``now``, a POSIX timestamp). ``None`` if absent
    or unreadable; never negative."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # asctime dates and "-0000" are GMT (RFC 9110)
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def parse_detail(body: bytes) -> Any:
    """The ``detail`` of an error body, or the text itself when it is not JSON."""
    try:
        data = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return body.decode("utf-8", "replace")[:500] if body else None
    if isinstance(data, Mapping) and wire.KEY_DETAIL in data:
        return data[wire.KEY_DETAIL]
    return data


def _detail_message(detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, Mapping):
                loc = ".".join(str(p) for p in item.get("loc", ()) or ())
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
            else:
                parts.append(str(item))
        return "; ".join(parts) or "validation error"
    if detail is None:
        return "no detail"
    return str(detail)


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}


def error_for_status(
    status: int,
    body: bytes,
    *,
    method: str,
    path: str,
    retry_after: float | None = None,
) -> APIStatusError:
    """The exception for a non-2xx response."""
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIStatusError
    detail = parse_detail(body)
    message = _detail_message(detail)
    if 300 <= status < 400:
        message = f"redirect not followed ({message})"
    return cls(
        message,
        status=status,
        method=method,
        path=path,
        detail=detail,
        body=body,
        retry_after=retry_after,
    )


def extract_op_id(data: Any) -> int | None:
    """The operation id of a write response (D1): ``op_id``, then ``id``, then
    ``operation_id``. Only a JSON integer counts (a numeric string is accepted
    too, since ids are opaque to the client). ``None`` when there is none."""
    if type(data) is not dict and not isinstance(data, Mapping):
        return None
    for key in wire.OP_ID_KEYS:
        value = data.get(key)
        if type(value) is int:
            return value
        if type(value) is str and value.isascii() and value.isdigit():
            return int(value)
    return None
