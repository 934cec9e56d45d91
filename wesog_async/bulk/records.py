"""Records: the validation and encoding of one record (the hot loop of a
million-record upload), pure."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

from wesog_async import _jsonlib, _validate
from wesog_async import _wire as wire
from wesog_async._errors import InvalidInputError
from wesog_async._models import BOOL_FIELDS, LIST_FIELDS, STRING_FIELDS, ImageInput
from wesog_async.bulk.types import InvalidRecord

# -- validation ----------------------------------------------------------------------

_STR, _SRC, _BOOL, _LIST, _ID = range(5)
_KINDS: Final[dict[str, int]] = {
    **dict.fromkeys(STRING_FIELDS, _STR),
    **dict.fromkeys(BOOL_FIELDS, _BOOL),
    **dict.fromkeys(LIST_FIELDS, _LIST),
    "src": _SRC,
    wire.BATCH_ID_KEY: _ID,
}
_CHECK_LINES: Final[dict[int, str]] = {
    _STR: "    if v is not None and type(v) is not str: return False",
    _BOOL: "    if v is not None and type(v) is not bool: return False",
    _ID: "    if type(v) is not str or not v or v.isspace() or v in RESERVED_IDS: return False",
    _LIST: (
        "    if v is not None:\n"
        "        if type(v) is not list: return False\n"
        "        for x in v:\n"
        "            if type(x) is not str: return False"
    ),
}
_MAX_SHAPES: Final = 256
ShapeCheck = Callable[[dict[str, Any]], bool]
PieceCheck = Callable[[list[Any]], list[str] | None]


def _never(_rec: dict[str, Any]) -> bool:
    return False


def _check_lines(
    keys: tuple[str, ...],
    require_src: bool,
    indent: str,
    *,
    with_id: bool = True,
    fail: str = "False",
) -> list[str] | None:
    """The straight-line checks of one record ``r`` (``None``: never certainly
    valid); ``with_id=False`` leaves the id to the caller; a failed check
    returns ``fail``."""
    if wire.BATCH_ID_KEY not in keys or (require_src and "src" not in keys):
        return None
    lines = []
    for key in keys:
        kind = _KINDS.get(key)
        if kind is None:
            return None  # unknown or computed field
        if kind == _ID and not with_id:
            continue
        lines.append(f"    v = r[{key!r}]")
        if kind == _SRC:
            src_ok = "type(v) is str and v"
            lines.append(
                f"    if not ({src_ok}): return False"
                if require_src
                else f"    if v is not None and not ({src_ok}): return False"
            )
        else:
            lines.append(_CHECK_LINES[kind])
    return [
        indent + line.replace("return False", f"return {fail}")
        for part in lines
        for line in part.split("\n")
    ]


# compile_check and compile_piece_check run exec once per shape and process
# (a web app ingesting small batches paid an exec per call, ~0.2 ms); each
# ingestion's Checks keeps the plain dict in front, one lookup per record.
@functools.lru_cache(maxsize=_MAX_SHAPES)
def compile_check(keys: tuple[str, ...], require_src: bool) -> ShapeCheck:
    """A validator for dicts with exactly these keys, in this order.

    The hot loop of a million-record upload: straight-line type checks, a
    subset of :func:`_validate.image_body`'s. False means "not certainly valid":
    the record then goes through ``image_body``, which names the error.
    Tuples in list fields are left to ``image_body`` too.
    """
    lines = _check_lines(keys, require_src, "")
    if lines is None:
        return _never
    namespace: dict[str, Any] = {"RESERVED_IDS": _validate.RESERVED_IDS}
    # keys are known field names, never user text
    exec("\n".join(["def check(r):", *lines, "    return True"]), namespace)
    check: ShapeCheck = namespace["check"]
    return check


@functools.lru_cache(maxsize=_MAX_SHAPES)
def compile_piece_check(keys: tuple[str, ...], require_src: bool) -> PieceCheck:
    """A validator for a whole list of records, all dicts with these keys (in
    any order: the same keys get the same checks, and each record is encoded
    in its own order either way), for the batch-at-a-time path:
    ``check(records)`` returns the records' ids, in order, when every record
    is certainly valid but for its id's value, else ``None``. One call per
    piece: the other fields are checked per record, the ids column-wise by C
    loops (type, then blank). Duplicates and the reserved ids ``''``, ``.``
    and ``..`` are left to the caller's set of the batch's ids."""
    lines = _check_lines(keys, require_src, "        ", with_id=False, fail="None")
    if lines is None:
        return _never_piece
    head = [
        "def check(rs):",
        "    try:",
        "        for r in rs:",
        # Exactly len(keys) keys, each of them read below (a missing one is a
        # KeyError): the same key set.
        f"            if type(r) is not dict or len(r) != {len(keys)}: return None",
    ]
    tail = [
        "        ids = list(map(GET_ID, rs))",  # a missing id is a KeyError
        "    except KeyError:",
        "        return None",
        "    if set(map(type, ids)) != STR or any(map(BLANK, ids)):",
        "        return None",
        "    return ids",
    ]
    namespace: dict[str, Any] = {
        "GET_ID": operator.itemgetter(wire.BATCH_ID_KEY),
        "STR": {str},
        "BLANK": str.isspace,
    }
    # keys are known field names, never user text
    exec("\n".join([*head, *lines, *tail]), namespace)
    check: PieceCheck = namespace["check"]
    return check


def _never_piece(_recs: list[Any]) -> list[str] | None:
    return None


class Checks:
    """Compiled validators by record shape (key order), bounded: the hot
    path's dict in front of the per-process caches of :func:`compile_check`
    and :func:`compile_piece_check`."""

    def __init__(self, require_src: bool) -> None:
        self.require_src = require_src
        self.by_shape: dict[tuple[str, ...], ShapeCheck] = {}
        self.pieces: dict[tuple[str, ...], PieceCheck] = {}

    def compile(self, shape: tuple[str, ...]) -> ShapeCheck:
        check = compile_check(shape, self.require_src)
        if len(self.by_shape) < _MAX_SHAPES:
            self.by_shape[shape] = check
        return check

    def compile_piece(self, shape: tuple[str, ...]) -> PieceCheck:
        check = compile_piece_check(shape, self.require_src)
        if len(self.pieces) < _MAX_SHAPES:
            self.pieces[shape] = check
        return check


def loose_id(rec: Any) -> str | None:
    """The id of a record without validating it (for messages and checks)."""
    if type(rec) is str:
        return rec
    if isinstance(rec, ImageInput):
        value: Any = rec.id
    elif isinstance(rec, Mapping):
        value = rec.get(wire.BATCH_ID_KEY)
    elif isinstance(rec, InvalidRecord):
        value = rec.image_id
    else:
        return None
    return value if type(value) is str else None


class Encoder:
    """Checks and encodes one record for one mode (``encode``: id and JSON bytes,
    or :class:`InvalidInputError` naming the field)."""

    __slots__ = ("checks", "encode", "require_src")

    def __init__(self, mode: str) -> None:
        self.require_src = mode in ("create", "replace")
        #: The compiled fast checks (``None`` for delete, whose records are ids).
        self.checks = None if mode == "delete" else Checks(self.require_src)
        self.encode: Callable[[Any, int], tuple[str, bytes]] = (
            self._encode_delete if mode == "delete" else self._encode_image
        )

    def _encode_image(self, rec: Any, pos: int) -> tuple[str, bytes]:
        checks = self.checks
        if type(rec) is dict and checks is not None:
            shape = tuple(rec)
            check = checks.by_shape.get(shape) or checks.compile(shape)
            if check(rec):
                image_id: str = rec[wire.BATCH_ID_KEY]
                try:
                    return image_id, _jsonlib.dumps(rec)
                except (TypeError, ValueError):
                    pass  # not valid UTF-8 (a lone surrogate): image_body names the field
        if isinstance(rec, InvalidRecord):
            raise InvalidInputError(rec.message, field=rec.field, index=pos, image_id=rec.image_id)
        image_id, body = _validate.image_body(rec, require_src=self.require_src, index=pos)
        return image_id, _jsonlib.dumps(body)

    def _encode_delete(self, rec: Any, pos: int) -> tuple[str, bytes]:
        if type(rec) is str:
            return _validate.check_image_id(rec, index=pos), _jsonlib.dumps(rec)
        if isinstance(rec, InvalidRecord):
            raise InvalidInputError(rec.message, field=rec.field, index=pos, image_id=rec.image_id)
        if isinstance(rec, ImageInput):
            value: Any = rec.id
        elif isinstance(rec, Mapping):
            if wire.BATCH_ID_KEY not in rec:
                raise InvalidInputError("is required", field="id", index=pos)
            value = rec[wire.BATCH_ID_KEY]
        else:
            value = rec
        image_id = _validate.check_image_id(value, index=pos)
        return image_id, _jsonlib.dumps(image_id)


__all__ = [
    "Checks",
    "Encoder",
    "PieceCheck",
    "ShapeCheck",
    "compile_check",
    "compile_piece_check",
    "loose_id",
]
