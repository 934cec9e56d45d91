"""Write-input checking: no I/O, no clock.

Image ids, write records (``image_body``: the fields, their types, their
text) and batches of ids are checked before anything is sent, and an
:class:`InvalidInputError` names the index, the field and the image id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from wesog_async import _wire as wire
from wesog_async._errors import InvalidInputError
from wesog_async._models import (
    BOOL_FIELDS,
    COMPUTED_FIELDS,
    LIST_FIELDS,
    STRING_FIELDS,
    UNSET,
    ImageInput,
)

_STRINGS = frozenset(STRING_FIELDS)
_BOOLS = frozenset(BOOL_FIELDS)
_LISTS = frozenset(LIST_FIELDS)
_COMPUTED = frozenset(COMPUTED_FIELDS)
#: Ids no image may have: URL normalisation would turn /imgs/.. into another
#: resource's path.
RESERVED_IDS: Final = frozenset((".", ".."))


def check_image_id(value: Any, *, index: int | None = None, field: str = "id") -> str:
    """An image id must be a non-empty string."""
    if type(value) is not str:
        raise InvalidInputError(
            f"must be a string, got {type(value).__name__}", field=field, index=index
        )
    if not value or not value.strip():
        raise InvalidInputError("must not be empty", field=field, index=index)
    if value in RESERVED_IDS:
        raise InvalidInputError("'.' and '..' cannot be image ids", field=field, index=index)
    if not value.isascii() and not _is_utf8_text(value):
        raise InvalidInputError(_NOT_UTF8, field=field, index=index)
    return value


_NOT_UTF8 = "is not valid UTF-8 text (a lone surrogate?)"


def _is_utf8_text(value: str) -> bool:
    """Whether ``value`` encodes as UTF-8 (a lone surrogate does not: JSON
    encoders refuse it, so it must fail here, naming the field)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_text(body: Mapping[str, Any], index: int | None, image_id: str) -> None:
    for name, value in body.items():
        for text in value if type(value) is list else (value,):
            if type(text) is str and not text.isascii() and not _is_utf8_text(text):
                raise InvalidInputError(_NOT_UTF8, field=name, index=index, image_id=image_id)


def image_body(
    record: ImageInput | Mapping[str, Any],
    *,
    require_src: bool,
    index: int | None = None,
    keep_id: bool = True,
) -> tuple[str, dict[str, Any]]:
    """Check one write record and return ``(image_id, wire body)``.

    Raises :class:`InvalidInputError` naming the index and the field. The body
    includes ``id`` when ``keep_id`` (batch calls) and leaves it out otherwise
    (single calls put it in the path).
    """
    if isinstance(record, ImageInput):
        body = record.to_dict()
    elif isinstance(record, Mapping):
        # UNSET means "leave it out", in a mapping as in an ImageInput.
        body = {k: v for k, v in record.items() if v is not UNSET}
    else:
        raise InvalidInputError(
            f"must be an ImageInput or a mapping, got {type(record).__name__}", index=index
        )
    if wire.BATCH_ID_KEY not in body:
        raise InvalidInputError("is required", field="id", index=index)
    image_id = check_image_id(body[wire.BATCH_ID_KEY], index=index)
    for name, value in body.items():
        if name == wire.BATCH_ID_KEY:
            continue
        if name in _STRINGS:
            if value is not None and type(value) is not str:
                _bad_type(name, "a string or None", value, index, image_id)
        elif name == "src":
            if type(value) is not str:
                if value is None and not require_src:
                    continue
                _bad_type(name, "a string", value, index, image_id)
            elif not value:
                raise InvalidInputError(
                    "must not be empty", field=name, index=index, image_id=image_id
                )
        elif name in _BOOLS:
            if value is not None and type(value) is not bool:
                _bad_type(name, "a bool or None", value, index, image_id)
        elif name in _LISTS:
            if value is None:
                continue
            if not isinstance(value, list | tuple) or any(type(v) is not str for v in value):
                _bad_type(name, "a list of strings or None", value, index, image_id)
            if isinstance(value, tuple):
                body[name] = list(value)
        elif name in _COMPUTED:
            raise InvalidInputError(
                "is computed by Wesog and cannot be written",
                field=name,
                index=index,
                image_id=image_id,
            )
        else:
            raise InvalidInputError(
                "is not an image field (typo?)", field=name, index=index, image_id=image_id
            )
    if require_src and "src" not in body:
        raise InvalidInputError("is required", field="src", index=index, image_id=image_id)
    _check_text(body, index, image_id)
    if not keep_id:
        del body[wire.BATCH_ID_KEY]
    return image_id, body


def _bad_type(name: str, expected: str, value: Any, index: int | None, image_id: str) -> None:
    raise InvalidInputError(
        f"must be {expected}, got {type(value).__name__} {value!r:.40}",
        field=name,
        index=index,
        image_id=image_id,
    )


def check_batch_ids(ids: Iterable[str], *, max_items: int) -> None:
    """Reject duplicate ids and over-size batches (D22)."""
    seen: dict[str, int] = {}
    count = 0
    for index, image_id in enumerate(ids):
        count += 1
        first = seen.setdefault(image_id, index)
        if first != index:
            raise InvalidInputError(
                f"duplicate id in one batch (first at index {first})",
                field="id",
                index=index,
                image_id=image_id,
            )
    if count == 0:
        raise ValueError("a batch needs at least one record")
    if count > max_items:
        raise ValueError(
            f"a batch holds at most {max_items} records, got {count}; "
            "use images.ingest() for larger inputs"
        )
