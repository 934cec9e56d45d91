"""A piece of records checked and encoded at once (``Batcher.feed_piece``) makes
exactly the batches the per-record path makes: same ids and positions, same
bytes, same invalid records and messages, same byte cuts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_bulk import check_invariant, drain, images
from wesog_async import WesogClient, ingest
from wesog_async.bulk import pipeline
from wesog_async.bulk.batcher import Batch, Batcher
from wesog_async.bulk.records import Encoder, compile_check, compile_piece_check

ids = st.sampled_from(["a", "b", "c", "d", "e", "f", " ", "", ".", "ü-1", "x/y"])
values = st.one_of(
    st.sampled_from(["https://i.example/1.jpg", "", "ünï", "\ud800"]), st.none(), st.integers(0, 3)
)
record = st.one_of(
    st.fixed_dictionaries({"id": ids, "src": values}),
    st.fixed_dictionaries({"src": values, "id": ids}),  # the same keys in another order
    st.fixed_dictionaries({"id": ids, "src": values}, optional={"title": values}),
    st.fixed_dictionaries({"src": values, "id": ids, "keywords": st.lists(values, max_size=2)}),
    st.fixed_dictionaries({"id": ids}),
    st.sampled_from(["a", 7, None]),
)


def snapshot(batch: Batch) -> tuple[Any, ...]:
    return (
        batch.start,
        batch.stop,
        dict(batch.ids),
        type(batch.image_ids) is tuple and not batch.seen,  # sealed once handed out
        bytes(batch.encoded),
        list(batch.ends),
        batch.nbytes,
        [(e.position, e.image_id, e.field, e.message, e.conflict_with) for e in batch.invalid],
    )


def run(recs: list[Any], *, pieces: bool, batch_size: int, max_bytes: int) -> list[Any]:
    batcher = Batcher(Encoder("create"), batch_size=batch_size, max_bytes=max_bytes)
    closed: list[Batch] = []
    pos = 0
    while pos < len(recs):
        if pieces:
            piece = recs[pos : pos + min(3, batcher.room())]
            closed += batcher.feed_piece(pos, piece)
            pos += len(piece)
            opened = batcher.open
            # The open batch's set holds exactly its ids (a refused piece put it back).
            assert opened is None or (opened.seen == set(opened.open_ids) and
                                      len(opened.seen) == len(opened.open_ids))  # fmt: skip
        else:
            done = batcher.feed(pos, recs[pos])
            closed += [done] if done is not None else []
            pos += 1
    last = batcher.flush()
    return [snapshot(b) for b in [*closed, *([last] if last else [])]]


@settings(max_examples=300, deadline=None)
@given(st.lists(record, max_size=24), st.integers(1, 7), st.sampled_from([40, 90, 200, 1 << 20]))
def test_pieces_make_the_batches_the_per_record_path_makes(
    recs: list[Any], batch_size: int, max_bytes: int
) -> None:
    assert run(recs, pieces=True, batch_size=batch_size, max_bytes=max_bytes) == run(
        recs, pieces=False, batch_size=batch_size, max_bytes=max_bytes
    )


def test_a_piece_batch_splits_and_reports_records_like_any_other() -> None:
    batcher = Batcher(Encoder("create"), batch_size=4, max_bytes=1 << 20)
    recs = [{"id": f"r{i}", "src": f"https://i.example/{i}.jpg", "title": "ü"} for i in range(4)]
    (batch,) = batcher.feed_piece(10, recs)
    assert batch.offsets is None  # encoded at once
    assert batch.record_at(2) == recs[2]
    left, right = batch.split()
    assert [left.record_at(i) for i in range(2)] == recs[:2]
    assert list(right.ids.items()) == [("r2", 12), ("r3", 13)]
    assert left.body()[:-1] + b"," + right.body()[1:] == batch.body()
    assert batch.fingerprint({11}) != batch.fingerprint() and batch.has_records()


def test_the_piece_check_refuses_what_it_cannot_prove() -> None:
    check = compile_piece_check(("id", "src"), True)
    good = [{"id": "a", "src": "s"}, {"id": "b", "src": "t"}]
    assert check(good) == ["a", "b"]  # the ids, in order
    assert check([*good, {"src": "u", "id": "c"}])  # another key order: the same checks
    assert check([*good, {"id": "c"}]) is None  # a key missing
    assert check([*good, {"src": "u"}, {"id": "c"}]) is None  # the id missing
    assert check([*good, {"id": "c", "src": "u", "nope": 1}]) is None  # a key more
    assert check([*good, {"id": "c", "nope": "u"}]) is None  # as many keys, another set
    assert check([*good, {"id": 3, "src": "u"}]) is None  # an id that is no string
    assert check([*good, {"id": ["a"], "src": "u"}]) is None  # an unhashable id
    assert check([*good, {"id": " \t", "src": "u"}]) is None  # a blank id
    assert check([*good, {"id": "c", "src": ""}]) is None  # empty src
    # Reserved ids and an id twice are the batcher's to find (its set of ids).
    odd = [{"id": ".", "src": "u"}, {"id": "", "src": "u"}, {"id": "a", "src": "u"}]
    assert check([*good, *odd]) == ["a", "b", ".", "", "a"]
    assert compile_piece_check(("id", "nope"), True)(good) is None  # unknown field
    only_ids = compile_piece_check(("id",), False)  # modify: the id alone
    assert only_ids([{"id": "a"}, {"id": "b"}]) == ["a", "b"]
    assert only_ids([{"id": "a"}, {"src": "b"}]) is None


def test_checks_are_compiled_once_per_process_not_per_ingestion() -> None:
    shape = ("src", "id", "title")
    assert compile_piece_check(shape, True) is compile_piece_check(shape, True)
    assert compile_check(shape, True) is compile_check(shape, True)
    assert compile_check(shape, True) is not compile_check(shape, False)
    first, second = Encoder("create").checks, Encoder("create").checks
    assert first is not None and second is not None
    assert first.compile(shape) is second.compile(shape)


async def test_an_input_that_raises_mid_piece_loses_none_of_the_records_before(
    client: WesogClient,
) -> None:
    def source() -> Iterator[dict[str, Any]]:
        yield from images(300)  # one piece of 256, then 44 and the error
        raise OSError("disk gone")

    stream = ingest(client, source(), batch_size=1000)
    with pytest.raises(OSError, match="disk gone"):
        await drain(stream)
    check_invariant(stream.report)
    assert stream.report.not_sent == 300 and stream.report.aborted


def bug_at(monkeypatch: pytest.MonkeyPatch, position: int) -> None:
    """Make ``Batcher.feed`` raise (a bug of ours) on the record at ``position``."""
    feed = Batcher.feed

    def buggy(self: Batcher, pos: int, rec: Any) -> Batch | None:
        if pos == position:
            raise RuntimeError("a bug")
        return feed(self, pos, rec)

    monkeypatch.setattr(Batcher, "feed", buggy)


async def test_a_bug_mid_piece_leaves_every_record_read_in_a_bucket(
    client: WesogClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug of ours while a piece goes record by record (the byte limit cuts
    # the first piece of 100 into batches of a few records): the batches the
    # piece closed before it, the open one and the records after it all end
    # not sent, none of them lost.
    bug_at(monkeypatch, 60)
    records = list(images(300))
    stream = ingest(client, iter(records), batch_size=100, max_batch_bytes=1000)
    with pytest.raises(RuntimeError, match="a bug"):
        await drain(stream)
    report = stream.report
    check_invariant(report)
    assert report.total == 100 and report.not_sent == 100 and report.aborted
    assert sorted(e.position for e in report.not_sent_items) == list(range(100))
    unfed = [e for e in report.not_sent_items if e.position >= 60]
    assert unfed[0].image_id == "img-000060" and unfed[0].record == records[60]


async def test_a_bug_on_the_per_record_path_leaves_its_record_in_a_bucket(
    client: WesogClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An async input goes record by record: the record a bug stopped is not sent.
    bug_at(monkeypatch, 5)

    async def source() -> AsyncIterator[dict[str, Any]]:
        for rec in images(20):
            yield rec

    stream = ingest(client, source(), batch_size=3)
    with pytest.raises(RuntimeError, match="a bug"):
        await drain(stream)
    report = stream.report
    check_invariant(report)
    assert report.total == 6
    assert [e.position for e in report.not_sent_items if e.position == 5] == [5]


def test_what_a_failed_piece_left_is_told_by_the_positions_batches_hold() -> None:
    # A bug can stop a record after its id went into the batch: that record is
    # the batch's (settled with it), the ones no batch holds are unfed, and a
    # record is never both.
    batcher = Batcher(Encoder("create"), batch_size=10, max_bytes=10**6)
    recs = list(images(4))
    assert batcher.feed(0, recs[0]) is None
    assert batcher.feed(1, {"id": "x"}) is None  # invalid: no src
    opened = batcher.open
    assert opened is not None
    opened.push("img-000002", 2)  # pushed, then the bug: the batch's stop not moved on
    batcher.strand(0, recs, [])
    assert batcher.unfed == [(3, recs[3])]


async def read_between_wakeups(
    client: WesogClient, n: int, *, batch_size: int, tick: float, pause: float = 0.0
) -> list[int]:
    """Ingest ``n`` records (``pause`` s of blocking work each) while a task
    that sleeps ``tick`` s at a time counts the records read between its
    wake-ups."""
    read = 0
    gaps: list[int] = []
    done = False

    def source() -> Iterator[dict[str, Any]]:
        nonlocal read
        for rec in images(n):
            if pause:
                time.sleep(pause)
            read += 1
            yield rec

    async def ticker() -> None:
        last = 0
        while not done:
            await asyncio.sleep(tick)
            gaps.append(read - last)
            last = read

    tick_task = asyncio.create_task(ticker())
    stream = ingest(client, source(), batch_size=batch_size, max_in_flight=64, max_pending_ops=64)
    await drain(stream)
    done = True
    await tick_task
    check_invariant(stream.report)
    assert stream.report.applied == n
    return gaps


async def test_a_timer_due_while_reading_runs_before_the_next_slice(
    client: WesogClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slices of 100 records by count, each 10 ms or more (a slow source): a task
    # sleeping 1 ms falls due in every slice and runs when it ends, not after
    # the next one as well (with one sleep(0) per turn, or two, it waited for
    # two slices: the reader was queued ahead of it).
    monkeypatch.setattr(pipeline, "_TURN_EVERY", 100)
    monkeypatch.setattr(pipeline, "_TURN_AFTER_S", 60.0)
    gaps = await read_between_wakeups(client, 1000, batch_size=50, tick=0.001, pause=0.0001)
    assert max(gaps) <= 100 + 50  # a slice, plus the piece that crossed it: never two


async def test_a_sync_input_gives_the_loop_a_turn_every_so_many_records(
    client: WesogClient,
) -> None:
    # Read in bursts (the requests of several batches leave in one loop turn),
    # but never more than _TURN_EVERY records, plus the piece that crossed it,
    # without letting another task run.
    gaps = await read_between_wakeups(client, 6000, batch_size=100, tick=0)
    assert max(gaps) <= pipeline._TURN_EVERY + pipeline._YIELD_EVERY
    assert max(gaps) > 100  # batches of 100, not a turn per batch
