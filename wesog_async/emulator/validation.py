"""Request validation that answers like FastAPI/pydantic v2 (D6).

Errors are collected into a list of ``{"type", "loc", "msg", "input"}`` dicts
and raised together as :class:`RequestValidationError` (a 422). Body fields are
checked strictly (a string where a boolean is expected is an error); boolean
*query* parameters accept FastAPI's spellings (``true/false/1/0/yes/no/on/off``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from wesog_async.emulator.store import BOOL_FIELDS, LIST_FIELDS, STRING_FIELDS, WRITABLE_FIELDS

Loc = tuple[str | int, ...]

_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})

WRITE_LANGS = ("en", "es", "pt", "fr", "ru")  # D19

# Position of each writable field, to check a body's few fields in the
# documented order without probing all 26 names per image.
_WRITABLE_INDEX = {name: i for i, name in enumerate(WRITABLE_FIELDS)}

_fast_loads: Callable[[bytes], Any] | None
try:  # orjson is an optional speed-up (the ``speedups`` extra)
    import orjson

    _fast_loads = orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads = None

# The exact type of each writable field's value in a body that needs no
# error: what JSON decodes to, so ``type(...) is`` is the whole check.
_FIELD_TYPES: dict[str, Any] = {
    name: bool if name in BOOL_FIELDS else list if name in LIST_FIELDS else str
    for name in WRITABLE_FIELDS
}

# orjson turns integers beyond 64 bits into floats where json keeps them exact;
# a body with a run of 20 digits anywhere is left to json. (Mapping every digit
# to 0 and looking for twenty 0s is some 25 times cheaper than a regex.)
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 20


class RequestValidationError(Exception):
    """A 422 whose ``detail`` is the FastAPI error list."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(detail)} validation error(s)")
        self.detail = detail


def _expected(allowed: Sequence[str]) -> str:
    quoted = [f"'{a}'" for a in allowed]
    if len(quoted) == 1:
        return quoted[0]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def add_enum_error(errors: Errors, loc: Loc, allowed: Sequence[str], value: Any) -> None:
    expected = _expected(allowed)
    errors.add("enum", loc, f"Input should be {expected}", value, expected=expected)


class Errors:
    """Collects validation errors; :meth:`raise_if_any` turns them into a 422."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, type_: str, loc: Loc, msg: str, value: Any = None, **ctx: Any) -> None:
        error: dict[str, Any] = {"type": type_, "loc": list(loc), "msg": msg}
        # Echo scalar inputs like pydantic does; skip containers, which can be huge.
        if not isinstance(value, (dict, list)):
            error["input"] = value
        if ctx:
            error["ctx"] = ctx
        self.items.append(error)

    def raise_if_any(self) -> None:
        if self.items:
            raise RequestValidationError(self.items)


# -- query parameters ---------------------------------------------------------
def query_bool(errors: Errors, query: Mapping[str, str], name: str, default: bool) -> bool:
    raw = query.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    errors.add(
        "bool_parsing",
        ("query", name),
        "Input should be a valid boolean, unable to interpret input",
        raw,
    )
    return default


def query_int(
    errors: Errors,
    query: Mapping[str, str],
    name: str,
    default: int,
    *,
    ge: int | None = None,
    le: int | None = None,
) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        errors.add(
            "int_parsing",
            ("query", name),
            "Input should be a valid integer, unable to parse string as an integer",
            raw,
        )
        return default
    if ge is not None and value < ge:
        errors.add(
            "greater_than_equal",
            ("query", name),
            f"Input should be greater than or equal to {ge}",
            raw,
            ge=ge,
        )
        return default
    if le is not None and value > le:
        errors.add(
            "less_than_equal",
            ("query", name),
            f"Input should be less than or equal to {le}",
            raw,
            le=le,
        )
        return default
    return value


def query_enum(
    errors: Errors, query: Mapping[str, str], name: str, allowed: Sequence[str], default: str | None
) -> str | None:
    raw = query.get(name)
    if raw is None:
        return default
    if raw not in allowed:
        add_enum_error(errors, ("query", name), allowed, raw)
        return default
    return raw


def query_enum_list(
    errors: Errors, values: Iterable[str], name: str, allowed: Collection[str]
) -> list[str]:
    """A repeated query parameter (``fields=a&fields=b``) checked against ``allowed``."""
    result: list[str] = []
    ordered = sorted(allowed) if not isinstance(allowed, Sequence) else allowed
    for i, value in enumerate(values):
        if value in allowed:
            result.append(value)
        else:
            add_enum_error(errors, ("query", name, i), ordered, value)
    return result


# -- JSON bodies ----------------------------------------------------------------
def parse_json(errors: Errors, raw: bytes) -> Any:
    """Decode a JSON body; an empty body is a missing body."""
    if not raw or raw.isspace():
        errors.add("missing", ("body",), "Field required", None)
        errors.raise_if_any()
    if _fast_loads is not None and _LONG_NUMBER not in raw.translate(_DIGITS_TO_ZERO):
        # orjson accepts a subset of what json does and decodes it to the same
        # values; anything it refuses (NaN, BOMs, UTF-16, lone surrogates,
        # errors) goes to json, whose answers and messages are the contract.
        try:
            return _fast_loads(raw)
        except ValueError:
            pass
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        errors.add("json_invalid", ("body", 0), "JSON decode error", None, error="not UTF-8")
    except json.JSONDecodeError as exc:
        errors.add("json_invalid", ("body", exc.pos), "JSON decode error", None, error=exc.msg)
    errors.raise_if_any()
    return None  # pragma: no cover - raise_if_any always raises here


def image_fields(
    errors: Errors,
    obj: Any,
    loc: Loc,
    *,
    need_id: bool,
    need_src: bool,
) -> tuple[str | None, dict[str, Any]]:
    """Validate one image object; return ``(id or None, writable fields present)``.

    Unknown keys (and the computed ``image_id``/``width``/``height``/``n_faces``)
    are ignored, as pydantic does by default.
    """
    if not isinstance(obj, dict):
        errors.add(
            "model_attributes_type",
            loc,
            "Input should be a valid dictionary or object to extract fields from",
            obj,
        )
        return None, {}
    image_id: str | None = None
    if need_id:
        raw_id = obj.get("id")
        if "id" not in obj:
            errors.add("missing", (*loc, "id"), "Field required", None)
        elif not isinstance(raw_id, str):
            errors.add("string_type", (*loc, "id"), "Input should be a valid string", raw_id)
        elif not raw_id:
            errors.add(
                "string_too_short",
                (*loc, "id"),
                "String should have at least 1 character",
                raw_id,
                min_length=1,
            )
        else:
            image_id = raw_id
    fields: dict[str, Any] = {}
    if need_src and "src" not in obj:
        errors.add("missing", (*loc, "src"), "Field required", None)
    present = [name for name in obj if name in _WRITABLE_INDEX]
    if len(present) > 1:
        present.sort(key=_WRITABLE_INDEX.__getitem__)
    for name in present:
        value = obj[name]
        if value is None:
            if name == "src" and need_src:
                errors.add("string_type", (*loc, name), "Input should be a valid string", value)
            else:
                fields[name] = None
            continue
        if name in STRING_FIELDS and not isinstance(value, str):
            errors.add("string_type", (*loc, name), "Input should be a valid string", value)
        elif name in BOOL_FIELDS and not isinstance(value, bool):
            errors.add("bool_type", (*loc, name), "Input should be a valid boolean", value)
        elif name in LIST_FIELDS:
            if not isinstance(value, list):
                errors.add("list_type", (*loc, name), "Input should be a valid list", value)
                continue
            bad = [i for i, v in enumerate(value) if not isinstance(v, str)]
            for i in bad:
                errors.add(
                    "string_type", (*loc, name, i), "Input should be a valid string", value[i]
                )
            if not bad:
                fields[name] = value
        else:
            fields[name] = value
    return image_id, fields


def clean_fields(obj: dict[str, Any], *, need_src: bool) -> dict[str, Any] | None:
    """The writable fields of ``obj`` when :func:`image_fields` would find no
    error in them, else ``None`` (then call it for the errors).

    The fast path of a batch: one pass over the keys the object has, exact
    type checks, no error bookkeeping. ``id`` is not checked here.
    """
    if len(obj) == 2 and "id" in obj:  # the commonest record: {"id", "src"}
        src = obj.get("src")
        if type(src) is str:
            return {"src": src}
    fields: dict[str, Any] = {}
    for name, value in obj.items():
        expected = _FIELD_TYPES.get(name)
        if expected is None:
            continue  # unknown or computed: ignored
        if type(value) is not expected:
            if value is not None or (need_src and name == "src"):
                return None
        elif expected is list and not all(type(v) is str for v in value):
            return None
        fields[name] = value
    if need_src and "src" not in fields:
        return None
    return fields


def batch(errors: Errors, body: Any, max_items: int) -> list[Any]:
    """The body must be a JSON array of at most ``max_items`` elements (D22)."""
    if not isinstance(body, list):
        errors.add("list_type", ("body",), "Input should be a valid list", body)
        errors.raise_if_any()
        return []
    if len(body) > max_items:
        errors.add(
            "too_long",
            ("body",),
            f"List should have at most {max_items} items after validation, not {len(body)}",
            None,
            field_type="List",
            max_length=max_items,
            actual_length=len(body),
        )
        errors.raise_if_any()
    return body


def delete_ids(errors: Errors, body: list[Any]) -> list[str]:
    """D10: ``["id", ...]``; ``[{"id": ...}, ...]`` is accepted too."""
    ids: list[str] = []
    for i, element in enumerate(body):
        value = element.get("id") if isinstance(element, dict) else element
        loc: Loc = ("body", i, "id") if isinstance(element, dict) else ("body", i)
        if isinstance(element, dict) and "id" not in element:
            errors.add("missing", loc, "Field required", None)
        elif not isinstance(value, str):
            errors.add("string_type", loc, "Input should be a valid string", value)
        elif not value:
            errors.add(
                "string_too_short",
                loc,
                "String should have at least 1 character",
                value,
                min_length=1,
            )
        else:
            ids.append(value)
    return ids
