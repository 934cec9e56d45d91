"""The exception hierarchy: the tree drawn in ``_errors``' docstring is the truth."""

from __future__ import annotations

import asyncio
import inspect
import pickle
import re
import textwrap
from pathlib import Path

import pytest

import wesog_async
from wesog_async import _errors
from wesog_async._errors import (
    APIStatusError,
    ClientClosedError,
    ConnectError,
    InvalidInputError,
    OperationError,
    OperationFailedError,
    OperationNotFoundError,
    OperationTimeoutError,
    OutcomeUnknownError,
    ResponseValidationError,
    TransportError,
    WesogError,
)
from wesog_async._models import Operation, OperationItemError
from wesog_async._sansio import error_for_status

CANARY = "wsg-canary-4f1d2c9e8b7a"
ROOT = Path(wesog_async.__file__).parent.parent

_TREE_LINE = re.compile(r"^(?P<indent>[ │├└─]*)(?P<name>[A-Z]\w*Error)\b")


def _docstring_tree() -> dict[str, str | None]:
    """``{class name: parent name}`` read from the docstring's drawing."""
    doc = _errors.__doc__ or ""
    drawing = doc.split("::", 1)[1].split("\n\n", 2)[1]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in drawing.splitlines():
        match = _TREE_LINE.match(line)
        if match is None:
            continue
        depth, name = len(match["indent"]), match["name"]
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((depth, name))
    return parents


def _defined_errors() -> dict[str, type[WesogError]]:
    return {
        name: obj
        for name, obj in vars(_errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, WesogError)
        and obj.__module__ in (_errors.__name__, "wesog_async")  # re-homed by __init__
    }


def test_docstring_tree_parses() -> None:
    tree = _docstring_tree()
    assert tree["WesogError"] is None
    assert tree["NotFoundError"] == "APIStatusError"
    assert tree["OperationTimeoutError"] == "OperationError"
    assert len(tree) >= 15


def test_docstring_tree_lists_every_error_class() -> None:
    assert set(_docstring_tree()) == set(_defined_errors())


@pytest.mark.parametrize(("name", "parent"), sorted(_docstring_tree().items(), key=str))
def test_each_class_derives_from_its_parent_in_the_tree(name: str, parent: str | None) -> None:
    cls = getattr(_errors, name)
    wesog_bases = [b for b in cls.__bases__ if issubclass(b, WesogError)]
    if parent is None:
        assert cls is WesogError
        assert cls.__bases__ == (Exception,)
    else:
        assert wesog_bases == [getattr(_errors, parent)]


@pytest.mark.parametrize("cls", list(_defined_errors().values()), ids=lambda c: c.__name__)
def test_every_error_is_exported_and_named_error(cls: type[WesogError]) -> None:
    assert cls.__name__.endswith("Error")
    assert getattr(wesog_async, cls.__name__) is cls
    assert cls.__name__ in wesog_async.__all__


def _drawing() -> str:
    """The docstring's tree, as drawn (dedented)."""
    doc = _errors.__doc__ or ""
    return textwrap.dedent(doc.split("::", 1)[1].split("\n\n", 2)[1])


def _text_block(path: Path, after: str) -> str:
    text = path.read_text(encoding="utf-8").split(after, 1)[1]
    return text.split("```text\n", 1)[1].split("\n```", 1)[0]


@pytest.mark.parametrize(
    ("page", "after"),
    [("README.md", "\n## Errors\n"), ("docs/errors.md", "# Errors")],
    ids=["README", "docs-errors"],
)
def test_the_documented_trees_are_the_docstring_tree(page: str, after: str) -> None:
    # The docstring's tree is checked against the classes above, so the
    # README's and the errors page's are the real hierarchy too.
    assert _text_block(ROOT / page, after) == _drawing().rstrip("\n")


def test_the_errors_page_has_a_row_for_every_error() -> None:
    page = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `(\w+Error)` \|", page, flags=re.MULTILINE))
    # JournalMismatchError is defined with the journal (bulk), outside _errors.
    assert rows == (set(_defined_errors()) - {"WesogError"}) | {"JournalMismatchError"}


# -- builtin bases -----------------------------------------------------------


def test_operation_timeout_error_is_a_timeout_error() -> None:
    status = Operation(num_total=3, num_good=1, num_bad=0, is_finished=False)
    err = OperationTimeoutError("operation 5 not finished after 2s", op_id=5, last_status=status)
    assert isinstance(err, TimeoutError)
    assert isinstance(err, asyncio.TimeoutError)
    assert isinstance(err, OperationError)
    assert str(err) == "operation 5 not finished after 2s"
    assert err.op_id == 5
    assert err.last_status is status
    with pytest.raises(TimeoutError):
        raise err


def test_invalid_input_error_is_a_value_error() -> None:
    err = InvalidInputError("is required", field="src", index=3, image_id="a")
    assert isinstance(err, ValueError)
    assert str(err) == "record 3 (id 'a'), field 'src': is required"
    assert (err.reason, err.field, err.index, err.image_id) == ("is required", "src", 3, "a")
    assert str(InvalidInputError("bad")) == "record: bad"


@pytest.mark.parametrize(
    "cls",
    [TransportError, APIStatusError, ResponseValidationError, OperationError, ClientClosedError],
)
def test_families_are_not_value_or_timeout_errors(cls: type[WesogError]) -> None:
    assert not issubclass(cls, ValueError)
    assert not issubclass(cls, TimeoutError)


# -- attributes and messages -------------------------------------------------


def test_api_status_error_message() -> None:
    err = APIStatusError("boom", status=418, method="GET", path="/x", detail={"a": 1})
    assert str(err) == "GET /x -> 418: boom"
    assert str(APIStatusError("boom", status=418)) == "boom"
    assert err.errors == []


def test_transport_errors() -> None:
    assert str(TransportError("reset", method="POST", path="/imgs")) == "POST /imgs: reset"
    assert str(ConnectError("refused")) == "refused"
    err = OutcomeUnknownError("lost", method="PUT", path="/imgs/a", raw_body=b"{}", image_ids=["a"])
    assert err.raw_body == b"{}"
    assert err.image_ids == ("a",)


def test_response_validation_error_message() -> None:
    err = ResponseValidationError("op", errors=["$.a: x", "$.b: y"], body=b"{}")
    assert str(err) == "op: $.a: x; $.b: y"
    assert err.errors == ("$.a: x", "$.b: y")
    assert err.body == b"{}"
    long = ResponseValidationError("op", body=b"z" * 2000)
    assert "z" * 500 + "…" in str(long)
    assert "z" * 501 not in str(long)


def test_operation_failed_error_failed_ids() -> None:
    op = Operation(num_total=3, num_good=1, num_bad=2, is_finished=True)
    failed = [
        OperationItemError(index=0, msg="x", image_id="a"),
        OperationItemError(index=9, msg="y"),
    ]
    err = OperationFailedError("failed", op_id=4, operation=op, failed=failed)
    assert err.failed == tuple(failed)
    assert err.failed_ids == ["a"]
    assert err.operation is op


def test_operation_not_found_and_client_closed_carry_ids() -> None:
    assert OperationNotFoundError("gone", op_id=3, image_ids=["a", "b"]).image_ids == ("a", "b")
    assert ClientClosedError("closed", op_ids=[1, None]).op_ids == (1, None)


# -- no headers, no key (F22) ------------------------------------------------

_STATUSES = [301, 400, 401, 403, 404, 409, 413, 422, 429, 500, 502, 503, 504, 418]


@pytest.mark.parametrize("status", _STATUSES)
def test_status_errors_carry_no_headers(status: int) -> None:
    err = error_for_status(
        status, b'{"detail": "nope"}', method="POST", path="/imgs", retry_after=1.0
    )
    assert set(vars(err)) == {"status", "method", "path", "detail", "body", "retry_after"}
    for name in ("headers", "request_info", "request", "response", "api_key"):
        assert not hasattr(err, name)
    assert err.__cause__ is None
    assert err.__context__ is None
    text = str(err) + repr(err) + repr(vars(err))
    assert CANARY not in text
    assert "API-Key" not in text


@pytest.mark.parametrize("status", [404, 429])
def test_status_errors_pickle(status: int) -> None:
    err = error_for_status(status, b'{"detail": "x"}', method="GET", path="/ops/1", retry_after=2.0)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err)
    assert (copy.status, copy.retry_after, str(copy)) == (err.status, err.retry_after, str(err))


def test_a_journal_mismatch_is_a_wesog_error_and_still_a_value_error() -> None:
    from wesog_async import JournalMismatchError

    err = JournalMismatchError("j.db", "base_url", "http://a", "http://b")
    assert isinstance(err, WesogError) and isinstance(err, ValueError)
    assert "base_url" in str(err) and err.field == "base_url"
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is JournalMismatchError and again.run_value == "http://b"
    assert str(again) == str(err)
