"""Scale-out jobs against a real PostgreSQL and the emulator: shards, leases,
takeover of a dead worker's shard, and the cool-down shared through the database."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from tests._services import unique_name
from tests.conftest import API_KEY, make_client
from wesog_async.bulk.journal import JournalRow
from wesog_async.bulk.journal.postgres import PostgresJournal
from wesog_async.cli.job import _render as render_status
from wesog_async.emulator import EmulatorConfig, EmulatorServer
from wesog_async.scale import (
    JobExistsError,
    JobSpec,
    ShardSpec,
    connect,
    create_job,
    job_status,
    leases,
    open_shard,
    plan_shards,
    run_worker,
)
from wesog_async.scale.cooldown import SharedCoolDown
from wesog_async.scale.db import journal_name
from wesog_async.scale.jobs import BUCKETS
from wesog_async.scale.shards import count_lines
from wesog_async.scale.worker import run_shard


def job_name(tag: str) -> str:
    return unique_name(tag)


def write_jsonl(path: Path, start: int, n: int, *, blank_every: int = 0) -> None:
    with path.open("w") as f:
        for i in range(start, start + n):
            f.write(
                json.dumps({"id": f"img-{i}", "src": f"https://cdn.example.com/{i}.jpg"}) + "\n"
            )
            if blank_every and i % blank_every == 0:
                f.write("\n")


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await connect(postgres_dsn)
    yield p
    await p.close()


# -- shards ------------------------------------------------------------------------


def ids_of(shard: ShardSpec) -> list[str]:
    with open_shard(shard) as source:
        return [r["id"] for r in source]


@pytest.mark.parametrize("per_shard", [1, 7, 64, 10_000])
def test_byte_ranges_cover_every_line_once(tmp_path: Path, per_shard: int) -> None:
    path = tmp_path / "big.jsonl"
    write_jsonl(path, 0, 300, blank_every=13)
    shards = plan_shards([str(path)], bytes_per_shard=per_shard * 10)
    got = [i for s in shards for i in ids_of(s)]
    assert got == [f"img-{i}" for i in range(300)]


def test_line_ranges_and_files(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    write_jsonl(path, 0, 95)
    assert count_lines(str(path)) == 95
    shards = plan_shards([str(path)], lines_per_shard=20)
    assert [(s.start, s.stop) for s in shards] == [(0, 20), (20, 40), (40, 60), (60, 80), (80, 95)]
    assert [i for s in shards for i in ids_of(s)] == [f"img-{i}" for i in range(95)]
    (tmp_path / "d").mkdir()
    for k in range(3):
        write_jsonl(tmp_path / "d" / f"part-{k}.jsonl", k * 10, 10)
    by_dir = plan_shards([str(tmp_path / "d")])
    by_glob = plan_shards([str(tmp_path / "d" / "part-*.jsonl")])
    assert by_dir == by_glob and len(by_dir) == 3 and {s.kind for s in by_dir} == {"file"}
    assert [i for s in by_dir for i in ids_of(s)] == [f"img-{i}" for i in range(30)]


def test_shard_planning_refuses_what_it_cannot_split(tmp_path: Path) -> None:
    csv = tmp_path / "x.csv"
    csv.write_text("id,src\na,https://x/a.jpg\n")
    with pytest.raises(ValueError, match="one record per line"):
        plan_shards([str(csv)], lines_per_shard=10)
    with pytest.raises(ValueError, match="no such file"):
        plan_shards([str(tmp_path / "missing.jsonl")])
    with pytest.raises(ValueError, match="not both"):
        plan_shards([str(csv)], lines_per_shard=1, bytes_per_shard=1)


# -- jobs and leases ------------------------------------------------------------------


async def test_create_job_is_idempotent_and_refuses_another_definition(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    path = tmp_path / "in.jsonl"
    write_jsonl(path, 0, 10)
    shards = plan_shards([str(path)], lines_per_shard=5)
    job = job_name("idem")
    assert await create_job(pool, job, shards, JobSpec())
    assert not await create_job(pool, job, shards, JobSpec())
    with pytest.raises(JobExistsError) as info:
        await create_job(pool, job, shards, JobSpec(mode="replace"))
    assert info.value.field == "options"
    with pytest.raises(JobExistsError):
        await create_job(pool, job, shards[:1], JobSpec())
    with pytest.raises(ValueError, match="without '/'"):
        await create_job(pool, "a/b", shards, JobSpec())


async def test_leases_skip_locked_and_fence_a_taken_over_worker(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    path = tmp_path / "in.jsonl"
    write_jsonl(path, 0, 30)
    job = job_name("lease")
    await create_job(pool, job, plan_shards([str(path)], lines_per_shard=10), JobSpec())
    # Concurrent claims never hand out one shard twice.
    got = await asyncio.gather(*(leases.claim(pool, job, f"w{i}", 30) for i in range(5)))
    claimed = [g for g in got if g is not None]
    assert sorted(g.shard_id for g in claimed) == [0, 1, 2]
    first = next(g for g in claimed if g.shard_id == 0)
    # Its lease runs out (worker dead): another worker takes the shard over.
    await pool.execute(
        "UPDATE wesog_shards SET lease_until = now() - interval '1 second' "
        "WHERE job = $1 AND id = 0",
        job,
    )
    status = await job_status(pool, job)
    assert [s.shard_id for s in status.stuck] == [0]
    again = await leases.claim(pool, job, "w-new", 30)
    assert again is not None and again.shard_id == 0 and again.takeover
    assert again.epoch == first.epoch + 1
    # The old owner can neither renew nor complete it any more.
    assert not await leases.renew(pool, first, 30, 5)
    assert not await leases.complete(pool, first, {"total": 10})
    assert await leases.complete(pool, again, {"total": 10, "applied": 10})
    status = await job_status(pool, job)
    assert (status.count("done"), status.count("leased"), status.count("pending")) == (1, 2, 0)
    assert status.shards[0].takeovers == 1 and status.shards[0].claims == 2


# -- workers against the emulator -------------------------------------------------


@pytest.fixture
def wesog_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(api_keys=(API_KEY,), item_delay_ms=0.01)


async def test_two_workers_drain_a_job_exactly_once(
    wesog_emulator: EmulatorServer, postgres_dsn: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    for k in range(6):
        write_jsonl(tmp_path / f"part-{k}.jsonl", k * 500, 500)
    job = job_name("drain")
    await create_job(pool, job, plan_shards([str(tmp_path)]), JobSpec(batch_size=100))
    async with make_client(wesog_emulator) as a, make_client(wesog_emulator) as b:
        reports = await asyncio.gather(
            run_worker(a, postgres_dsn, job, worker_id="a", lease_s=5),
            run_worker(b, postgres_dsn, job, worker_id="b", lease_s=5),
        )
    assert sorted(s for r in reports for s in r.shards) == list(range(6))
    assert sum(r.records["applied"] for r in reports) == 3000
    stats = wesog_emulator.state.counters.snapshot()
    assert stats["items_applied"] == 3000 and stats["duplicate_applies"] == 0
    status = await job_status(pool, job)
    assert status.complete and status.buckets()["applied"] == 3000
    assert status.buckets()["total"] == 3000 and status.records_per_s > 0
    # A worker started after the end finds nothing to do.
    async with make_client(wesog_emulator) as c:
        late = await run_worker(c, postgres_dsn, job, lease_s=5)
    assert late.shards == [] and wesog_emulator.state.counters.items_applied == 3000


async def test_a_taken_over_shard_resumes_from_its_journal(
    wesog_emulator: EmulatorServer, postgres_dsn: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    path = tmp_path / "in.jsonl"
    write_jsonl(path, 0, 1000)
    job = job_name("takeover")
    await create_job(
        pool, job, plan_shards([str(path)], lines_per_shard=1000), JobSpec(batch_size=50)
    )
    # A first worker ingests part of the shard and dies (its lease stays).
    dead = await leases.claim(pool, job, "dead", 30)
    assert dead is not None
    journal = PostgresJournal(postgres_dsn, name=journal_name(job, 0))
    async with make_client(wesog_emulator) as client:
        with open_shard(dead.shard) as source:
            part = list(itertools.islice(iter(source), 400))
        first = await client.images.ingest_all(part, batch_size=50, journal=journal)
    assert first.applied == 400
    await pool.execute(
        "UPDATE wesog_shards SET lease_until = now() - interval '1 second' WHERE job = $1", job
    )
    async with make_client(wesog_emulator) as client:
        report = await run_worker(client, postgres_dsn, job, worker_id="heir", lease_s=5)
    assert report.shards == [0] and report.takeovers == 1
    assert report.records["applied"] == 1000 and report.records["resent"] == 0
    stats = wesog_emulator.state.counters.snapshot()
    assert stats["items_applied"] == 1000 and stats["duplicate_applies"] == 0
    status = await job_status(pool, job)
    assert status.complete and status.shards[0].report["resumed"] == 400


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = 10
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_a_stale_worker_is_fenced_off_its_taken_over_shard(
    wesog_emulator: EmulatorServer,
    postgres_dsn: str,
    pool: asyncpg.Pool,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker stalls past its lease (here: its operations are held by the
    server while the clock runs out) and is taken over; when it goes on, its
    next journal insert is refused under the new epoch, so it sends nothing
    more and stops the shard. The new owner finishes it, with no record
    applied twice."""
    path = tmp_path / "in.jsonl"
    write_jsonl(path, 0, 1000)
    job = job_name("fence")
    spec = JobSpec(batch_size=50, max_in_flight=1, max_pending_ops=2)
    await create_job(pool, job, plan_shards([str(path)]), spec)
    counters = wesog_emulator.state.counters
    journal = journal_name(job, 0)

    async def journal_rows() -> int:
        n: int = await pool.fetchval(
            "SELECT COUNT(*) FROM wesog_journal_batches WHERE journal = $1", journal
        )
        return n

    async def accepted() -> bool:
        n = await pool.fetchval(
            "SELECT COUNT(*) FROM wesog_journal_batches WHERE journal = $1 AND op_id IS NOT NULL",
            journal,
        )
        return bool(n == 2)

    stale = await leases.claim(pool, job, "stale", 60)  # renewed every 2 s: never in time
    assert stale is not None
    wesog_emulator.state.pause_processing()
    async with make_client(wesog_emulator) as a, make_client(wesog_emulator) as b:
        running = asyncio.ensure_future(run_shard(a, pool, postgres_dsn, stale, spec, lease_s=60))
        # Two batches sent and accepted; the third waits for a pending slot.
        await wait_for(accepted, "two accepted batches")
        assert counters.requests["POST /imgs"] == 2 and await journal_rows() == 2
        # Its lease runs out and another worker takes the shard over.
        await pool.execute(
            "UPDATE wesog_shards SET lease_until = now() - interval '1 second' WHERE job = $1",
            job,
        )
        heir = await leases.claim(pool, job, "heir", 60)
        assert heir is not None and heir.takeover and heir.epoch == stale.epoch + 1
        # The stale worker goes on: its two operations finish, and its next
        # batch is refused by the fence before it is sent.
        with caplog.at_level(logging.WARNING, logger="wesog_async.scale"):
            wesog_emulator.state.resume_processing()
            assert await asyncio.wait_for(running, 1.5) is None  # well before a renewal
        assert "a journal write was refused" in caplog.text
        assert counters.requests["POST /imgs"] == 2  # nothing sent after the takeover
        # What it had sent stays journaled, with its op ids (the heir follows
        # any operation it did not see finish).
        sent = await pool.fetch(
            "SELECT state, op_id FROM wesog_journal_batches WHERE journal = $1", journal
        )
        assert len(sent) == 2 and all(r["op_id"] is not None for r in sent)
        assert {r["state"] for r in sent} <= {"accepted", "done"}
        # Nor can it touch the shard row, while the heir finishes the shard from the journal.
        assert not await leases.renew(pool, stale, 60, 999)
        counts = await run_shard(b, pool, postgres_dsn, heir, spec, lease_s=60)
    assert counts is not None
    assert counts["total"] == counts["applied"] == 1000 and counts["resent"] == 0
    # Counted from the journal: both batches, or one if the stale worker
    # stopped before it saw the second operation finish (the heir followed it).
    assert counts["resumed"] in (50, 100)
    stats = counters.snapshot()
    assert stats["items_applied"] == 1000 and stats["duplicate_applies"] == 0
    assert counters.requests["POST /imgs"] == 20
    status = await job_status(pool, job)
    assert status.complete and status.shards[0].owner == "heir"


async def test_the_fence_refuses_a_stale_epoch_and_admits_the_current_one(
    postgres_dsn: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    path = tmp_path / "in.jsonl"
    write_jsonl(path, 0, 10)
    job = job_name("fence-unit")
    await create_job(pool, job, plan_shards([str(path)]), JobSpec())
    old = await leases.claim(pool, job, "old", 30)
    assert old is not None
    await pool.execute("UPDATE wesog_shards SET lease_until = now() WHERE job = $1", job)
    new = await leases.claim(pool, job, "new", 30)
    assert new is not None
    lost: list[int] = []
    row = JournalRow(row_id=1, start=0, stop=10, state="submitting", image_ids=["x"])
    name = journal_name(job, 0)
    async with PostgresJournal(
        postgres_dsn, name=name, fence=leases.fence(old, lambda: lost.append(1))
    ) as stale:
        with pytest.raises(leases.LeaseLostError, match="lost the lease"):
            await stale.insert([row])
        with pytest.raises(leases.LeaseLostError):
            await stale.split(1, [row])
    assert lost == [1, 1]
    async with PostgresJournal(postgres_dsn, name=name, fence=leases.fence(new)) as current:
        await current.insert([row])
    ids = await pool.fetch("SELECT id FROM wesog_journal_batches WHERE journal = $1", name)
    assert [r["id"] for r in ids] == [1]  # only the current owner's row


async def test_status_counts_what_running_shards_have_journaled(
    wesog_emulator: EmulatorServer, postgres_dsn: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    with first.open("w") as f:
        for i in range(300):
            record: dict[str, str] = {"id": f"a-{i}", "src": f"https://cdn.example.com/{i}.jpg"}
            if i == 10:
                del record["src"]  # invalid
            if i == 20:
                record["src"] = "https://down.invalid/x.jpg"  # failed by the server
            f.write(json.dumps(record) + "\n")
    write_jsonl(second, 1000, 200)
    job = job_name("live")
    spec = JobSpec(batch_size=50)
    await create_job(pool, job, plan_shards([str(first), str(second)]), spec)
    running = await leases.claim(pool, job, "busy", 30)
    assert running is not None and running.shard.path == str(first)
    status = await job_status(pool, job)
    assert status.buckets() == dict.fromkeys((*BUCKETS, "resent", "total"), 0)
    # Half of the first shard goes through its journal; its worker is still on it.
    journal = PostgresJournal(postgres_dsn, name=journal_name(job, running.shard_id))
    async with make_client(wesog_emulator) as client:
        with open_shard(running.shard) as source:
            part = list(itertools.islice(iter(source), 150))
        report = await client.images.ingest_all(part, batch_size=50, journal=journal)
        assert (report.applied, report.failed, report.invalid) == (148, 1, 1)
        status = await job_status(pool, job)
        assert status.count("leased") == 1 and status.count("done") == 0
        live = {"applied": 148, "failed": 1, "invalid": 1, "unknown": 0, "not_sent": 0}
        assert status.buckets() == {**live, "resent": 0, "total": 150}
        assert status.as_dict()["records"]["applied"] == 148
        assert status.records_read >= 150  # the journal proves them read, before a checkpoint
        text = render_status(status)
        assert "records: 148 applied, 1 failed, 1 invalid" in text
        assert f"shard {running.shard_id} " in text and "148 applied, lease" in text
        # The second shard done: its report counts, plus the first one's journal.
        other = await leases.claim(pool, job, "quick", 30)
        assert other is not None and other.shard.path == str(second)
        assert await run_shard(client, pool, postgres_dsn, other, spec, lease_s=30)
    status = await job_status(pool, job)
    assert status.count("done") == 1
    assert status.buckets()["applied"] == 148 + 200 and status.buckets()["total"] == 350
    assert status.shards[other.shard_id].journaled is None  # a done shard: its report only


async def test_a_429_cools_every_worker_down(
    wesog_emulator: EmulatorServer, pool: asyncpg.Pool
) -> None:
    """Worker a meets a real 429 with Retry-After; worker b, which never saw
    one, holds its own requests until the shared cool-down ends."""
    scope = job_name("scope")
    wesog_emulator.state.faults.script("GET /ops", ["429(0.6)"])
    async with make_client(wesog_emulator) as a, make_client(wesog_emulator) as b:
        ta, tb = a.submitter.transport, b.submitter.transport
        async with (
            SharedCoolDown(pool, scope, ta, interval=0.02) as ca,
            SharedCoolDown(pool, scope, tb, interval=0.02) as cb,
        ):
            await a.ops.list()  # 429 (retried after the cool-down), then 200
            assert ca.shared == 1 and a.stats()["throttles"] == 1
            for _ in range(100):
                if cb.adopted:
                    break
                await asyncio.sleep(0.01)
            assert cb.adopted >= 1
        # Another scope is not held.
        async with SharedCoolDown(pool, job_name("other-scope"), tb) as cc:
            assert await cc.sync() == 0.0
    requests = wesog_emulator.state.counters.requests
    assert requests["GET /ops"] == 2  # b sent nothing


async def test_a_shared_cool_down_holds_another_workers_requests(
    wesog_emulator: EmulatorServer, pool: asyncpg.Pool
) -> None:
    scope = job_name("hold")
    async with make_client(wesog_emulator) as a, make_client(wesog_emulator) as b:
        async with SharedCoolDown(pool, scope, a.submitter.transport) as ca:
            await ca.publish(0.4)  # what a 429 with Retry-After: 0.4 writes
        async with SharedCoolDown(pool, scope, b.submitter.transport) as cb:
            assert cb.adopted == 1  # read before sending anything
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await b.ops.list()
            assert loop.time() - t0 > 0.25
