"""Table tests of the pure logic in ``wesog_async._sansio`` and ``_validate`` (no I/O, no clock)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote

import pytest
from yarl import URL

from wesog_async import UNSET, ImageInput
from wesog_async._errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    RateLimitError,
    ServerError,
)
from wesog_async._models import BOOL_FIELDS, IMAGE_FIELDS, LIST_FIELDS, STRING_FIELDS
from wesog_async._sansio import (
    error_for_status,
    extract_op_id,
    image_path,
    is_loopback_host,
    normalize_base_url,
    op_path,
    parse_detail,
    parse_retry_after,
    search_params,
    write_params,
)
from wesog_async._validate import check_batch_ids, check_image_id, image_body

BASE = "https://api.wesog.com"


# -- URLs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_id", "expected"),
    [
        ("img1", "/imgs/img1"),
        ("a/b", "/imgs/a%2Fb"),
        ("/leading", "/imgs/%2Fleading"),
        ("with space", "/imgs/with%20space"),
        ("é", "/imgs/%C3%A9"),
        ("日本", "/imgs/%E6%97%A5%E6%9C%AC"),
        ("q?x=1#f", "/imgs/q%3Fx%3D1%23f"),
        ("100%", "/imgs/100%25"),
        ("a+b", "/imgs/a%2Bb"),
        ("x&y;z", "/imgs/x%26y%3Bz"),
    ],
)
def test_image_path_encodes_the_whole_id_into_one_segment(image_id: str, expected: str) -> None:
    assert image_path(image_id) == expected


@pytest.mark.parametrize(
    "image_id", ["a/b", "a b", "é/ü", "%2F", "q?x#y", "a\\b", "~user", "a..b", "...", "😀"]
)
def test_image_path_survives_url_parsing(image_id: str) -> None:
    """What aiohttp (yarl) would request names exactly the id, in one segment."""
    url = URL(BASE + image_path(image_id))
    segment = url.raw_path.removeprefix("/imgs/")
    assert url.raw_path.startswith("/imgs/")
    assert "/" not in segment
    assert unquote(segment) == image_id


@pytest.mark.parametrize("image_id", [".", ".."])
def test_dot_segment_ids_are_rejected_or_survive_url_parsing(image_id: str) -> None:
    try:
        check_image_id(image_id)
        path = image_path(image_id)
    except ValueError:
        return
    assert unquote(URL(BASE + path).raw_path) == f"/imgs/{image_id}"


def test_op_path() -> None:
    assert op_path(42) == "/ops/42"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("api.localhost", True),
        ("127.0.0.1", True),
        ("127.255.3.4", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("192.168.1.1", False),
        ("::", False),
        ("api.wesog.com", False),
        ("localhost.example.com", False),
        ("notlocalhost", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, expected: bool) -> None:
    assert is_loopback_host(host) is expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.wesog.com", "https://api.wesog.com"),
        ("https://api.wesog.com/", "https://api.wesog.com"),
        ("https://api.wesog.com/v1//", "https://api.wesog.com/v1"),
        ("https://10.0.0.1:8443", "https://10.0.0.1:8443"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://localhost:9000", "http://localhost:9000"),
        ("http://[::1]:9000/", "http://[::1]:9000"),
        ("HTTP://127.0.0.1", "HTTP://127.0.0.1"),
    ],
)
def test_normalize_base_url_accepts(url: str, expected: str) -> None:
    assert normalize_base_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://api.wesog.com",
        "http://api.wesog.com/",
        "http://10.0.0.1:8080",
        "http://0.0.0.0:8080",
        "HTTP://api.wesog.com",
        "http://localhost.example.com",
    ],
)
def test_normalize_base_url_refuses_plain_http_to_non_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="allow_insecure_http"):
        normalize_base_url(url)
    assert normalize_base_url(url, allow_insecure_http=True) == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("ftp://api.wesog.com", "http"),
        ("api.wesog.com", "http"),
        ("https://", "host"),
        ("", "http"),
        ("https://api.wesog.com/?x=1", "query"),
        ("https://api.wesog.com/#frag", "fragment"),
    ],
)
def test_normalize_base_url_rejects_malformed(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        normalize_base_url(url, allow_insecure_http=True)


def test_normalize_base_url_rejects_credentials_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="credentials") as info:
        normalize_base_url("https://user:s3cr3t-canary@api.wesog.com")
    assert "s3cr3t-canary" not in str(info.value)


# -- write parameters --------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"wait": False, "urgent": False, "strict": False, "lang": None},
            [("wait", "false"), ("strict", "false")],
        ),
        (
            {"wait": True, "urgent": False, "strict": True, "lang": None},
            [("wait", "true"), ("strict", "true")],
        ),
        (
            {"wait": False, "urgent": True, "strict": False, "lang": None},
            [("wait", "false"), ("strict", "false"), ("urgent", "true")],
        ),
        (
            {"wait": False, "urgent": False, "strict": False, "lang": "en"},
            [("wait", "false"), ("strict", "false"), ("lang", "en")],
        ),
        (
            {"wait": True, "urgent": True, "strict": True, "lang": "ru"},
            [("wait", "true"), ("strict", "true"), ("urgent", "true"), ("lang", "ru")],
        ),
        (
            {"wait": False, "urgent": False, "strict": True, "lang": None, "allow_lang": False},
            [("wait", "false"), ("strict", "true")],
        ),
    ],
)
def test_write_params(kwargs: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert write_params(**kwargs) == expected


@pytest.mark.parametrize("lang", ["en", "es", "pt", "fr", "ru"])
def test_write_params_accepts_every_documented_lang(lang: str) -> None:
    params = write_params(wait=False, urgent=False, strict=False, lang=lang)
    assert params[-1] == ("lang", lang)


@pytest.mark.parametrize("lang", ["de", "EN", "", "ml", "en-US", " en"])
def test_write_params_rejects_unknown_lang(lang: str) -> None:
    with pytest.raises(ValueError, match="lang"):
        write_params(wait=False, urgent=False, strict=False, lang=lang)


def test_write_params_refuses_lang_for_delete() -> None:
    with pytest.raises(ValueError, match="delete"):
        write_params(wait=False, urgent=False, strict=False, lang="en", allow_lang=False)


# -- search parameters -------------------------------------------------------

_FIELDS = frozenset(IMAGE_FIELDS)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, [("page", "1")]),
        ({"q": "cats"}, [("q", "cats"), ("page", "1")]),
        ({"q": ""}, [("page", "1")]),
        ({"page": 3, "limit": 50}, [("page", "3"), ("limit", "50")]),
        ({"limit": 1}, [("page", "1"), ("limit", "1")]),
        ({"limit": 10000}, [("page", "1"), ("limit", "10000")]),
        (
            {"sort_by": "date", "sort_order": "desc"},
            [("page", "1"), ("sort_by", "date"), ("sort_order", "desc")],
        ),
        ({"sort_order": "asc"}, [("page", "1"), ("sort_order", "asc")]),
        (
            {"fields": ["title", "src", "height"]},
            [("page", "1"), ("fields", "title"), ("fields", "src"), ("fields", "height")],
        ),
        ({"fields": "title"}, [("page", "1"), ("fields", "title")]),
        ({"fields": []}, [("page", "1")]),
        (
            {"facets": ("city", "keywords")},
            [("page", "1"), ("facets", "city"), ("facets", "keywords")],
        ),
        ({"facets": "nsfw"}, [("page", "1"), ("facets", "nsfw")]),
        ({"count": True}, [("page", "1"), ("count", "true")]),
        ({"count": False}, [("page", "1"), ("count", "false")]),
        ({"lang": "ml"}, [("page", "1"), ("lang", "ml")]),
        (
            {
                "q": "dog",
                "page": 2,
                "limit": 10,
                "sort_by": "title",
                "sort_order": "asc",
                "fields": ["image_id"],
                "facets": ["city"],
                "count": True,
                "lang": "en",
            },
            [
                ("q", "dog"),
                ("page", "2"),
                ("limit", "10"),
                ("sort_by", "title"),
                ("sort_order", "asc"),
                ("fields", "image_id"),
                ("facets", "city"),
                ("count", "true"),
                ("lang", "en"),
            ],
        ),
    ],
)
def test_search_params(kwargs: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert search_params(image_fields=_FIELDS, **kwargs) == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"page": 0}, "page"),
        ({"page": -1}, "page"),
        ({"page": True}, "page"),
        ({"page": 1.0}, "page"),
        ({"page": "2"}, "page"),
        ({"limit": 0}, "limit"),
        ({"limit": 10001}, "limit"),
        ({"limit": True}, "limit"),
        ({"limit": "5"}, "limit"),
        ({"limit": 5.0}, "limit"),
        ({"sort_by": "nope"}, "sort_by"),
        ({"sort_by": "DATE"}, "sort_by"),
        ({"sort_order": "ASC"}, "sort_order"),
        ({"sort_order": "up"}, "sort_order"),
        ({"fields": ["title", "titel"]}, "fields"),
        ({"fields": "titel"}, "fields"),
        ({"facets": ["city", "height"]}, "facets"),
        ({"facets": "nope"}, "facets"),
        ({"lang": "fr"}, "lang"),
        ({"lang": ""}, "lang"),
    ],
)
def test_search_params_rejects(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        search_params(image_fields=_FIELDS, **kwargs)


def test_search_params_fields_are_checked_against_the_given_image_fields() -> None:
    with pytest.raises(ValueError, match="fields"):
        search_params(fields=["title"], image_fields=frozenset({"src"}))


# -- Retry-After -------------------------------------------------------------

NOW = 1_800_000_000.0  # a fixed "now" (POSIX seconds); the helper reads no clock


def _http_date(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(ts, UTC), usegmt=True)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("0", 0.0),
        ("5", 5.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
        ("120", 120.0),
        ("-5", 0.0),
        ("-0.5", 0.0),
        ("garbage", None),
        ("5 seconds", None),
        ("nan", None),
        ("NaN", None),
        ("inf", None),
        ("-inf", None),
        ("Infinity", None),
        ("1e999", None),
        (_http_date(NOW + 30), 30.0),
        (_http_date(NOW + 3600), 3600.0),
        (_http_date(NOW - 60), 0.0),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 0.0),
        ("Thu, 32 Foo 2026 25:61:00 GMT", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    result = parse_retry_after(header, now=NOW)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_parse_retry_after_http_date_is_relative_to_now() -> None:
    header = _http_date(NOW + 100)
    assert parse_retry_after(header, now=NOW) == pytest.approx(100.0)
    assert parse_retry_after(header, now=NOW + 40) == pytest.approx(60.0)
    assert parse_retry_after(header, now=NOW + 1000) == 0.0


@pytest.fixture
def local_time_is_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "EST+05")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_is_not_utc")
@pytest.mark.parametrize("header", ["Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 -0000"])
def test_parse_retry_after_zoneless_http_date_is_gmt(header: str) -> None:
    when = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC).timestamp()
    assert parse_retry_after(header, now=when - 10) == pytest.approx(10.0)


# -- error bodies and status mapping -----------------------------------------

FASTAPI_DETAIL = [
    {"loc": ["body", 0, "src"], "msg": "field required", "type": "value_error.missing"},
    {"loc": ["query", "limit"], "msg": "must be <= 10000", "type": "value_error"},
]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"detail": "Not authenticated"}', "Not authenticated"),
        (json.dumps({"detail": FASTAPI_DETAIL}).encode(), FASTAPI_DETAIL),
        (b'{"detail": null}', None),
        (b'{"message": "oops"}', {"message": "oops"}),
        (b"[1, 2]", [1, 2]),
        (b"null", None),
        (b"", None),
        (b"Bad Gateway", "Bad Gateway"),
        (b"<html>502</html>", "<html>502</html>"),
        (b"\xff\xfe not utf8", "\ufffd\ufffd not utf8"),
    ],
)
def test_parse_detail(body: bytes, expected: Any) -> None:
    assert parse_detail(body) == expected


def test_parse_detail_truncates_long_text() -> None:
    assert parse_detail(b"x" * 10_000) == "x" * 500


def test_error_for_status_survives_a_deeply_nested_body() -> None:
    err = error_for_status(502, b"[" * 100_000, method="GET", path="/ops/1")
    assert isinstance(err, ServerError)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (413, BadRequestError),
        (422, BadRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (409, ConflictError),
        (429, RateLimitError),
        (500, ServerError),
        (501, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (599, ServerError),
        (402, APIStatusError),
        (405, APIStatusError),
        (410, APIStatusError),
        (418, APIStatusError),
        (451, APIStatusError),
        (301, APIStatusError),
        (302, APIStatusError),
        (307, APIStatusError),
        (308, APIStatusError),
    ],
)
def test_error_for_status_class(status: int, cls: type[APIStatusError]) -> None:
    body = b'{"detail": "something"}'
    err = error_for_status(status, body, method="POST", path="/imgs", retry_after=None)
    assert type(err) is cls
    assert err.status == status
    assert err.method == "POST"
    assert err.path == "/imgs"
    assert err.detail == "something"
    assert err.body == body
    assert err.retry_after is None
    assert str(err).startswith(f"POST /imgs -> {status}: ")
    assert "something" in str(err)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_error_for_status_redirect_says_not_followed(status: int) -> None:
    err = error_for_status(status, b"", method="GET", path="/ops/1")
    assert type(err) is APIStatusError
    assert "redirect" in str(err)


@pytest.mark.parametrize("status", [400, 422])
def test_error_for_status_keeps_fastapi_detail_list(status: int) -> None:
    body = json.dumps({"detail": FASTAPI_DETAIL}).encode()
    err = error_for_status(status, body, method="POST", path="/imgs")
    assert isinstance(err, BadRequestError)
    assert err.detail == FASTAPI_DETAIL
    assert err.errors == FASTAPI_DETAIL
    assert "body.0.src: field required" in str(err)
    assert "query.limit: must be <= 10000" in str(err)


def test_error_for_status_errors_skips_non_mapping_items() -> None:
    body = json.dumps({"detail": ["plain", {"msg": "no loc"}]}).encode()
    err = error_for_status(422, body, method="POST", path="/imgs")
    assert err.errors == [{"msg": "no loc"}]
    assert "plain" in str(err)
    assert "no loc" in str(err)


def test_error_for_status_string_detail_has_no_errors() -> None:
    err = error_for_status(400, b'{"detail": "bad"}', method="POST", path="/imgs")
    assert err.errors == []


def test_error_for_status_429_carries_retry_after() -> None:
    err = error_for_status(429, b"", method="GET", path="/ops/3", retry_after=2.5)
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 2.5
    assert "no detail" in str(err)


def test_error_for_status_non_json_body_is_kept_as_text() -> None:
    err = error_for_status(503, b"Service Unavailable", method="GET", path="/ops/3")
    assert isinstance(err, ServerError)
    assert err.detail == "Service Unavailable"
    assert "Service Unavailable" in str(err)


# -- operation ids (D1) ------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"op_id": 7}, 7),
        ({"id": 8}, 8),
        ({"operation_id": 9}, 9),
        ({"op_id": 0}, 0),
        ({"op_id": 1, "id": 2, "operation_id": 3}, 1),
        ({"id": 2, "operation_id": 3}, 2),
        ({"op_id": 5, "num_total": 3, "is_finished": False, "errors": [{"id": 0}]}, 5),
        ({"op_id": "42"}, 42),
        ({"id": "0012"}, 12),
        ({"op_id": True}, None),
        ({"op_id": False}, None),
        ({"op_id": True, "id": 4}, 4),
        ({"op_id": 1.0}, None),
        ({"op_id": None}, None),
        ({"op_id": ""}, None),
        ({"op_id": "-1"}, None),
        ({"op_id": " 5"}, None),
        ({"op_id": "4.0"}, None),
        ({"op_id": "abc"}, None),
        ({"op_id": [1]}, None),
        ({"op_id": {"id": 1}}, None),
        ({"operationId": 3}, None),
        ({}, None),
        ([{"op_id": 1}], None),
        ("7", None),
        (7, None),
        (None, None),
    ],
)
def test_extract_op_id(data: Any, expected: int | None) -> None:
    result = extract_op_id(data)
    assert result == expected
    assert result is None or type(result) is int


@pytest.mark.parametrize("value", ["²", "١٢", "4²"])
def test_extract_op_id_only_reads_ascii_digit_strings(value: str) -> None:
    assert extract_op_id({"op_id": value}) is None


# -- write input (F21) -------------------------------------------------------


def _invalid(
    exc: pytest.ExceptionInfo[InvalidInputError], *, index: int | None, field: str
) -> None:
    err = exc.value
    assert isinstance(err, ValueError)
    assert err.index == index
    assert err.field == field
    if index is not None:
        assert f"record {index}" in str(err)
    assert f"field {field!r}" in str(err)


@pytest.mark.parametrize("value", ["a", "img-1", "a/b", " padded ", "é"])
def test_check_image_id_accepts(value: str) -> None:
    assert check_image_id(value) is value


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (5, "must be a string, got int"),
        (None, "must be a string, got NoneType"),
        (b"a", "must be a string, got bytes"),
        (["a"], "must be a string, got list"),
        (True, "must be a string, got bool"),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("\t\n", "must not be empty"),
    ],
)
def test_check_image_id_rejects(value: Any, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match) as exc:
        check_image_id(value, index=4)
    _invalid(exc, index=4, field="id")


def test_check_image_id_names_the_given_field() -> None:
    with pytest.raises(InvalidInputError) as exc:
        check_image_id("", field="image_id")
    _invalid(exc, index=None, field="image_id")


def test_image_body_create_keeps_id_for_batches() -> None:
    record = {"id": "a", "src": "https://x/1.jpg", "title": "T", "nsfw": False}
    image_id, body = image_body(record, require_src=True, index=0)
    assert image_id == "a"
    assert body == record
    assert body is not record


def test_image_body_single_call_leaves_id_out() -> None:
    record = {"id": "a", "src": "https://x/1.jpg"}
    image_id, body = image_body(record, require_src=True, keep_id=False)
    assert image_id == "a"
    assert body == {"src": "https://x/1.jpg"}
    assert record == {"id": "a", "src": "https://x/1.jpg"}


def test_image_body_accepts_every_writable_field() -> None:
    record: dict[str, Any] = {"id": "a", "src": "https://x/1.jpg"}
    record |= {name: f"v-{name}" for name in STRING_FIELDS}
    record |= dict.fromkeys(BOOL_FIELDS, True)
    record |= {name: ["k1", "k2"] for name in LIST_FIELDS}
    _, body = image_body(record, require_src=True)
    assert body == record


def test_image_body_accepts_none_for_clearable_fields() -> None:
    record: dict[str, Any] = {"id": "a", "src": "https://x/1.jpg"}
    record |= dict.fromkeys((*STRING_FIELDS, *BOOL_FIELDS, *LIST_FIELDS))
    _, body = image_body(record, require_src=True)
    assert body == record


def test_image_body_turns_tuples_into_lists_without_touching_the_input() -> None:
    record = {"id": "a", "src": "s", "keywords": ("x", "y")}
    _, body = image_body(record, require_src=True)
    assert body["keywords"] == ["x", "y"]
    assert record["keywords"] == ("x", "y")


def test_image_body_modify_does_not_require_src() -> None:
    assert image_body({"id": "a", "title": "t"}, require_src=False) == (
        "a",
        {"id": "a", "title": "t"},
    )
    assert image_body({"id": "a", "src": None}, require_src=False)[1] == {"id": "a", "src": None}


@pytest.mark.parametrize(
    ("record", "require_src", "field", "match"),
    [
        ({"id": "a"}, True, "src", "is required"),
        ({"id": "a", "title": "t"}, True, "src", "is required"),
        ({"id": "a", "src": None}, True, "src", "must be a string"),
        ({"id": "a", "src": ""}, True, "src", "must not be empty"),
        ({"id": "a", "src": ""}, False, "src", "must not be empty"),
        ({"id": "a", "src": 5}, True, "src", "must be a string"),
        ({"id": "a", "src": b"https://x"}, False, "src", "must be a string"),
        ({"src": "s"}, True, "id", "is required"),
        ({"id": 5, "src": "s"}, True, "id", "must be a string"),
        ({"id": None, "src": "s"}, True, "id", "must be a string"),
        ({"id": "", "src": "s"}, True, "id", "must not be empty"),
        ({"id": "  ", "src": "s"}, True, "id", "must not be empty"),
        ({"id": "a", "src": "s", "title": 5}, True, "title", "a string or None"),
        ({"id": "a", "src": "s", "date": 20260101}, True, "date", "a string or None"),
        ({"id": "a", "src": "s", "caption": ["x"]}, True, "caption", "a string or None"),
        ({"id": "a", "src": "s", "nsfw": "true"}, True, "nsfw", "a bool or None"),
        ({"id": "a", "src": "s", "nsfw": 1}, True, "nsfw", "a bool or None"),
        ({"id": "a", "src": "s", "ai_generated": 0}, False, "ai_generated", "a bool or None"),
        ({"id": "a", "src": "s", "keywords": "a,b"}, True, "keywords", "a list of strings"),
        ({"id": "a", "src": "s", "keywords": [1]}, True, "keywords", "a list of strings"),
        ({"id": "a", "src": "s", "keywords": ["a", None]}, True, "keywords", "list of strings"),
        ({"id": "a", "src": "s", "categories": {"a"}}, True, "categories", "list of strings"),
        ({"id": "a", "src": "s", "collections": ("a", 2)}, True, "collections", "of strings"),
        ({"id": "a", "src": "s", "height": 10}, True, "height", "computed"),
        ({"id": "a", "src": "s", "width": 10}, True, "width", "computed"),
        ({"id": "a", "src": "s", "n_faces": 1}, False, "n_faces", "computed"),
        ({"id": "a", "src": "s", "image_id": "a"}, True, "image_id", "computed"),
        ({"id": "a", "src": "s", "titel": "t"}, True, "titel", "not an image field"),
        ({"id": "a", "src": "s", "aspect_ratio": 1.5}, True, "aspect_ratio", "not an image"),
    ],
)
def test_image_body_rejects(
    record: dict[str, Any], require_src: bool, field: str, match: str
) -> None:
    with pytest.raises(InvalidInputError, match=match) as exc:
        image_body(record, require_src=require_src, index=7)
    _invalid(exc, index=7, field=field)


def test_image_body_error_names_the_image_id_when_known() -> None:
    with pytest.raises(InvalidInputError) as exc:
        image_body({"id": "cat-1", "src": "s", "nsfw": "no"}, require_src=True, index=3)
    assert exc.value.image_id == "cat-1"
    assert "'cat-1'" in str(exc.value)


def test_image_body_bad_type_message_shows_a_short_value() -> None:
    with pytest.raises(InvalidInputError) as exc:
        image_body({"id": "a", "src": "s", "title": 12345}, require_src=True, index=0)
    assert "int 12345" in str(exc.value)
    with pytest.raises(InvalidInputError) as exc:
        image_body({"id": "a", "src": "s", "keywords": "x" * 1000}, require_src=True, index=0)
    assert len(str(exc.value)) < 200


@pytest.mark.parametrize("record", ["a", 5, None, ["id", "a"], ("a", "s")])
def test_image_body_rejects_non_records(record: Any) -> None:
    with pytest.raises(InvalidInputError, match="ImageInput or a mapping") as exc:
        image_body(record, require_src=True, index=2)
    assert exc.value.index == 2
    assert "record 2" in str(exc.value)


def test_image_body_single_record_error_has_no_index() -> None:
    with pytest.raises(InvalidInputError) as exc:
        image_body({"id": "a"}, require_src=True, keep_id=False)
    _invalid(exc, index=None, field="src")
    assert str(exc.value).startswith("record (id 'a'), field 'src'")


# ImageInput: UNSET is left out, None is sent as null.


def test_image_input_unset_fields_are_left_out() -> None:
    record = ImageInput(id="a", src="https://x/1.jpg", title="T")
    assert record.title == "T"
    assert record.caption is UNSET
    _, body = image_body(record, require_src=True)
    assert body == {"id": "a", "src": "https://x/1.jpg", "title": "T"}


def test_image_input_none_is_sent_as_null() -> None:
    record = ImageInput(id="a", caption=None, nsfw=None, keywords=None)
    _, body = image_body(record, require_src=False, keep_id=False)
    assert body == {"caption": None, "nsfw": None, "keywords": None}


def test_image_input_tuples_are_sent_as_lists() -> None:
    record = ImageInput(id="a", src="s", keywords=("x", "y"), categories=["c"])
    _, body = image_body(record, require_src=True)
    assert body["keywords"] == ["x", "y"]
    assert body["categories"] == ["c"]


def test_image_input_src_is_required_for_create() -> None:
    with pytest.raises(InvalidInputError) as exc:
        image_body(ImageInput(id="a", title="t"), require_src=True, index=1)
    _invalid(exc, index=1, field="src")


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (ImageInput(id=5, src="s"), "id"),  # type: ignore[arg-type]
        (ImageInput(id="", src="s"), "id"),
        (ImageInput(id="a", src="s", nsfw="yes"), "nsfw"),  # type: ignore[arg-type]
        (ImageInput(id="a", src="s", title=3), "title"),  # type: ignore[arg-type]
        (ImageInput(id="a", src="s", keywords="abc"), "keywords"),  # type: ignore[arg-type]
    ],
)
def test_image_input_is_checked_like_a_mapping(record: ImageInput, field: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        image_body(record, require_src=True, index=9)
    _invalid(exc, index=9, field=field)


def test_unset_in_a_mapping_record_is_left_out() -> None:
    record = {"id": "a", "src": "s", "title": UNSET, "nsfw": UNSET, "keywords": UNSET}
    assert image_body(record, require_src=True) == ("a", {"id": "a", "src": "s"})


# Batches: duplicates, size.


def test_check_batch_ids_accepts_distinct_ids_up_to_the_limit() -> None:
    assert check_batch_ids(["a", "b", "A", "a "], max_items=4) is None
    assert check_batch_ids(iter(["x"]), max_items=1) is None


@pytest.mark.parametrize(
    ("ids", "second", "first"),
    [
        (["a", "b", "a"], 2, 0),
        (["a", "b", "c", "b"], 3, 1),
        (["x", "x"], 1, 0),
    ],
)
def test_check_batch_ids_names_both_indexes_of_a_duplicate(
    ids: list[str], second: int, first: int
) -> None:
    with pytest.raises(InvalidInputError, match="duplicate") as exc:
        check_batch_ids(ids, max_items=100)
    _invalid(exc, index=second, field="id")
    assert f"first at index {first}" in str(exc.value)
    assert exc.value.image_id == ids[second]


def test_check_batch_ids_rejects_an_empty_batch() -> None:
    with pytest.raises(ValueError, match="at least one"):
        check_batch_ids([], max_items=100)


def test_check_batch_ids_rejects_an_over_size_batch() -> None:
    with pytest.raises(ValueError, match="at most 3 records, got 4"):
        check_batch_ids(["a", "b", "c", "d"], max_items=3)


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"id": "a", "src": "\ud800"}, "src"),
        ({"id": "a", "src": "s", "keywords": ["ok", "\udfff"]}, "keywords"),
        ({"id": "a\ud800", "src": "s"}, "id"),
    ],
)
def test_text_that_is_not_utf8_is_refused_naming_the_field(
    record: dict[str, object], field: str
) -> None:
    # JSON encoders refuse a lone surrogate with a bare TypeError; it must be
    # a typed error that names the field instead.
    with pytest.raises(InvalidInputError, match="UTF-8") as info:
        image_body(record, require_src=True, index=3)
    assert info.value.field == field and info.value.index == 3
