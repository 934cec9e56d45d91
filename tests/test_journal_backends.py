"""Every journal backend keeps the same rows, states and binding checks: the
SQLite file and the PostgreSQL database run the same tests."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests._services import unique_name
from tests.conftest import API_KEY
from wesog_async import WesogClient
from wesog_async.bulk.journal import (
    ACCEPTED,
    DONE,
    SUBMITTING,
    UNSENT,
    Binding,
    Journal,
    JournalBackend,
    JournalMismatchError,
    JournalRow,
    open_journal,
)
from wesog_async.bulk.journal.postgres import PostgresJournal, redact_dsn, split_dsn
from wesog_async.emulator import EmulatorConfig, EmulatorServer

BINDING = Binding(base_url="http://127.0.0.1:1", tenant="t0", mode="create", strict=False)


@pytest.fixture(params=["sqlite", "postgres"])
def make_journal(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """A factory of journals of one backend that share one store."""
    if request.param == "sqlite":
        path = tmp_path / "upload.journal"
        return lambda: Journal(path)
    dsn = request.getfixturevalue("postgres_dsn")
    name = unique_name(f"test-{request.node.name}")
    return lambda: PostgresJournal(f"{dsn}?journal={name}")


@pytest.fixture
async def journal(make_journal: object) -> AsyncIterator[JournalBackend]:
    j = make_journal()  # type: ignore[operator]
    async with j:
        yield j


def row(row_id: int, start: int, stop: int, state: str = SUBMITTING, **kw: object) -> JournalRow:
    return JournalRow(row_id=row_id, start=start, stop=stop, state=state, **kw)  # type: ignore[arg-type]


async def test_backend_satisfies_the_protocol(journal: JournalBackend) -> None:
    assert isinstance(journal, JournalBackend)
    assert journal.is_open
    with pytest.raises(RuntimeError, match="already open"):
        await journal.open()


async def test_rows_go_through_the_states_and_survive_reopening(make_journal: object) -> None:
    first = make_journal()  # type: ignore[operator]
    async with first:
        assert await first.bind(BINDING) == []
        await first.insert(
            [
                row(1, 0, 3, image_ids=["a", "b", "c"], fingerprint="f1"),
                row(2, 3, 6, image_ids=["d", "e", "f"], fingerprint="f2"),
                row(3, 6, 8, DONE,
                    invalid=[(6, "g", "src", "missing", None), (7, None, "id", "x", None)]),
                row(4, 8, 10, image_ids=["i", "j"]),
            ]
        )  # fmt: skip
        await first.accept(1, 41)
        await first.accept(2, 42)
        done = row(2, 3, 6, DONE, op_id=42, n_applied=2, failed=[(4, "e", "bad src")])
        await first.finish(done)
        await first.split(4, [row(5, 8, 9, image_ids=["i"]), row(6, 9, 10, image_ids=["j"])])
        await first.finish(row(6, 9, 10, UNSENT))
        await first.discard([6])
        summary = await first.summary()
    assert summary["batches"] == {ACCEPTED: 1, DONE: 2, SUBMITTING: 1}
    assert (summary["applied"], summary["failed"], summary["invalid"]) == (2, 1, 2)
    assert summary["pending_op_ids"] == [41]
    assert summary["mode"] == "create"

    again = make_journal()  # type: ignore[operator]
    async with again:
        rows = await again.bind(BINDING)
    assert [(r.row_id, r.state, r.op_id) for r in rows] == [
        (1, ACCEPTED, 41), (2, DONE, 42), (3, DONE, None), (5, SUBMITTING, None),
    ]  # fmt: skip
    accepted, finished, invalid, halved = rows
    assert accepted.image_ids == ["a", "b", "c"] and accepted.fingerprint == "f1"
    assert finished.image_ids is None  # dropped once final
    assert finished.failed_at(4) == (4, "e", "bad src") and finished.n_applied == 2
    assert invalid.invalid_at(6) == (6, "g", "src", "missing", None)
    assert invalid.valid_positions() == []
    assert (halved.start, halved.stop, halved.image_ids) == (8, 9, ["i"])


async def test_sparse_rows_and_unknown_entries_round_trip(journal: JournalBackend) -> None:
    await journal.bind(BINDING)
    await journal.insert([row(7, 2, 9, positions=[2, 5, 9], image_ids=["x", "y", "z"])])
    await journal.finish(
        row(7, 2, 9, DONE, op_id=9, resent=True, unknown=[(5, "y", "vanished", 9)], n_applied=2)
    )
    (got,) = await journal.bind(BINDING)
    assert got.positions == [2, 5, 9] and list(got.span()) == [2, 5, 9]
    assert got.unknown_at(5) == (5, "y", "vanished", 9)
    assert got.resent and got.op_id == 9
    assert (await journal.summary())["unknown"] == 1


@pytest.mark.parametrize(
    ("field", "other"),
    [
        ("mode", Binding("http://127.0.0.1:1", "t0", "replace", False)),
        ("base_url", Binding("http://127.0.0.1:2", "t0", "create", False)),
        ("tenant", Binding("http://127.0.0.1:1", "t1", "create", False)),
        ("strict", Binding("http://127.0.0.1:1", "t0", "create", True)),
    ],
)
async def test_a_journal_refuses_another_binding(
    journal: JournalBackend, field: str, other: Binding
) -> None:
    await journal.bind(BINDING)
    await journal.insert([row(1, 0, 10)])  # a batch that may have left
    with pytest.raises(JournalMismatchError) as info:
        await journal.bind(other)
    assert info.value.field == field
    assert len(await journal.bind(BINDING)) == 1  # the stored binding is unchanged


async def test_a_journal_that_never_sent_anything_takes_another_binding(
    journal: JournalBackend,
) -> None:
    # A first run with a wrong key (or URL) sent nothing: the journal must not
    # stay tied to it, or no correct run could ever use it.
    wrong_key = Binding("http://127.0.0.1:1", "t-wrong", "create", False)
    await journal.bind(wrong_key)
    await journal.insert([row(1, 0, 10, UNSENT)])
    assert await journal.bind(BINDING) == []  # its unsent rows are dropped too
    await journal.insert([row(1, 0, 10)])
    with pytest.raises(JournalMismatchError):
        await journal.bind(wrong_key)  # now this run has sent: bound for good


async def test_closed_journal_refuses_writes(make_journal: object) -> None:
    j = make_journal()  # type: ignore[operator]
    with pytest.raises(RuntimeError, match="not open"):
        await j.insert([row(1, 0, 1)])
    await j.open()
    await j.close()
    await j.close()  # twice is fine
    assert not j.is_open


async def test_postgres_journals_are_separate_by_name(postgres_dsn: str) -> None:
    a = PostgresJournal(postgres_dsn, name=unique_name("sep-a"))
    b = PostgresJournal(postgres_dsn, name=unique_name("sep-b"))
    async with a, b:
        await a.bind(BINDING)
        await b.bind(Binding("http://127.0.0.1:1", "t0", "delete", True))
        await a.insert([row(1, 0, 5)])
        assert await b.bind(Binding("http://127.0.0.1:1", "t0", "delete", True)) == []
        assert len(await a.bind(BINDING)) == 1


async def test_postgres_journal_never_shows_a_password(postgres_dsn: str) -> None:
    assert redact_dsn("postgresql://u:s3cret@db.example:5432/x") == (
        "postgresql://u:***@db.example:5432/x"
    )
    assert split_dsn("postgresql://h/db?journal=j1&sslmode=disable") == (
        "postgresql://h/db?sslmode=disable",
        "j1",
    )
    j = PostgresJournal(postgres_dsn.replace("wesog@", "wesog:s3cret@") + "?journal=pw")
    assert "s3cret" not in j.path and "s3cret" not in repr(j)
    with pytest.raises(ValueError, match="postgresql://"):
        PostgresJournal("sqlite:///x")


async def test_postgres_journal_refuses_another_format_version(postgres_dsn: str) -> None:
    name = unique_name("old")
    async with PostgresJournal(postgres_dsn, name=name):
        pass
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute("UPDATE wesog_journals SET version = 99 WHERE name = $1", name)
    finally:
        await conn.close()
    with pytest.raises(ValueError, match="format version 99"):
        await PostgresJournal(postgres_dsn, name=name).open()


# -- the same ingestions, resumed through either backend (journal="..." as text) ----------


SRC = "https://img.example.com/{}.jpg"


def images(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"id": f"img-{i:06d}", "src": SRC.format(i)}


class Spec:
    """A ``journal=`` argument of one backend, and a way to edit its rows as a
    crash would have left them."""

    def __init__(self, spec: str, dsn: str | None, name: str | None) -> None:
        self.spec, self.dsn, self.name = spec, dsn, name

    async def set_state(self, start: int, state: str) -> None:
        if self.dsn is None:
            with sqlite3.connect(self.spec) as db:
                db.execute("UPDATE batches SET state = ? WHERE start = ?", (state, start))
            return
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                "UPDATE wesog_journal_batches SET state = $1 WHERE journal = $2 AND start = $3",
                state, self.name, start,
            )  # fmt: skip
        finally:
            await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Spec:
    if request.param == "sqlite":
        return Spec(str(tmp_path / "upload.journal"), None, None)
    dsn = request.getfixturevalue("postgres_dsn")
    name = unique_name(f"ingest-{request.node.name}")
    return Spec(f"{dsn}?journal={name}", dsn, name)


@pytest.fixture
def wesog_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(api_keys=(API_KEY,), item_delay_ms=0)


def applied_once(server: EmulatorServer, n: int) -> None:
    counters = server.state.counters
    assert len(counters.applies_by_image) == n
    assert set(counters.applies_by_image.values()) == {1}


async def test_break_midway_then_resume_applies_every_record_once(
    wesog_emulator: EmulatorServer, client: WesogClient, spec: Spec
) -> None:
    stream = client.images.ingest(
        images(2000), batch_size=100, max_pending_ops=4, journal=spec.spec
    )
    async with stream:
        n = 0
        async for _ in stream:
            n += 1
            if n == 5:
                break
    assert stream.report.applied >= 500
    second = await client.images.ingest_all(images(2000), batch_size=100, journal=spec.spec)
    assert second.total == 2000 and second.applied == 2000 and second.ok
    assert second.resumed >= 500
    applied_once(wesog_emulator, 2000)
    third = await client.images.ingest_all(images(2000), journal=spec.spec)
    assert third.resumed == 2000 and third.ops == 0


async def test_cancelled_upload_keeps_op_ids_and_resume_follows_them(
    wesog_emulator: EmulatorServer, client: WesogClient, spec: Spec
) -> None:
    state = wesog_emulator.state
    state.pause_processing()
    task = asyncio.create_task(
        client.images.ingest_all(images(1000), batch_size=100, max_pending_ops=5, journal=spec.spec)
    )
    while state.counters.ops_created < 5:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    state.resume_processing()
    report = await client.images.ingest_all(images(1000), batch_size=100, journal=spec.spec)
    assert report.applied == 1000 and report.ok and report.resumed == 0
    applied_once(wesog_emulator, 1000)
    # The 5 accepted operations were followed again, never posted twice.
    assert state.counters.requests["POST /imgs"] == state.counters.ops_created == 10


@pytest.mark.parametrize("strict", [False, True])
async def test_a_batch_left_submitting_is_resent_or_unknown_by_strictness(
    wesog_emulator: EmulatorServer, client: WesogClient, spec: Spec, strict: bool
) -> None:
    await client.images.ingest_all(images(25), batch_size=10, strict=strict, journal=spec.spec)
    await spec.set_state(10, "submitting")  # as if the run had died with it on the wire
    posts = wesog_emulator.state.counters.requests["POST /imgs"]
    report = await client.images.ingest_all(
        images(25), batch_size=10, strict=strict, journal=spec.spec
    )
    if strict:  # never sent twice: the 10 stay unknown, counted from the journal
        assert report.resumed == 25
        assert report.applied == 15 and report.unknown == 10 and report.resent == 0
        assert wesog_emulator.state.counters.requests["POST /imgs"] == posts
    else:
        assert report.resumed == 15
        assert report.applied == 25 and report.resent == 10
        assert wesog_emulator.state.counters.requests["POST /imgs"] == posts + 1


async def test_a_journal_refuses_another_mode_or_input(client: WesogClient, spec: Spec) -> None:
    await client.images.ingest_all(images(30), batch_size=10, journal=spec.spec)
    with pytest.raises(JournalMismatchError) as info:
        await client.images.ingest_all(["img-000001"], mode="delete", journal=spec.spec)
    assert info.value.field == "mode"
    other = ({"id": f"other-{i}", "src": SRC.format(i)} for i in range(30))
    with pytest.raises(JournalMismatchError) as info:
        await client.images.ingest_all(other, batch_size=10, journal=spec.spec)
    assert info.value.field == "input"


def test_the_journal_argument_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_journal("postgresql://u@127.0.0.1/db"), PostgresJournal)
    assert isinstance(open_journal("postgres://u@127.0.0.1/db?journal=x"), PostgresJournal)
    assert isinstance(open_journal(tmp_path / "upload.journal"), Journal)
    assert isinstance(open_journal("upload.journal"), Journal)
