"""The in-memory image store of one tenant, with the derived values search needs.

Each stored image keeps its 30-field document (the exact JSON the API returns)
and a few values precomputed once per write (text tokens, keywords, aspect
ratio, orientation) so that a search over 100k images is one pass of a compiled
predicate without per-request parsing or copying.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import hashlib
import re
import struct
from collections.abc import Iterator, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

# The 30 fields of the Image object, in the documented order (§4.1).
IMAGE_FIELDS: Final = (
    "image_id",
    "src",
    "url_img_watermark",
    "url_img_thumbnail",
    "title",
    "headline",
    "caption",
    "alt_text",
    "ai_generated",
    "model_release",
    "property_release",
    "nsfw",
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
    "keywords",
    "categories",
    "collections",
    "height",
    "width",
    "n_faces",
)
BOOL_FIELDS: Final = frozenset({"ai_generated", "model_release", "property_release", "nsfw"})
LIST_FIELDS: Final = frozenset({"keywords", "categories", "collections"})
COMPUTED_FIELDS: Final = frozenset({"image_id", "height", "width", "n_faces"})
# Fields a request body may set (§4.2).
WRITABLE_FIELDS: Final = tuple(f for f in IMAGE_FIELDS if f not in COMPUTED_FIELDS)
STRING_FIELDS: Final = frozenset(WRITABLE_FIELDS) - BOOL_FIELDS - LIST_FIELDS
TEXT_FIELDS: Final = ("title", "headline", "caption")

_TOKEN = re.compile(r"\w+", re.UNICODE)
_WRITABLE: Final = frozenset(WRITABLE_FIELDS)
_BLANK_DOCUMENT: Final = dict.fromkeys(IMAGE_FIELDS)
_NO_TOKENS: Final[frozenset[str]] = frozenset()
_WIDTH_HEIGHT = struct.Struct(">II")
# The common shape of a reachable src, ``http(s)://host[:port]`` then a path,
# query, fragment or nothing, with a host that is not (under) ``invalid``:
# urlsplit's answer is known without calling it (it was a third of the
# emulator's CPU per record). Anything else, other schemes, user info,
# brackets, whitespace, controls and every unreachable host, takes urlsplit's
# path below.
_REACHABLE_URL = re.compile(
    r"https?://"
    r"(?!(?:[a-z0-9.-]*\.)?invalid\.*(?::[0-9]*)?(?:[/?#]|\Z))"  # not *.invalid
    r"(?=[a-z0-9.-]*[a-z0-9-])"  # a host that is more than dots
    r"[a-z0-9.-]+(?::[0-9]*)?(?=[/?#]|\Z)",
    re.IGNORECASE | re.ASCII,  # ASCII folding: a long s (U+017F) is no "s"
)


# Texts and dates repeat across a tenant's images (and the results are
# immutable): caching them makes the first search over a fresh store,
# which derives every record, several times cheaper.
_CACHE_SIZE = 16384


@functools.lru_cache(maxsize=_CACHE_SIZE)
def tokens(text: str) -> frozenset[str]:
    """Lower-cased word tokens: the unit of the emulator's text similarity."""
    return frozenset(_TOKEN.findall(text.casefold()))


def computed_values(image_id: str) -> tuple[int, int, int]:
    """``(width, height, n_faces)`` derived from the id: stable across runs."""
    digest = hashlib.sha256(image_id.encode("utf-8")).digest()
    width, height = _WIDTH_HEIGHT.unpack_from(digest)
    return 400 + width % 5601, 400 + height % 5601, digest[8] % 6


def orientation_of(width: int | None, height: int | None) -> str | None:
    """The ``orientation`` facet value for a width and height."""
    if not width or not height:
        return None
    if width > height:
        return "landscape"
    if width < height:
        return "portrait"
    return "square"


@functools.lru_cache(maxsize=_CACHE_SIZE)
def parse_date(value: str) -> dt.date | None:
    """``YEAR-MONTH-DAY`` with optional leading zeros (``2005-5-13``), else ``None``."""
    parts = value.strip().split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    try:
        return dt.date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return None


def src_is_reachable(src: str) -> bool:
    """D23: only http(s) URLs whose host does not end in ``.invalid`` are "fetched"."""
    if _REACHABLE_URL.match(src) is not None:
        return True
    try:
        parts = urlsplit(src)
    except ValueError:
        return False
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("http", "https") or not host:
        return False
    return not (host == "invalid" or host.endswith(".invalid"))


class Record:
    """One stored image: its document plus values precomputed for search."""

    __slots__ = ("aspect_ratio", "date", "doc", "keywords", "orientation", "text")

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        width, height = doc["width"], doc["height"]
        if width and height:
            self.aspect_ratio: float | None = width / height
            self.orientation = orientation_of(width, height)
        else:
            self.aspect_ratio = self.orientation = None
        date = doc["date"]
        self.date = parse_date(date) if isinstance(date, str) else None
        keywords = doc["keywords"]
        title, headline, caption = doc["title"], doc["headline"], doc["caption"]
        if keywords:
            self.keywords = frozenset(k.casefold() for k in keywords)
        else:
            self.keywords = _NO_TOKENS
        # Most bulk records carry no text at all: skip the join and the regex.
        if title or headline or caption or keywords:
            parts = [part for part in (title, headline, caption) if part]
            parts.extend(keywords or ())
            self.text = tokens(" ".join(parts))
        else:
            self.text = _NO_TOKENS


def new_document(image_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A full 30-field document: given fields set, the rest ``None`` (PUT semantics)."""
    width, height, n_faces = computed_values(image_id)
    doc: dict[str, Any] = _BLANK_DOCUMENT.copy()
    # Walk the (few) given fields, not all 26 writable ones; the key order
    # of the document is fixed by the blank copy.
    for name, value in fields.items():
        if name in _WRITABLE:
            doc[name] = list(value) if isinstance(value, list) else value
    doc["image_id"] = image_id
    doc["width"], doc["height"], doc["n_faces"] = width, height, n_faces
    return doc


class ImageStore:
    """One tenant's images, keyed by image id, in insertion order.

    A write stores the bare document; the next search builds its
    :class:`Record` (the values search needs). Bulk writes then leave no
    GC-tracked object per image behind: a Record per image is what made the
    cyclic GC's full passes, over a growing store, the biggest cost of a write.
    """

    def __init__(self) -> None:
        # A value is the bare document until a search derives its Record;
        # one dict for both keeps the store's insertion order.
        self._records: dict[str, Record | dict[str, Any]] = {}
        self._all_derived = True

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._records

    def get(self, image_id: str) -> dict[str, Any] | None:
        value = self._records.get(image_id)
        return value.doc if isinstance(value, Record) else value

    def record(self, image_id: str) -> Record | None:
        value = self._records.get(image_id)
        if value is None or isinstance(value, Record):
            return value
        record = self._records[image_id] = Record(value)
        return record

    def records(self) -> Iterator[Record]:
        """Iterate without copying; callers must not await while iterating."""
        if not self._all_derived:
            self._derive_all()
        return iter(self._records.values())  # type: ignore[arg-type]

    def _derive_all(self) -> None:
        # Deriving a big store allocates a few tracked objects per image in
        # one synchronous pass; the cyclic GC would run a full pass over the
        # growing store several times meanwhile (half the time of the pass),
        # so it waits until the pass is over. No other code runs meanwhile.
        records = self._records
        pause = gc.isenabled()
        if pause:
            gc.disable()
        try:
            for image_id, value in records.items():
                if not isinstance(value, Record):
                    # Replacing the value of an existing key is safe mid-iteration.
                    records[image_id] = Record(value)
        finally:
            if pause:
                gc.enable()
        self._all_derived = True

    def put(self, image_id: str, fields: Mapping[str, Any]) -> None:
        """Create or replace: every writable field not in ``fields`` is cleared."""
        self._records[image_id] = new_document(image_id, fields)
        self._all_derived = False

    def patch(self, image_id: str, fields: Mapping[str, Any]) -> None:
        """Change only the fields present; the image must exist."""
        old = self._records[image_id]
        doc = dict(old.doc if isinstance(old, Record) else old)
        for name, value in fields.items():
            if name in doc and name not in COMPUTED_FIELDS:
                doc[name] = list(value) if isinstance(value, list) else value
        self._records[image_id] = doc
        self._all_derived = False

    def delete(self, image_id: str) -> None:
        del self._records[image_id]

    def clear(self) -> None:
        self._records.clear()
        self._all_derived = True

    def view(self) -> Mapping[str, dict[str, Any]]:
        return _DocumentsView(self._records)


class _DocumentsView(Mapping[str, dict[str, Any]]):
    """Read-only ``{image_id: document}`` view over the live store (no copy)."""

    __slots__ = ("_records",)

    def __init__(self, records: dict[str, Record | dict[str, Any]]) -> None:
        self._records = records

    def __getitem__(self, key: str) -> dict[str, Any]:
        value = self._records[key]
        return value.doc if isinstance(value, Record) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)
