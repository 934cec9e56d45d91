"""attrs models of the Wesog API: pure data, no I/O.

Field names are the wire names (the API is already snake_case). Response models
are frozen and slotted; fields a response may leave out (``fields=`` projection,
older servers) default to ``None``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import attrs


class Unset(enum.Enum):
    """Marker for "leave this field out of the request body".

    ``None`` means "send null" (clear the field); :data:`UNSET` means "do not
    mention it", which is what ``modify`` (PATCH) needs to change only some fields.
    """

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = Unset.UNSET

# Writable image fields by JSON type (section 4.2). ``src`` is listed apart
# because create and replace require it.
STRING_FIELDS: Final = (
    "url_img_watermark",
    "url_img_thumbnail",
    "title",
    "headline",
    "caption",
    "alt_text",
    "status",
    "date",
    "location",
    "city",
    "country",
    "event",
    "author",
    "provider",
    "shot",
    "scene",
    "technique",
    "medium",
)
BOOL_FIELDS: Final = ("ai_generated", "model_release", "property_release", "nsfw")
LIST_FIELDS: Final = ("keywords", "categories", "collections")
WRITABLE_FIELDS: Final = ("src", *STRING_FIELDS, *BOOL_FIELDS, *LIST_FIELDS)
# Computed by Wesog: present on Image, never accepted in a write body.
COMPUTED_FIELDS: Final = ("image_id", "height", "width", "n_faces")


class OperationMethod(enum.StrEnum):
    """Known values of ``Operation.method``; unknown values stay plain strings."""

    ADD = "add"
    UPD = "upd"
    DEL = "del"
    MULTIPLE = "multiple"


class OperationResource(enum.StrEnum):
    """Known values of ``Operation.resource``; unknown values stay plain strings."""

    IMAGE = "image"
    VIDEO = "video"
    CELEBS = "celebs"


@attrs.frozen(slots=True)
class Image:
    """An image as the API returns it (``GET /imgs/{id}``, search results).

    Every field may be ``None``: the API types them all nullable, and a
    ``fields=`` projection leaves the others out.
    """

    image_id: str | None = None
    src: str | None = None
    url_img_watermark: str | None = None
    url_img_thumbnail: str | None = None
    title: str | None = None
    headline: str | None = None
    caption: str | None = None
    alt_text: str | None = None
    ai_generated: bool | None = None
    model_release: bool | None = None
    property_release: bool | None = None
    nsfw: bool | None = None
    status: str | None = None
    date: str | None = None
    location: str | None = None
    city: str | None = None
    country: str | None = None
    event: str | None = None
    author: str | None = None
    provider: str | None = None
    shot: str | None = None
    scene: str | None = None
    technique: str | None = None
    medium: str | None = None
    keywords: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    collections: tuple[str, ...] | None = None
    height: int | None = None
    width: int | None = None
    n_faces: int | None = None


# Every field of the Image object, in the documented order (``fields=`` values).
IMAGE_FIELDS: Final = tuple(f.name for f in attrs.fields(Image))


def _opt_str() -> Any:
    return attrs.field(default=UNSET, kw_only=True)


@attrs.frozen(slots=True)
class ImageInput:
    """One image to write: ``id`` plus the fields to send.

    Fields left :data:`UNSET` are not sent. For ``create`` and ``replace``,
    ``src`` is required; ``replace`` clears every field not sent, ``modify``
    changes only the fields sent (``None`` clears a field).
    """

    id: str
    src: str | Unset | None = attrs.field(default=UNSET)
    url_img_watermark: str | Unset | None = _opt_str()
    url_img_thumbnail: str | Unset | None = _opt_str()
    title: str | Unset | None = _opt_str()
    headline: str | Unset | None = _opt_str()
    caption: str | Unset | None = _opt_str()
    alt_text: str | Unset | None = _opt_str()
    ai_generated: bool | Unset | None = _opt_str()
    model_release: bool | Unset | None = _opt_str()
    property_release: bool | Unset | None = _opt_str()
    nsfw: bool | Unset | None = _opt_str()
    status: str | Unset | None = _opt_str()
    date: str | Unset | None = _opt_str()
    location: str | Unset | None = _opt_str()
    city: str | Unset | None = _opt_str()
    country: str | Unset | None = _opt_str()
    event: str | Unset | None = _opt_str()
    author: str | Unset | None = _opt_str()
    provider: str | Unset | None = _opt_str()
    shot: str | Unset | None = _opt_str()
    scene: str | Unset | None = _opt_str()
    technique: str | Unset | None = _opt_str()
    medium: str | Unset | None = _opt_str()
    keywords: tuple[str, ...] | list[str] | Unset | None = _opt_str()
    categories: tuple[str, ...] | list[str] | Unset | None = _opt_str()
    collections: tuple[str, ...] | list[str] | Unset | None = _opt_str()

    def to_dict(self) -> dict[str, Any]:
        """The wire body of this record (``id`` included, unset fields left out)."""
        out: dict[str, Any] = {"id": self.id}
        for name in WRITABLE_FIELDS:
            value = getattr(self, name)
            if value is not UNSET:
                out[name] = list(value) if isinstance(value, tuple) else value
        return out


@attrs.frozen(slots=True)
class OperationItemError:
    """One failed item of an operation.

    ``index`` is the server's ``errors[].id``: the item's 0-based position in the
    request batch (D14). ``image_id`` is the id the client sent at that position,
    filled in by the client when it knows the batch.
    """

    index: int | str | None
    msg: str
    image_id: str | None = None


@attrs.frozen(slots=True)
class Operation:
    """The status of a server-side operation (``GET /ops/{op_id}``).

    ``method`` and ``resource`` are :class:`OperationMethod` /
    :class:`OperationResource` when the value is known, else the plain string.
    """

    num_total: int
    num_good: int
    num_bad: int
    is_finished: bool
    is_started: bool | None = None
    all_good: bool | None = None
    method: OperationMethod | str | None = None
    resource: OperationResource | str | None = None
    do_wait: bool | None = None
    do_urgent: bool | None = None
    do_strict: bool | None = None
    idle_ms: float | None = None
    exec_ms: float | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    errors: tuple[OperationItemError, ...] = ()
    op_id: int | None = None

    def with_op_id(self, op_id: int | None) -> Operation:
        """This status with ``op_id`` filled in when the body left it out (D4)."""
        if self.op_id is not None or op_id is None:
            return self
        return attrs.evolve(self, op_id=op_id)

    @property
    def num_done(self) -> int:
        """Items processed so far, good or bad."""
        return self.num_good + self.num_bad

    @property
    def succeeded(self) -> bool:
        """Finished, every item counted good, and nothing in the status says
        otherwise (no error listed, ``all_good`` not false). It cannot know what
        was sent: :attr:`OperationFuture.succeeded` also checks the counts
        against the records of the write."""
        return (
            self.is_finished
            and self.num_bad == 0
            and self.num_good == self.num_total
            and not self.errors
            and self.all_good is not False
        )


@attrs.frozen(slots=True)
class SearchPage:
    """One page of ``GET /imgs``.

    ``count`` is ``None`` unless the search asked for it; ``facets`` maps a facet
    name to ``{value: hit count}``.
    """

    results: tuple[Image, ...] = ()
    count: int | None = None
    facets: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict)
    page: int = 1
    limit: int | None = None


@attrs.frozen(slots=True)
class TagResult:
    """What Wesog Tag (``POST /tag/image``) found in an image.

    The response body is undocumented; known keys are parsed and the whole body
    is kept in ``raw``.
    """

    keywords: tuple[str, ...] | None = None
    caption: str | None = None
    ocr: str | None = None
    colors: tuple[str, ...] | None = None
    lang: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
