"""The library's one cattrs converter, and the wire-format quirks it absorbs.

Tolerant where the API may vary (D21): unknown keys are ignored, missing fields
take their defaults, naive timestamps are read as UTC, unknown enum strings are
kept as plain strings. Exact where a value drives control flow: a bool must be a
JSON boolean and a number a JSON number (cattrs would otherwise turn ``"false"``
into ``True`` and ``"5"`` into ``5``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from wesog_async._errors import ResponseValidationError
from wesog_async._models import (
    Image,
    Operation,
    OperationItemError,
    OperationMethod,
    OperationResource,
    SearchPage,
    TagResult,
)

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)


def _exact_bool(value: Any, _: type) -> bool:
    if type(value) is bool:
        return value
    raise TypeError(f"expected a JSON boolean, got {value!r}")


def _exact_int(value: Any, _: type) -> int:
    if type(value) is int:
        return value
    # 3.0 is a JSON number a server may emit for an integer; "3" and True are not.
    if type(value) is float and value.is_integer():
        return int(value)
    raise TypeError(f"expected a JSON integer, got {value!r}")


def _exact_float(value: Any, _: type) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    raise TypeError(f"expected a JSON number, got {value!r}")


def _exact_str(value: Any, _: type) -> str:
    if type(value) is str:
        return value
    raise TypeError(f"expected a JSON string, got {value!r}")


def parse_timestamp(value: Any) -> datetime | None:
    """Parse an ISO-8601 timestamp; naive ones are UTC (D15)."""
    if value is None:
        return None
    if type(value) is str:
        # The common case first: what fromisoformat takes as it is (a trailing
        # "Z" included) parses as it would after the normalization below.
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    elif not isinstance(value, str):
        raise TypeError(f"expected an ISO-8601 string, got {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_METHODS: Final[dict[str, OperationMethod]] = {m.value: m for m in OperationMethod}
_RESOURCES: Final[dict[str, OperationResource]] = {r.value: r for r in OperationResource}


def _enum_or_str(values: Mapping[str, E]) -> Any:
    def hook(value: Any, _: type) -> E | str | None:
        if value is None:
            return None
        if type(value) is not str:
            raise TypeError(f"expected a JSON string, got {value!r}")
        return values.get(value, value)

    return hook


def _str_tuple(value: Any, _: type) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a JSON array of strings, got {value!r}")
    for item in value:
        if type(item) is not str:
            raise TypeError(f"expected a JSON array of strings, got item {item!r}")
    return tuple(value)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    conv.register_structure_hook(bool, _exact_bool)
    conv.register_structure_hook(int, _exact_int)
    conv.register_structure_hook(float, _exact_float)
    conv.register_structure_hook(str, _exact_str)
    conv.register_structure_hook(datetime, lambda v, _: parse_timestamp(v))
    conv.register_unstructure_hook(datetime, _format_timestamp)
    # cattrs would split a bare string into characters; only arrays are lists.
    conv.register_structure_hook_func(lambda t: t == tuple[str, ...], _str_tuple)

    conv.register_structure_hook(
        OperationItemError,
        make_dict_structure_fn(
            OperationItemError,
            conv,
            index=override(rename="id", struct_hook=_item_index),
            image_id=override(omit=True),
        ),
    )
    conv.register_unstructure_hook(
        OperationItemError,
        make_dict_unstructure_fn(
            OperationItemError, conv, index=override(rename="id"), image_id=override(omit=True)
        ),
    )
    conv.register_structure_hook(
        Operation,
        make_dict_structure_fn(
            Operation,
            conv,
            method=override(struct_hook=_enum_or_str(_METHODS)),
            resource=override(struct_hook=_enum_or_str(_RESOURCES)),
            errors=override(struct_hook=_errors_hook(conv)),
            op_id=override(struct_hook=_op_id),
            created_at=override(struct_hook=lambda v, _: parse_timestamp(v)),
            started_at=override(struct_hook=lambda v, _: parse_timestamp(v)),
            finished_at=override(struct_hook=lambda v, _: parse_timestamp(v)),
        ),
    )
    conv.register_unstructure_hook(
        Operation,
        make_dict_unstructure_fn(
            Operation,
            conv,
            method=override(unstruct_hook=_plain),
            resource=override(unstruct_hook=_plain),
        ),
    )
    return conv


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _item_index(value: Any, _: type) -> int | str | None:
    # D14 says the index; a server that sends the image id instead is tolerated.
    if value is None or type(value) is int or type(value) is str:
        return value
    raise TypeError(f"expected an integer index, got {value!r}")


def _errors_hook(conv: cattrs.Converter) -> Any:
    def hook(value: Any, _: type) -> tuple[OperationItemError, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise TypeError(f"expected a JSON array, got {value!r}")
        items, failures = [], []
        for index, item in enumerate(value):
            try:
                items.append(conv.structure(item, OperationItemError))
            except Exception as exc:
                # The note gives transform_error the position: $.errors[1].id
                exc.__notes__ = [
                    *getattr(exc, "__notes__", []),
                    IterableValidationNote(
                        f"Structuring errors @ index {index}", index, OperationItemError
                    ),
                ]
                failures.append(exc)
        if failures:
            raise IterableValidationError("invalid errors[] items", failures, list)
        return tuple(items)

    return hook


def _op_id(value: Any, _: type) -> int | None:
    # Consistent with extract_op_id: a numeric string names the same operation.
    if value is None or type(value) is int:
        return value
    if type(value) is str and value.isascii() and value.isdigit():
        return int(value)
    raise TypeError(f"expected an integer op_id, got {value!r}")


converter = _make_converter()


def _errors_of(exc: BaseException) -> list[str]:
    # Wire names in paths: OperationItemError.index is "id" on the wire.
    return [_ITEM_INDEX.sub(r"\1.id", message) for message in cattrs.transform_error(exc, path="$")]


_ITEM_INDEX = re.compile(r"(\$\.errors\[\d+\])\.index\b")


def structure(data: Any, cls: type[T], *, body: bytes | None = None, what: str = "") -> T:
    """Structure ``data`` as ``cls`` or raise :class:`ResponseValidationError`."""
    if type(data) is not dict and not isinstance(data, Mapping):
        raise ResponseValidationError(
            f"{what or cls.__name__}: expected a JSON object, got {type(data).__name__}",
            body=body,
        )
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        raise ResponseValidationError(
            f"{what or cls.__name__} does not fit the model", errors=_errors_of(exc), body=body
        ) from exc


def structure_operation(data: Any, *, body: bytes | None = None) -> Operation:
    """An :class:`Operation` from a response body, with ``op_id`` read per D1/D4."""
    return exact_operation(data) or structure(data, Operation, body=body, what="operation")


_FLAG_TYPES: Final = frozenset((bool, type(None)))


def exact_operation(data: Any) -> Operation | None:
    """The :class:`Operation` the converter makes of ``data``, built without
    cattrs when every field has exactly its JSON type (the status hot path:
    one finished status per operation); ``None`` for anything else, which the
    converter then structures or reports precisely. Same result either way
    (a property test holds the two together)."""
    if type(data) is not dict:
        return None
    get = data.get
    total, good, bad = get("num_total"), get("num_good"), get("num_bad")
    finished = get("is_finished")
    if type(total) is not int or type(good) is not int or type(bad) is not int:
        return None
    if type(finished) is not bool:
        return None
    started, all_good = get("is_started"), get("all_good")
    do_wait, do_urgent, do_strict = get("do_wait"), get("do_urgent"), get("do_strict")
    flag_types = {type(started), type(all_good), type(do_wait), type(do_urgent), type(do_strict)}
    if not flag_types <= _FLAG_TYPES:
        return None
    method, resource, op_id = get("method"), get("resource"), get("op_id")
    if (method is not None and type(method) is not str) or (
        resource is not None and type(resource) is not str
    ):
        return None
    if op_id is not None and type(op_id) is not int:
        return None
    idle_ms, exec_ms = get("idle_ms"), get("exec_ms")
    if type(idle_ms) is not float and idle_ms is not None:
        if type(idle_ms) is not int or abs(idle_ms) > 1 << 53:
            return None  # (a huge integer: float() would overflow)
        idle_ms = float(idle_ms)
    if type(exec_ms) is not float and exec_ms is not None:
        if type(exec_ms) is not int or abs(exec_ms) > 1 << 53:
            return None
        exec_ms = float(exec_ms)
    try:
        created_at = parse_timestamp(get("created_at"))
        started_at = parse_timestamp(get("started_at"))
        finished_at = parse_timestamp(get("finished_at"))
    except (TypeError, ValueError):
        return None
    raw_errors = get("errors")
    errors: tuple[OperationItemError, ...] = ()
    if raw_errors:
        if type(raw_errors) is not list:
            return None
        items = []
        for item in raw_errors:
            if type(item) is not dict or "id" not in item:
                return None
            index, msg = item["id"], item.get("msg")
            if type(msg) is not str or not (index is None or type(index) in (int, str)):
                return None
            items.append(OperationItemError(index, msg))
        errors = tuple(items)
    elif raw_errors is not None and type(raw_errors) is not list:
        return None  # an empty string or 0: the converter names it
    return Operation(
        total, good, bad, finished, started, all_good,
        None if method is None else _METHODS.get(method, method),
        None if resource is None else _RESOURCES.get(resource, resource),
        do_wait, do_urgent, do_strict, idle_ms, exec_ms, created_at, started_at, finished_at,
        errors, op_id,
    )  # fmt: skip


def pending_status(data: Any) -> Operation | None:
    """The counts and flags of an unfinished status, read with exact type checks
    and no cattrs (the poll hot path); ``None`` when the body is anything else,
    so that :func:`structure_operation` reports it precisely. Timestamps and
    errors of a pending status are not kept: the finished status has them."""
    if type(data) is not dict or data.get("is_finished") is not False:
        return None
    total, good, bad = data.get("num_total"), data.get("num_good"), data.get("num_bad")
    started, op_id = data.get("is_started"), data.get("op_id")
    if type(total) is not int or type(good) is not int or type(bad) is not int:
        return None
    if (started is not None and type(started) is not bool) or (
        op_id is not None and type(op_id) is not int
    ):
        return None
    return Operation(
        num_total=total, num_good=good, num_bad=bad, is_finished=False,
        is_started=started, op_id=op_id,
    )  # fmt: skip


def structure_image(data: Any, *, body: bytes | None = None) -> Image:
    """An :class:`Image` from a response body; unknown keys are ignored."""
    return structure(data, Image, body=body, what="image")


def structure_search_page(
    data: Any, *, page: int, limit: int | None, body: bytes | None = None
) -> SearchPage:
    """A :class:`SearchPage` from ``GET /imgs``."""
    if not isinstance(data, Mapping):
        raise ResponseValidationError("search page: expected a JSON object", body=body)
    raw_results = data.get("results")
    if raw_results is None:
        raw_results = []
    if not isinstance(raw_results, list):
        raise ResponseValidationError(
            "search page does not fit the model",
            errors=["$.results: expected an array"],
            body=body,
        )
    results = tuple(
        structure(item, Image, body=body, what=f"search result {i}")
        for i, item in enumerate(raw_results)
    )
    count = data.get("count")
    if count is not None and type(count) is not int:
        raise ResponseValidationError(
            "search page does not fit the model",
            errors=[f"$.count: expected int, got {count!r}"],
            body=body,
        )
    facets: dict[str, dict[str, int]] = {}
    raw_facets = data.get("facets") or {}
    if isinstance(raw_facets, Mapping):
        for name, values in raw_facets.items():
            if isinstance(values, Mapping):
                facets[str(name)] = {
                    str(k): v
                    for k, v in values.items()
                    if type(v) is int and not isinstance(v, bool)
                }
    return SearchPage(results=results, count=count, facets=facets, page=page, limit=limit)


def structure_tag_result(data: Any, *, body: bytes | None = None) -> TagResult:
    """A :class:`TagResult`; the whole body is kept in ``raw``."""
    if not isinstance(data, Mapping):
        raise ResponseValidationError("tag result: expected a JSON object", body=body)

    def strings(key: str) -> tuple[str, ...] | None:
        value = data.get(key)
        if isinstance(value, list):
            return tuple(str(v) for v in value)
        return None

    def text(*keys: str) -> str | None:
        for key in keys:
            value = data.get(key)
            if isinstance(value, str):
                return value
        return None

    return TagResult(
        keywords=keywords if (keywords := strings("keywords")) is not None else strings("tags"),
        caption=text("caption"),
        ocr=text("ocr", "text"),
        colors=strings("colors"),
        lang=text("lang"),
        raw=dict(data),
    )


def unstructure(value: Any) -> Any:
    """JSON-ready data from a model (wire names, ISO-8601 UTC timestamps)."""
    return converter.unstructure(value)
