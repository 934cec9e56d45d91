"""The journal: resume after a break or a cancel, retry_failed, mismatches (the
resume tests against SQLite and PostgreSQL alike; the rest read SQLite rows)."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._services import unique_name
from tests.conftest import API_KEY, make_client
from wesog_async import WesogClient
from wesog_async.bulk import IngestReport, ingest, ingest_all
from wesog_async.bulk.batcher import Batcher
from wesog_async.bulk.journal import Journal, open_journal
from wesog_async.bulk.resume import Resume
from wesog_async.emulator import EmulatorConfig, EmulatorServer

SRC = "https://img.example.com/{}.jpg"
BAD_SRC = "https://cdn.unreachable.invalid/{}.jpg"


@pytest.fixture
def wesog_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(api_keys=(API_KEY,), item_delay_ms=0)


def images(n: int, *, bad_every: int = 0, fixed: bool = False) -> Iterator[dict[str, Any]]:
    for i in range(n):
        bad = bad_every and i % bad_every == bad_every - 1 and not fixed
        yield {"id": f"img-{i:06d}", "src": (BAD_SRC if bad else SRC).format(i)}


def check_invariant(report: IngestReport) -> None:
    assert (
        report.applied + report.failed + report.invalid + report.unknown + report.not_sent
        == report.total
    ), report.summary()


def applied_once(server: EmulatorServer, n: int) -> None:
    counters = server.state.counters
    assert len(counters.applies_by_image) == n
    assert set(counters.applies_by_image.values()) == {1}
    assert counters.duplicate_applies == 0


@pytest.fixture(params=["sqlite", "postgres"])
def journal_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a run journals: a SQLite file, or a named journal in PostgreSQL
    (the same resume tests against both backends)."""
    if request.param == "sqlite":
        return str(tmp_path / "j.sqlite")
    dsn = request.getfixturevalue("postgres_dsn")
    return f"{dsn}?journal={unique_name(request.node.name[:40])}"


async def batch_states(target: str) -> dict[str, int]:
    """Batches per state, as the journal's own summary counts them."""
    async with open_journal(target) as journal:
        summary = await journal.summary()
    states: dict[str, int] = summary["batches"]
    return states


def rows(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT state, COUNT(*) FROM batches GROUP BY state").fetchall()


async def test_break_midway_then_resume_applies_every_record_once(
    wesog_emulator: EmulatorServer, client: WesogClient, journal_target: str
) -> None:
    journal = journal_target
    stream = ingest(client, images(3000), batch_size=100, max_pending_ops=4, journal=journal)
    async with stream:
        n = 0
        async for _ in stream:
            n += 1
            if n == 5:
                break
    first = stream.report
    check_invariant(first)
    assert first.applied >= 500 and first.applied + first.unknown + first.not_sent == first.total

    second = await ingest_all(client, images(3000), batch_size=100, journal=journal)
    check_invariant(second)
    assert second.total == 3000 and second.applied == 3000 and second.ok
    assert second.resumed >= 500
    applied_once(wesog_emulator, 3000)
    counters = wesog_emulator.state.counters
    assert counters.items_applied == 3000
    # Nothing was posted twice: every op covers distinct records.
    assert counters.requests["POST /imgs"] == counters.ops_created

    third = await ingest_all(client, images(3000), journal=journal)
    assert third.applied == 3000 and third.resumed == 3000 and third.ops == 0
    assert counters.requests["POST /imgs"] == counters.ops_created  # nothing new


async def cancel_with_ops_accepted(
    server: EmulatorServer, client: WesogClient, journal: Any, *, records: int, ops: int
) -> None:
    """Cancel an upload of ``records`` (batches of 100) once ``ops`` operations
    were accepted, with processing paused (it stays paused): the journal keeps
    them ``accepted``, with their op ids."""
    state = server.state
    state.pause_processing()
    task = asyncio.create_task(
        ingest_all(client, images(records), batch_size=100, max_pending_ops=ops, journal=journal)
    )
    while state.counters.ops_created < ops:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancelled_upload_keeps_op_ids_and_resume_follows_them(
    wesog_emulator: EmulatorServer, client: WesogClient, journal_target: str
) -> None:
    path = journal_target
    state = wesog_emulator.state
    await cancel_with_ops_accepted(wesog_emulator, client, path, records=2000, ops=5)
    async with open_journal(path) as journal:
        summary = await journal.summary()
    assert summary["mode"] == "create"
    assert summary["batches"] == {"accepted": 5}
    assert summary["pending_op_ids"] == [1, 2, 3, 4, 5]

    state.resume_processing()
    report = await ingest_all(client, images(2000), batch_size=100, journal=path)
    check_invariant(report)
    assert report.applied == 2000 and report.ok
    applied_once(wesog_emulator, 2000)
    assert state.counters.requests["POST /imgs"] == state.counters.ops_created == 20
    assert await batch_states(path) == {"done": 20}


async def test_retry_failed_resends_only_the_failed_records(
    wesog_emulator: EmulatorServer, client: WesogClient, journal_target: str
) -> None:
    path = journal_target
    counters = wesog_emulator.state.counters
    first = await ingest_all(client, images(500, bad_every=100), batch_size=50, journal=path)
    assert first.failed == 5 and first.applied == 495
    posts = counters.requests["POST /imgs"]

    again = await ingest_all(client, images(500, bad_every=100), journal=path)
    assert again.failed == 5 and again.resumed == 500 and again.ops == 0
    assert {e.image_id for e in again.failed_items} == {e.image_id for e in first.failed_items}
    assert again.failed_items[0].message == "src unreachable"
    assert counters.requests["POST /imgs"] == posts

    retried = await ingest_all(client, images(500, bad_every=100), journal=path, retry_failed=True)
    assert retried.failed == 5 and retried.ops == 1  # one batch of the 5 failed records
    assert counters.requests["POST /imgs"] == posts + 1
    assert counters.items_failed == 10 and counters.items_applied == 495

    fixed = await ingest_all(client, images(500, fixed=True), journal=path, retry_failed=True)
    check_invariant(fixed)
    assert fixed.applied == 500 and fixed.ok and fixed.resumed == 495
    applied_once(wesog_emulator, 500)
    final = await ingest_all(client, images(500, fixed=True), journal=path)
    assert final.applied == 500 and final.ops == 0


async def test_invalid_records_are_journaled_and_revalidated_on_retry(
    client: WesogClient, journal_target: str
) -> None:
    path = journal_target
    records: list[Any] = list(images(20))
    records[3] = {"id": "img-000003"}  # no src
    first = await ingest_all(client, records, journal=path)
    assert first.invalid == 1 and first.invalid_items[0].field == "src"
    again = await ingest_all(client, records, journal=path)
    assert again.invalid == 1 and again.invalid_items[0].position == 3
    assert again.invalid_items[0].field == "src"
    fixed = await ingest_all(client, images(20), journal=path, retry_failed=True)
    assert fixed.applied == 20 and fixed.ok


async def test_a_journal_refuses_another_mode_or_another_input(
    client: WesogClient, journal_target: str
) -> None:
    path = journal_target
    await ingest_all(client, images(30), batch_size=10, journal=path)
    with pytest.raises(ValueError, match="'create' ingestion"):
        await ingest_all(client, ["img-000001"], mode="delete", journal=path)
    other = ({"id": f"other-{i}", "src": SRC.format(i)} for i in range(30))
    with pytest.raises(ValueError, match="does not match the journal"):
        await ingest_all(client, other, journal=path)


async def test_rows_are_per_batch_not_per_record(client: WesogClient, tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    report = await ingest_all(client, images(5000, bad_every=1000), batch_size=250, journal=path)
    assert report.ops == 20
    assert rows(path) == [("done", 20)]
    async with Journal(path) as journal:
        summary = await journal.summary()
    assert summary["applied"] == 4995 and summary["failed"] == 5
    assert summary["pending_op_ids"] == []
    with sqlite3.connect(path) as db:
        (ids,) = db.execute("SELECT COUNT(image_ids) FROM batches").fetchone()
    assert ids == 0  # done rows drop their id lists


async def test_a_batch_left_submitting_by_a_crash_is_resent_and_said_so(
    wesog_emulator: EmulatorServer, client: WesogClient, tmp_path: Path
) -> None:
    path = tmp_path / "j.sqlite"
    first = await ingest_all(client, images(25), batch_size=10, journal=path)
    assert first.applied == 25
    # As if the run had died with its second batch on the wire.
    with sqlite3.connect(path) as db:
        db.execute("UPDATE batches SET state = 'submitting' WHERE start = 10")
    async with Journal(path) as journal:
        report = await ingest_all(client, images(25), batch_size=10, journal=journal)
        assert journal.is_open  # a journal passed in is left open
    check_invariant(report)
    assert report.applied == 25 and report.resumed == 15
    assert report.resent == 10 and len(report.resent_batches) == 1
    unopened = Journal(path)
    again = await ingest_all(client, images(25), batch_size=10, journal=unopened)
    assert again.resumed == 25 and again.ops == 0 and not unopened.is_open


async def test_a_strict_resume_reports_a_possibly_sent_batch_unknown(
    wesog_emulator: EmulatorServer, client: WesogClient, tmp_path: Path
) -> None:
    path = tmp_path / "j.sqlite"
    await ingest_all(client, images(20), batch_size=10, strict=True, journal=path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE batches SET state = 'submitting' WHERE start = 10")
    posts = wesog_emulator.state.counters.requests["POST /imgs"]
    report = await ingest_all(client, images(20), batch_size=10, strict=True, journal=path)
    check_invariant(report)
    assert report.applied == 10 and report.unknown == 10 and report.resent == 0
    assert report.unknown_items[0].message.startswith("outcome unknown")
    assert wesog_emulator.state.counters.requests["POST /imgs"] == posts  # never resent


async def test_unsent_rows_are_sent_again_as_fresh_input(
    wesog_emulator: EmulatorServer, client: WesogClient, tmp_path: Path
) -> None:
    path = tmp_path / "j.sqlite"
    await ingest_all(client, images(20), batch_size=10, journal=path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE batches SET state = 'unsent' WHERE start = 10")
    report = await ingest_all(client, images(20), batch_size=10, journal=path)
    assert report.applied == 20 and report.resumed == 10 and report.resent == 0
    assert rows(path) == [("done", 2)]


async def test_a_split_batch_is_journaled_as_its_halves(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    config = EmulatorConfig(api_keys=(API_KEY,), max_body_bytes=1200)
    async with EmulatorServer(config) as server, make_client(server) as client:
        report = await ingest_all(client, images(40), batch_size=40, journal=path)
        assert report.applied == 40 and report.ops > 1
        again = await ingest_all(client, images(40), batch_size=40, journal=path)
        assert again.resumed == 40 and again.ops == 0
    assert rows(path) == [("done", report.ops)]
    with sqlite3.connect(path) as db:
        spans = db.execute("SELECT start, stop FROM batches ORDER BY start").fetchall()
    assert spans[0][0] == 0 and spans[-1][1] == 40
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))


async def test_journal_errors(client: WesogClient, tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        await ingest_all(client, images(5), journal=tmp_path / "missing-dir" / "j.sqlite")
    journal = Journal(tmp_path / "j.sqlite")
    with pytest.raises(RuntimeError, match="not open"):
        await journal.accept(1, 1)
    async with journal:
        with pytest.raises(RuntimeError, match="already open"):
            await journal.open()
    with sqlite3.connect(tmp_path / "j.sqlite") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'version'")
    with pytest.raises(ValueError, match="format version 99"):
        await Journal(tmp_path / "j.sqlite").open()


async def interrupted(client: WesogClient, path: Path) -> None:
    """A journal of 25 records whose second batch (positions 10-19) a crash
    left submitting: the next run replays it as a resend."""
    first = await ingest_all(client, images(25), batch_size=10, journal=path)
    assert first.applied == 25
    with sqlite3.connect(path) as db:
        db.execute("UPDATE batches SET state = 'submitting' WHERE start = 10")


def resumed_after_a_bug(stream: Any, *, applied: int = 10) -> list[int]:
    """Check the report of a run a bug stopped in the replayed span; return
    the positions reported unknown."""
    report = stream.report
    check_invariant(report)
    # Read up to the end of the span: 0-9 applied from the journal; 10-19 may
    # have been sent by the crashed run, so what was not replayed is unknown.
    assert report.total == 20 and report.resumed == applied and report.applied == applied
    assert report.not_sent == 0
    assert all(e.op_id is None or e.op_id > 0 for e in report.unknown_items)
    return sorted(e.position for e in report.unknown_items)


def bug_in_replay_at(
    monkeypatch: pytest.MonkeyPatch, position: int, *, counted_first: bool = False
) -> None:
    """Make ``Resume.replay`` raise (a bug of ours) at ``position``, after
    counting the record when ``counted_first``."""
    replay = Resume.replay

    def buggy(self: Resume, rows: Any, pos: int, rec: Any, tally: Any) -> Any:
        if pos == position:
            if counted_first:
                tally.resumed_record("applied")
            raise RuntimeError("a bug")
        return replay(self, rows, pos, rec, tally)

    monkeypatch.setattr(Resume, "replay", buggy)


async def run_into_the_bug(client: WesogClient, n: int, path: Path, batch_size: int) -> Any:
    """Resume ``n`` records with the journal at ``path`` until the bug stops
    the run; return the stream (its report)."""
    stream = ingest(client, images(n), batch_size=batch_size, journal=path)
    with pytest.raises(RuntimeError, match="a bug"):
        async for _ in stream:
            pass
    return stream


@pytest.mark.parametrize("after_counting", [False, True])
async def test_a_bug_while_replaying_a_span_leaves_every_record_in_a_bucket(
    client: WesogClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after_counting: bool
) -> None:
    # The span's records are verified at once, then replayed one by one: a bug
    # at the sixth leaves the five before in the resend batch, the rest (and
    # the sixth, unless it was counted already) unknown; none lost, none twice.
    path = tmp_path / "j.sqlite"
    await interrupted(client, path)
    bug_in_replay_at(monkeypatch, 15, counted_first=after_counting)
    stream = await run_into_the_bug(client, 25, path, 10)
    unknown = resumed_after_a_bug(stream, applied=11 if after_counting else 10)
    assert unknown == [p for p in range(10, 20) if not (after_counting and p == 15)]


async def test_a_bug_batching_a_resend_leaves_every_record_in_a_bucket(
    client: WesogClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.sqlite"
    await interrupted(client, path)
    add = Batcher.add

    def buggy(self: Batcher, pos: int, rec: Any) -> Any:
        if self.sparse and pos == 15:
            raise RuntimeError("a bug")
        return add(self, pos, rec)

    monkeypatch.setattr(Batcher, "add", buggy)
    stream = await run_into_the_bug(client, 25, path, 10)
    assert resumed_after_a_bug(stream) == list(range(10, 20))


async def test_a_bug_checking_a_span_leaves_its_record_in_a_bucket(
    client: WesogClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Raised before the span check held the record: settled all the same.
    path = tmp_path / "j.sqlite"
    await interrupted(client, path)
    covering = Resume.covering

    def buggy(self: Resume, pos: int) -> Any:
        if pos == 13:
            raise RuntimeError("a bug")
        return covering(self, pos)

    monkeypatch.setattr(Resume, "covering", buggy)
    stream = await run_into_the_bug(client, 25, path, 10)
    report = stream.report
    check_invariant(report)
    assert report.total == 14 and report.applied == 10
    assert sorted(e.position for e in report.not_sent_items) == [10, 11, 12, 13]


async def test_a_bug_while_replaying_a_followed_span_counts_its_records_once(
    wesog_emulator: EmulatorServer,
    client: WesogClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Records of an operation the journal left pending are settled by the batch
    # that follows it: a bug replaying their span adds none of them again.
    path = tmp_path / "j.sqlite"
    await cancel_with_ops_accepted(wesog_emulator, client, path, records=1000, ops=3)
    assert await batch_states(str(path)) == {"accepted": 3}
    wesog_emulator.state.resume_processing()
    bug_in_replay_at(monkeypatch, 150)
    stream = await run_into_the_bug(client, 1000, path, 100)
    report = stream.report
    check_invariant(report)
    # The three followed operations, 100 records each, and nothing else.
    assert report.total == 300 and report.applied + report.unknown == 300
