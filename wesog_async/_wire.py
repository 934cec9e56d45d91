"""Every wire name the client uses: paths, query parameters, headers, JSON keys.

The public docs leave several of these open (see ``wesog-api.md`` section 0), so
they live here and nowhere else: a correction against the live API is a one-line
change.
"""

from __future__ import annotations

from typing import Final

DEFAULT_BASE_URL: Final = "https://api.wesog.com"
ENV_API_KEY: Final = "WESOG_API_KEY"
ENV_BASE_URL: Final = "WESOG_BASE_URL"

HEADER_API_KEY: Final = "API-Key"
HEADER_RETRY_AFTER: Final = "Retry-After"
# Our id of each API call (one per call, the same on its retries), and the
# headers a server's own request id is read from, first match wins.
HEADER_REQUEST_ID: Final = "X-Request-ID"
SERVER_REQUEST_ID_HEADERS: Final = ("X-Request-ID", "Request-Id")

# Paths. Image ids are percent-encoded into the path by the request builder.
PATH_IMAGES: Final = "/imgs"
PATH_IMAGE: Final = "/imgs/{image_id}"
PATH_OPS: Final = "/ops"
PATH_OP: Final = "/ops/{op_id}"
PATH_TAG: Final = "/tag/image"

# Shared write parameters (section 2.4). DELETE takes no ``lang``.
Q_WAIT: Final = "wait"
Q_URGENT: Final = "urgent"
Q_STRICT: Final = "strict"
Q_LANG: Final = "lang"

# Search parameters (section 3.1 and D20).
Q_QUERY: Final = "q"
Q_PAGE: Final = "page"
Q_LIMIT: Final = "limit"
Q_SORT_BY: Final = "sort_by"
Q_SORT_ORDER: Final = "sort_order"
Q_FIELDS: Final = "fields"
Q_FACETS: Final = "facets"
Q_COUNT: Final = "count"
Q_SEARCH_LANG: Final = "lang"

# JSON keys the client reads to find an operation id (D1): first match wins.
OP_ID_KEYS: Final = ("op_id", "id", "operation_id")
# The key that names an image inside a batch body (D9).
BATCH_ID_KEY: Final = "id"
# Keys of a search page (section 3.1).
KEY_RESULTS: Final = "results"
KEY_COUNT: Final = "count"
KEY_FACETS: Final = "facets"
KEY_DETAIL: Final = "detail"

# Values accepted by the server (section 2.4, 3.1, D19, D20).
WRITE_LANGS: Final = frozenset({"en", "es", "pt", "fr", "ru"})
SEARCH_LANGS: Final = frozenset({"ml", "en", "es"})
SORT_ORDERS: Final = frozenset({"asc", "desc"})
SORT_FIELDS: Final = frozenset(
    {
        "",
        "image_id",
        "src",
        "url_img_watermark",
        "url_img_thumbnail",
        "height",
        "width",
        "aspect_ratio",
        "n_faces",
        "date",
        "title",
        "headline",
        "caption",
        "location",
        "city",
        "country",
        "event",
        "author",
        "provider",
        "shot",
        "scene",
        "medium",
        "technique",
        "similarity",
        "sim",
    }
)
FACETS: Final = frozenset(
    {
        "ai_generated",
        "model_release",
        "property_release",
        "nsfw",
        "orientation",
        "status",
        "location",
        "city",
        "country",
        "event",
        "author",
        "provider",
        "shot",
        "scene",
        "medium",
        "technique",
        "keywords",
        "categories",
        "collections",
    }
)
TAG_MODES: Final = frozenset({"editorial", "standard"})
