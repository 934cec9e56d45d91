"""The converter: hypothesis round trips, tolerance (D15, D16, D21) and exactness (F12)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wesog_async import (
    Image,
    Operation,
    OperationItemError,
    OperationMethod,
    OperationResource,
    ResponseValidationError,
    SearchPage,
    TagResult,
)
from wesog_async._convert import (
    converter,
    parse_timestamp,
    structure_image,
    structure_operation,
    structure_search_page,
    structure_tag_result,
    unstructure,
)

ROUND_TRIP = settings(max_examples=60, deadline=None)

# -- strategies --------------------------------------------------------------

texts = st.text(max_size=20)
opt_text = st.none() | texts
opt_bool = st.none() | st.booleans()
str_tuple = st.lists(texts, max_size=4).map(tuple)
counts = st.integers(min_value=0, max_value=10**9)
timezones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)
# The wire keeps milliseconds (D15), so generate ms-precision aware datetimes.
ms_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=timezones,
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
ms_floats = st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e12)


def _enum_or_text(enum_type: Any) -> st.SearchStrategy[Any]:
    return st.none() | st.sampled_from(list(enum_type)) | texts


item_errors = st.builds(
    OperationItemError,
    index=st.none() | st.integers(min_value=0, max_value=10_000) | texts,
    msg=texts,
)

operations = st.builds(
    Operation,
    num_total=counts,
    num_good=counts,
    num_bad=counts,
    is_finished=st.booleans(),
    is_started=opt_bool,
    all_good=opt_bool,
    method=_enum_or_text(OperationMethod),
    resource=_enum_or_text(OperationResource),
    do_wait=opt_bool,
    do_urgent=opt_bool,
    do_strict=opt_bool,
    idle_ms=st.none() | ms_floats,
    exec_ms=st.none() | ms_floats,
    created_at=st.none() | ms_datetimes,
    started_at=st.none() | ms_datetimes,
    finished_at=st.none() | ms_datetimes,
    errors=st.lists(item_errors, max_size=3).map(tuple),
    op_id=st.none() | st.integers(min_value=0, max_value=2**53),
)

_STR_FIELDS = [
    f.name
    for f in attrs.fields(Image)
    if f.name not in {"ai_generated", "model_release", "property_release", "nsfw"}
    and f.name not in {"keywords", "categories", "collections", "height", "width", "n_faces"}
]
images = st.builds(
    Image,
    **dict.fromkeys(_STR_FIELDS, opt_text),
    **dict.fromkeys(("ai_generated", "model_release", "property_release", "nsfw"), opt_bool),
    **dict.fromkeys(("keywords", "categories", "collections"), st.none() | str_tuple),
    **dict.fromkeys(("height", "width", "n_faces"), st.none() | counts),
)


def _via_json(value: Any) -> Any:
    return json.loads(json.dumps(unstructure(value)))


# -- round trips -------------------------------------------------------------


@ROUND_TRIP
@given(operations)
def test_operation_round_trips_through_json(op: Operation) -> None:
    assert structure_operation(_via_json(op)) == op


@ROUND_TRIP
@given(operations)
def test_operation_round_trips_without_json(op: Operation) -> None:
    assert converter.structure(unstructure(op), Operation) == op


@ROUND_TRIP
@given(images)
def test_image_round_trips_through_json(image: Image) -> None:
    assert structure_image(_via_json(image)) == image


@ROUND_TRIP
@given(item_errors)
def test_item_error_round_trips_with_its_wire_name(err: OperationItemError) -> None:
    data = _via_json(err)
    assert data == {"id": err.index, "msg": err.msg}
    assert converter.structure(data, OperationItemError) == err


def test_item_error_image_id_is_client_side_only() -> None:
    err = OperationItemError(index=0, msg="bad", image_id="a")
    assert unstructure(err) == {"id": 0, "msg": "bad"}
    assert converter.structure({"id": 0, "msg": "bad", "image_id": "zzz"}, OperationItemError) == (
        OperationItemError(index=0, msg="bad")
    )


@ROUND_TRIP
@given(ms_datetimes)
def test_timestamps_unstructure_as_utc_milliseconds(when: datetime) -> None:
    text = unstructure(when)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    parsed = parse_timestamp(text)
    assert parsed == when
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-03T06:00:00.123Z",
        "2026-12-03T06:00:00.123z",
        " 2026-12-03T06:00:00Z ",
        "2026-12-03T06:00:00+02:00",
        "2026-12-03T06:00:00",
        "2026-12-03 06:00:00.5",
        "20261203T060000Z",
    ],
)
def test_a_timestamp_parses_as_it_does_once_normalized(text: str) -> None:
    # The fast path (fromisoformat as given) must agree with the normalization:
    # stripped, a trailing Z or z as +00:00, a naive time as UTC.
    norm = text.strip()
    if norm[-1:] in ("Z", "z"):
        norm = norm[:-1] + "+00:00"
    expected = datetime.fromisoformat(norm)
    if expected.tzinfo is None:
        expected = expected.replace(tzinfo=UTC)
    parsed = parse_timestamp(text)
    assert parsed == expected and parsed is not None and parsed.tzinfo is not None
    assert parsed.utcoffset() == expected.utcoffset()


def test_unstructure_writes_plain_enum_values() -> None:
    op = Operation(
        num_total=1,
        num_good=1,
        num_bad=0,
        is_finished=True,
        method=OperationMethod.ADD,
        resource="future_thing",
    )
    data = unstructure(op)
    assert data["method"] == "add"
    assert type(data["method"]) is str
    assert data["resource"] == "future_thing"


# -- tolerance ---------------------------------------------------------------

MINIMAL_OP: dict[str, Any] = {"num_total": 2, "num_good": 1, "num_bad": 0, "is_finished": False}

FULL_OP: dict[str, Any] = {
    "op_id": 17,
    "num_total": 3,
    "num_good": 2,
    "num_bad": 1,
    "is_finished": True,
    "is_started": True,
    "all_good": False,
    "method": "add",
    "resource": "image",
    "do_wait": False,
    "do_urgent": False,
    "do_strict": True,
    "idle_ms": 12,
    "exec_ms": 3.5,
    "created_at": "2026-01-02T03:04:05.678Z",
    "started_at": "2026-01-02T03:04:06.000Z",
    "finished_at": "2026-01-02T03:04:07.250Z",
    "errors": [{"id": 2, "msg": "src unreachable"}],
}


def test_structure_full_operation() -> None:
    op = structure_operation(FULL_OP)
    assert op.op_id == 17
    assert op.method is OperationMethod.ADD
    assert op.resource is OperationResource.IMAGE
    assert op.idle_ms == 12.0
    assert type(op.idle_ms) is float
    assert op.created_at == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert op.errors == (OperationItemError(index=2, msg="src unreachable"),)
    assert op.num_done == 3
    assert not op.succeeded


def test_missing_optional_fields_take_defaults() -> None:
    op = structure_operation(MINIMAL_OP)
    assert op == Operation(num_total=2, num_good=1, num_bad=0, is_finished=False)
    assert op.errors == ()
    assert op.op_id is None
    assert op.created_at is None


def test_unknown_keys_are_ignored() -> None:
    data = {**FULL_OP, "brand_new": {"nested": [1, 2]}, "priority": 3}
    data["errors"] = [{"id": 2, "msg": "src unreachable", "code": "E42"}]
    assert structure_operation(data) == structure_operation(FULL_OP)
    image = structure_image({"image_id": "a", "title": "t", "embedding": [0.1, 0.2]})
    assert image == Image(image_id="a", title="t")


def test_nulls_are_accepted_where_d15_says_so() -> None:
    data = {
        **MINIMAL_OP,
        "started_at": None,
        "finished_at": None,
        "all_good": None,
        "idle_ms": 0,
        "exec_ms": 0,
        "errors": None,
    }
    op = structure_operation(data)
    assert op.started_at is None
    assert op.all_good is None
    assert op.idle_ms == 0.0
    assert op.errors == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05.678Z", datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)),
        ("2026-01-02T03:04:05.678z", datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)),
        ("2026-01-02T03:04:05.678+00:00", datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)),
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.678", datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)),
        ("2026-01-02T03:04:05.123456Z", datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2026-01-02T05:04:05+02:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (" 2026-01-02T03:04:05Z ", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_timestamp_variants(text: str, expected: datetime) -> None:
    op = structure_operation({**MINIMAL_OP, "created_at": text})
    assert op.created_at == expected
    assert op.created_at is not None
    assert op.created_at.utcoffset() is not None
    if not text.strip().endswith("+02:00"):
        assert op.created_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("method", "add", OperationMethod.ADD),
        ("method", "upd", OperationMethod.UPD),
        ("method", "del", OperationMethod.DEL),
        ("method", "multiple", OperationMethod.MULTIPLE),
        ("method", "merge", "merge"),
        ("method", "ADD", "ADD"),
        ("resource", "image", OperationResource.IMAGE),
        ("resource", "video", OperationResource.VIDEO),
        ("resource", "audio", "audio"),
        ("method", None, None),
    ],
)
def test_enum_values_known_and_unknown(field: str, raw: str | None, expected: Any) -> None:
    value = getattr(structure_operation({**MINIMAL_OP, field: raw}), field)
    assert value == expected
    assert type(value) is type(expected)


def test_item_error_index_may_be_an_image_id() -> None:
    data = {**MINIMAL_OP, "errors": [{"id": "img-3", "msg": "x"}, {"id": None, "msg": "y"}]}
    op = structure_operation(data)
    assert [e.index for e in op.errors] == ["img-3", None]


def test_integral_float_counts_are_accepted() -> None:
    op = structure_operation({**MINIMAL_OP, "num_good": 1.0})
    assert op.num_good == 1
    assert type(op.num_good) is int


# -- exactness (F12) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("is_finished", "yes", "$.is_finished"),
        ("is_finished", "false", "$.is_finished"),
        ("is_finished", 0, "$.is_finished"),
        ("is_finished", None, "$.is_finished"),
        ("is_started", "true", "$.is_started"),
        ("all_good", 1, "$.all_good"),
        ("do_strict", "false", "$.do_strict"),
        ("num_good", "5", "$.num_good"),
        ("num_good", 1.5, "$.num_good"),
        ("num_bad", None, "$.num_bad"),
        ("num_total", True, "$.num_total"),
        ("num_total", [3], "$.num_total"),
        ("op_id", "7x", "$.op_id"),
        ("op_id", True, "$.op_id"),
        ("idle_ms", "3", "$.idle_ms"),
        ("exec_ms", False, "$.exec_ms"),
        ("method", 5, "$.method"),
        ("resource", ["image"], "$.resource"),
        ("created_at", 1_767_323_045, "$.created_at"),
        ("created_at", "yesterday", "$.created_at"),
        ("errors", "oops", "$.errors"),
        ("errors", {"id": 0, "msg": "x"}, "$.errors"),
    ],
)
def test_wrong_types_raise_naming_the_field(field: str, value: Any, path: str) -> None:
    body = json.dumps({**MINIMAL_OP, field: value}).encode()
    with pytest.raises(ResponseValidationError) as exc:
        structure_operation(json.loads(body), body=body)
    err = exc.value
    assert path in str(err)
    assert any(path in e for e in err.errors)
    assert err.body == body
    assert isinstance(err.__cause__, Exception)


@pytest.mark.parametrize("missing", ["num_total", "num_good", "num_bad", "is_finished"])
def test_missing_required_fields_are_named(missing: str) -> None:
    data = {k: v for k, v in MINIMAL_OP.items() if k != missing}
    with pytest.raises(ResponseValidationError, match=re.escape(f"$.{missing}")):
        structure_operation(data)


@pytest.mark.parametrize("data", [None, [], [MINIMAL_OP], "op", 3])
def test_operation_body_must_be_an_object(data: Any) -> None:
    with pytest.raises(ResponseValidationError, match="expected a JSON object"):
        structure_operation(data, body=b"raw")


def test_operation_error_without_field_errors_shows_the_body() -> None:
    with pytest.raises(ResponseValidationError) as exc:
        structure_operation([1, 2], body=b"[1, 2]")
    assert "[1, 2]" in str(exc.value)


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("keywords", "cat", "$.keywords"),
        ("categories", ["a", 1], "$.categories"),
        ("collections", {"a": 1}, "$.collections"),
        ("height", "100", "$.height"),
        ("width", True, "$.width"),
        ("nsfw", "false", "$.nsfw"),
        ("title", 5, "$.title"),
        ("image_id", 12, "$.image_id"),
    ],
)
def test_image_wrong_types_raise_naming_the_field(field: str, value: Any, path: str) -> None:
    with pytest.raises(ResponseValidationError) as exc:
        structure_image({"image_id": "a", field: value})
    assert path in str(exc.value)


def test_image_lists_become_tuples() -> None:
    image = structure_image({"image_id": "a", "keywords": ["x", "y"], "categories": []})
    assert image.keywords == ("x", "y")
    assert image.categories == ()
    assert image.collections is None


def test_item_error_path_names_the_wire_key_and_position() -> None:
    data = {**MINIMAL_OP, "errors": [{"id": 0, "msg": "ok"}, {"id": 1.5, "msg": "x"}]}
    with pytest.raises(ResponseValidationError, match=re.escape("$.errors[1].id")):
        structure_operation(data)


# -- search pages ------------------------------------------------------------


@pytest.mark.parametrize("count", [None, 0, 12345])
def test_search_page_count(count: int | None) -> None:
    page = structure_search_page({"results": [], "count": count}, page=1, limit=None)
    assert page.count == count


def test_search_page_count_absent_is_none() -> None:
    assert structure_search_page({"results": []}, page=1, limit=None).count is None


def test_search_page_projected_results_and_paging() -> None:
    data = {
        "results": [{"image_id": "a", "title": "T"}, {"image_id": "b"}],
        "count": 2,
        "facets": {},
        "took_ms": 3,
    }
    page = structure_search_page(data, page=3, limit=2)
    assert page == SearchPage(
        results=(Image(image_id="a", title="T"), Image(image_id="b")),
        count=2,
        facets={},
        page=3,
        limit=2,
    )


@pytest.mark.parametrize("results", [None, []])
def test_search_page_empty_results(results: list[Any] | None) -> None:
    assert structure_search_page({"results": results}, page=1, limit=10).results == ()


def test_search_page_facets_shape() -> None:
    data = {
        "results": [],
        "facets": {
            "city": {"Paris": 3, "Rome": 1},
            "nsfw": {"false": 10, "true": 0},
            "country": {"ES": True, "FR": "4", "PT": 2.0, "IT": 5},
            "broken": ["a"],
            "empty": {},
        },
    }
    page = structure_search_page(data, page=1, limit=None)
    assert page.facets == {
        "city": {"Paris": 3, "Rome": 1},
        "nsfw": {"false": 10, "true": 0},
        "country": {"IT": 5},
        "empty": {},
    }


@pytest.mark.parametrize("facets", [None, [], "x"])
def test_search_page_facets_of_a_wrong_shape_are_ignored(facets: Any) -> None:
    assert structure_search_page({"facets": facets}, page=1, limit=None).facets == {}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"results": {}}, r"\$\.results"),
        ({"results": "a"}, r"\$\.results"),
        ({"results": [], "count": "5"}, r"\$\.count"),
        ({"results": [], "count": True}, r"\$\.count"),
        ({"results": [], "count": 1.5}, r"\$\.count"),
        ({"results": [{"image_id": "a"}, {"keywords": "x"}]}, r"search result 1.*\$\.keywords"),
        ({"results": [3]}, "search result 0"),
        ([], "expected a JSON object"),
        (None, "expected a JSON object"),
    ],
)
def test_search_page_rejects(data: Any, match: str) -> None:
    with pytest.raises(ResponseValidationError, match=match):
        structure_search_page(data, page=1, limit=None)


@pytest.mark.parametrize("data", [{"results": {}}, {"results": [], "count": "5"}])
def test_search_page_errors_carry_the_raw_body(data: dict[str, Any]) -> None:
    body = json.dumps(data).encode()
    with pytest.raises(ResponseValidationError) as exc:
        structure_search_page(data, page=1, limit=None, body=body)
    assert exc.value.body == body


# -- tag results -------------------------------------------------------------


def test_tag_result_known_keys_and_raw() -> None:
    data = {
        "keywords": ["dog", "park"],
        "caption": "A dog in a park",
        "ocr": "EXIT",
        "colors": ["green"],
        "lang": "en",
        "model": "v7",
    }
    tag = structure_tag_result(data)
    assert tag == TagResult(
        keywords=("dog", "park"),
        caption="A dog in a park",
        ocr="EXIT",
        colors=("green",),
        lang="en",
        raw=data,
    )
    assert tag.raw == data
    assert tag.raw is not data


def test_tag_result_fallback_keys() -> None:
    tag = structure_tag_result({"tags": ["a", "b"], "text": "hello"})
    assert tag.keywords == ("a", "b")
    assert tag.ocr == "hello"
    assert tag.caption is None


def test_tag_result_ignores_values_of_a_wrong_shape() -> None:
    tag = structure_tag_result({"keywords": "a", "caption": 5, "colors": {"r": 1}, "lang": None})
    assert tag == TagResult(raw={"keywords": "a", "caption": 5, "colors": {"r": 1}, "lang": None})


@pytest.mark.parametrize("data", [None, [], "x"])
def test_tag_result_must_be_an_object(data: Any) -> None:
    with pytest.raises(ResponseValidationError, match="expected a JSON object"):
        structure_tag_result(data)


def test_tag_result_empty_keywords_stay_empty() -> None:
    assert structure_tag_result({"keywords": []}).keywords == ()


def test_pending_status_fast_path_agrees_with_the_full_model() -> None:
    from wesog_async._convert import pending_status, structure_operation

    body = {
        "op_id": 3, "num_total": 10, "num_good": 4, "num_bad": 1, "is_started": True,
        "is_finished": False, "all_good": None, "method": "add",
    }  # fmt: skip
    quick = pending_status(body)
    full = structure_operation(body)
    assert quick is not None
    for field in ("op_id", "num_total", "num_good", "num_bad", "is_started", "is_finished"):
        assert getattr(quick, field) == getattr(full, field)


@pytest.mark.parametrize(
    "body",
    [
        {"num_total": 1, "num_good": 0, "num_bad": 0, "is_finished": True},
        {"num_total": "1", "num_good": 0, "num_bad": 0, "is_finished": False},
        {"num_total": 1, "num_good": True, "num_bad": 0, "is_finished": False},
        {"num_total": 1, "num_good": 0, "num_bad": 0, "is_finished": False, "is_started": "no"},
        {"num_total": 1, "num_good": 0, "num_bad": 0, "is_finished": False, "op_id": "7"},
        {"num_total": 1, "num_good": 0, "num_bad": 0, "is_finished": "false"},
        [],
    ],
)
def test_pending_status_leaves_anything_unusual_to_the_full_model(body: object) -> None:
    from wesog_async._convert import pending_status

    assert pending_status(body) is None


_any_json = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(-2, 2), st.sampled_from(["", "x", "7"])
)
_stamps = st.one_of(
    st.none(), st.sampled_from(["2026-12-02T10:00:00.123Z", "2026-12-02 10:00:00", "noon", ""])
)
_item = st.one_of(
    st.fixed_dictionaries({"id": _any_json, "msg": _any_json}),
    st.fixed_dictionaries({"msg": st.just("m")}),
    st.just("not an object"),
)
_index = st.one_of(st.none(), st.integers(0, 4), st.just("img-1"))
_valid_status = st.fixed_dictionaries(
    {
        "num_total": st.integers(0, 5), "num_good": st.integers(0, 5),
        "num_bad": st.integers(0, 5), "is_finished": st.booleans(),
    },
    optional={
        "is_started": st.one_of(st.none(), st.booleans()),
        "all_good": st.one_of(st.none(), st.booleans()),
        "do_wait": st.booleans(), "do_urgent": st.booleans(), "do_strict": st.none(),
        "method": st.sampled_from(["add", "upd", "frobnicate", None]),
        "resource": st.sampled_from(["image", "video", "thing", None]),
        "idle_ms": st.one_of(st.none(), st.integers(0, 9), st.floats(0, 1e6)),
        "exec_ms": st.one_of(st.none(), st.floats(0, 1e6)),
        "created_at": _stamps, "started_at": _stamps, "finished_at": _stamps,
        "errors": st.one_of(
            st.none(),
            st.lists(st.fixed_dictionaries({"id": _index, "msg": st.just("m")}), max_size=3),
        ),
        "op_id": st.one_of(st.none(), st.integers(1, 99)), "extra": _any_json,
    },
)  # fmt: skip
_keys = st.sampled_from(
    ["num_total", "num_good", "num_bad", "is_finished", "is_started", "all_good", "do_wait",
     "method", "resource", "idle_ms", "exec_ms", "created_at", "finished_at", "errors", "op_id"]
)  # fmt: skip
_junk = st.one_of(
    _any_json, _stamps, st.just(10**400), st.just("12"), st.lists(_item, min_size=1, max_size=2)
)
# A status the server could send, with at most two fields made odd.
_status = st.builds(
    lambda base, odd: {**base, **odd},
    _valid_status,
    st.dictionaries(_keys, _junk, max_size=2),
)


@settings(max_examples=600, deadline=None)
@given(_status)
def test_exact_operation_is_the_converter_or_nothing(data: dict[str, Any]) -> None:
    from wesog_async._convert import exact_operation

    quick = exact_operation(data)
    try:
        full: Operation | None = converter.structure(data, Operation)
    except Exception:  # the converter refusing is one of the outcomes
        full = None
    if quick is not None:
        assert quick == full
        assert type(quick.method) is type(full.method)  # an enum member, not the string
        assert type(quick.idle_ms) is type(full.idle_ms)


def test_exact_operation_takes_a_finished_status_as_servers_send_it() -> None:
    from wesog_async._convert import exact_operation

    body = {
        "op_id": 12, "method": "add", "resource": "image", "num_total": 3, "num_good": 2,
        "num_bad": 1, "is_started": True, "is_finished": True, "all_good": False,
        "do_wait": False, "do_urgent": False, "do_strict": False, "idle_ms": 0.1, "exec_ms": 3,
        "created_at": "2026-12-02T22:00:00.123Z", "started_at": "2026-12-02T22:00:00.124Z",
        "finished_at": "2026-12-02T22:00:00.125Z", "errors": [{"id": 1, "msg": "bad src"}],
    }  # fmt: skip
    quick = exact_operation(body)
    assert quick is not None and quick == converter.structure(body, Operation)
    assert quick.errors == (OperationItemError(1, "bad src"),) and quick.exec_ms == 3.0
    assert exact_operation({**body, "op_id": "12"}) is None  # tolerated, but by the converter
    assert structure_operation({**body, "op_id": "12"}).op_id == 12
