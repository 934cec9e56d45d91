"""The pure parts of bulk ingestion, table-tested without an event loop: the
batcher, the classification of a failed submit, the options, and what a
resume does with each journaled record."""

from __future__ import annotations

from typing import Any

import pytest

from wesog_async import (
    APIStatusError,
    AuthenticationError,
    ClientClosedError,
    ConnectError,
    IngestOptions,
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
    TransportError,
)
from wesog_async._sansio import error_for_status
from wesog_async.bulk.batcher import Batch, Batcher
from wesog_async.bulk.journal import ACCEPTED, DONE, SUBMITTING, JournalRow
from wesog_async.bulk.options import IngestKeywords, build_options
from wesog_async.bulk.outcomes import submit_bucket
from wesog_async.bulk.records import Encoder
from wesog_async.bulk.report import Tally
from wesog_async.bulk.resume import Resume


def rec(i: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"id{i}", "src": f"https://a.example/{i}.jpg", **extra}


def feed_all(batcher: Batcher, records: list[Any]) -> list[list[int]]:
    """The positions of each batch closed, then of the flushed one."""
    out = []
    for pos, record in enumerate(records):
        closed = batcher.feed(pos, record)
        if closed is not None:
            out.append(sorted([*closed.ids.values(), *(e.position for e in closed.invalid)]))
    last = batcher.flush()
    if last is not None:
        out.append(sorted([*last.ids.values(), *(e.position for e in last.invalid)]))
    return out


@pytest.mark.parametrize(
    ("size", "max_bytes", "records", "expected"),
    [
        (2, 10_000, [rec(i) for i in range(5)], [[0, 1], [2, 3], [4]]),
        (1, 10_000, [rec(0), rec(1)], [[0], [1]]),
        (10, 10_000, [], []),
        # bytes: each record is ~45 bytes encoded, so two fit in 100
        (10, 100, [rec(i) for i in range(5)], [[0, 1], [2, 3], [4]]),
        # a record over the byte cap goes alone
        (10, 64, [rec(0, title="x" * 200), rec(1)], [[0], [1]]),
        # invalid records stay in the batch that spans them, never counted in its size
        (2, 10_000, [rec(0), {"id": "x"}, rec(2), rec(3)], [[0, 1, 2], [3]]),
        # a second id in one batch is a conflict, not a record of the batch
        (3, 10_000, [rec(0), rec(0), rec(1)], [[0, 1, 2]]),
    ],
)
def test_batcher_cuts_by_count_and_bytes(
    size: int, max_bytes: int, records: list[Any], expected: list[list[int]]
) -> None:
    batcher = Batcher(Encoder("create"), batch_size=size, max_bytes=max_bytes)
    assert feed_all(batcher, records) == expected


def test_batcher_marks_conflicts_and_invalid_records() -> None:
    batcher = Batcher(Encoder("create"), batch_size=10, max_bytes=10_000)
    for pos, record in enumerate([rec(0), rec(0), {"id": "y"}]):
        assert batcher.feed(pos, record) is None
    batch = batcher.flush()
    assert batch is not None and list(batch.ids) == ["id0"]
    conflict, invalid = batch.invalid
    assert conflict.conflict_with == 0 and conflict.field == "id"
    assert invalid.conflict_with is None and invalid.field == "src"
    assert batch.body() == b'[{"id":"id0","src":"https://a.example/0.jpg"}]'


def _status(status: int) -> APIStatusError:
    return error_for_status(status, b"{}", method="POST", path="/imgs", retry_after=None)


@pytest.mark.parametrize(
    ("exc", "bucket"),
    [
        (_status(400), "failed"),
        (_status(409), "failed"),
        (_status(429), "failed"),
        (_status(503), "failed"),
        (_status(500), "unknown"),
        (_status(502), "unknown"),
        (_status(504), "unknown"),
        (AuthenticationError("bad key", status=401), "not_sent"),
        (RateLimitError("slow down", status=429, retry_after=3600.0), "not_sent"),
        (ConnectError("refused", method="POST", path="/imgs"), "not_sent"),
        (TransportError("reset", method="POST", path="/imgs"), "unknown"),
        (OutcomeUnknownError("no op id", method="POST", path="/imgs"), "unknown"),
        (ClientClosedError("closed before sending"), "not_sent"),
        (ClientClosedError("closed in flight", maybe_applied=True), "unknown"),
        (RuntimeError("a bug"), "unknown"),
        (KeyError("a bug"), "unknown"),
    ],
)
def test_what_a_failed_submit_means(exc: BaseException, bucket: str) -> None:
    assert submit_bucket(exc, cap=60.0) == bucket


def test_server_error_is_an_api_status_error() -> None:
    assert isinstance(_status(500), ServerError)


@pytest.mark.parametrize(
    ("keywords", "field"),
    [
        ({"mode": "upsert"}, "mode"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_batch_bytes": 10}, "max_batch_bytes"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_pending_ops": 0}, "max_pending_ops"),
        ({"lang": "xx"}, "lang"),
        ({"mode": "delete", "lang": "en"}, "lang"),
    ],
)
def test_options_name_the_field_they_refuse(keywords: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        IngestOptions(**keywords)


def test_options_merge_and_stay_frozen() -> None:
    base = IngestOptions(batch_size=50, strict=True)
    merged = build_options(base, {"max_in_flight": 2})
    assert (merged.batch_size, merged.strict, merged.max_in_flight) == (50, True, 2)
    assert build_options(base, {}) is base and merged.method == "POST"
    with pytest.raises(ValueError, match="batch_size must be an int from 1 to 10"):
        merged.batch_size_for(100, 10)
    with pytest.raises(AttributeError):
        merged.strict = False  # type: ignore[misc]


def test_ingest_keywords_are_the_ingest_options_field_for_field() -> None:
    """``IngestKeywords`` (what ``ingest(**keywords)`` type-checks against) is
    written out by hand beside ``IngestOptions``: same names, same order, same
    types, every one optional, so neither can gain or change a field alone."""
    import typing

    import attrs

    from wesog_async.bulk import options as options_module

    fields = attrs.fields(IngestOptions)
    option_types = typing.get_type_hints(IngestOptions, vars(options_module))
    keyword_types = typing.get_type_hints(IngestKeywords, vars(options_module))
    assert list(keyword_types) == [f.name for f in fields]
    assert keyword_types == {f.name: option_types[f.name] for f in fields}
    assert IngestKeywords.__required_keys__ == frozenset()
    assert IngestKeywords.__optional_keys__ == frozenset(keyword_types)
    # Every keyword is accepted by name, and the defaults give the defaults.
    defaults = {f.name: f.default for f in fields}
    assert build_options(None, defaults) == IngestOptions()  # type: ignore[arg-type]


_LETTER = {"counted": "c", "retry": "r", "resend": "s", "pending": "p"}


def _done(**entries: Any) -> JournalRow:
    return JournalRow(row_id=1, start=0, stop=4, state=DONE, **entries)


@pytest.mark.parametrize(
    ("row", "strict", "retry", "actions"),
    [
        (_done(), False, False, "cccc"),
        (_done(failed=[(1, "id1", "boom")]), False, False, "cccc"),
        (_done(failed=[(1, "id1", "boom")]), False, True, "crcc"),
        (_done(unknown=[(2, "id2", "?", 7)]), False, False, "ccsc"),
        (_done(unknown=[(2, "id2", "?", 7)]), True, False, "cccc"),
        (_done(invalid=[(0, None, "src", "is required", None)]), False, True, "rccc"),
        (_done(invalid=[(3, "id0", "id", "input conflict", 0)]), False, True, "cccc"),
        (JournalRow(row_id=1, start=0, stop=4, state=SUBMITTING), False, False, "ssss"),
        (JournalRow(row_id=1, start=0, stop=4, state=SUBMITTING), True, False, "cccc"),
        (JournalRow(row_id=1, start=0, stop=4, state=ACCEPTED, op_id=3), True, True, "pppp"),
    ],
)
def test_what_a_resume_does_with_each_journaled_record(
    row: JournalRow, strict: bool, retry: bool, actions: str
) -> None:
    # c: counted from the journal, r: retried, s: resent (said so), p: followed
    resume = Resume("j", [row], Encoder("create"), strict=strict, retry_failed=retry)
    tally = Tally()
    seen = []
    for pos in range(4):
        verified = resume.take(pos, rec(pos))
        assert verified is not None  # no fingerprint: nothing held back
        for at, record, rows in verified:
            seen.append(_LETTER[resume.replay(rows, at, record, tally)[0]])
    assert "".join(seen) == actions
    counted = actions.count("c")
    assert tally.total == tally.resumed == counted
    if strict and row.state == SUBMITTING:
        assert tally.unknown == 4  # possibly sent: unknown again, never applied
    assert resume.take(4, rec(4)) is None  # past the journal: fresh input


def test_a_batch_keeps_each_ids_position_through_gaps_and_splits() -> None:
    batch = Batch(3, sparse=True)
    for image_id, pos in [("a", 3), ("b", 4), ("c", 9), ("d", 10), ("e", 7)]:
        batch.push(image_id, pos)
        batch.append(b'{"id":"%s"}' % image_id.encode())
    assert batch.id_positions() == [3, 4, 9, 10, 7]
    assert batch.ids == {"a": 3, "b": 4, "c": 9, "d": 10, "e": 7}
    assert batch.runs == [(0, 3), (2, 9), (4, 7)]  # three runs of consecutive positions
    left, right = batch.split()
    assert left.ids == {"a": 3, "b": 4} and right.ids == {"c": 9, "d": 10, "e": 7}
    assert right.image_ids == ("c", "d", "e") and not right.seen  # sealed: a tuple, no set
    again = Batch(0)
    again.set_ids(["x", "y", "x"], [5, 6, 8])  # an id twice: kept at its first position
    assert again.ids == {"x": 5, "y": 6} and again.image_ids == ("x", "y")
