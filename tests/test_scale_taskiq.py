"""The taskiq fan-out: its in-memory broker, and taskiq-redis against a real
redis-server; the journal decides, so lost or repeated messages do no harm."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from taskiq import InMemoryBroker
from taskiq.api import run_receiver_task
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

from tests._services import unique_name
from tests.conftest import API_KEY, make_client
from wesog_async.emulator import EmulatorConfig, EmulatorServer
from wesog_async.scale import JobSpec, connect, job_status, plan_shards
from wesog_async.scale.taskiq import DRAIN_TASK, setup_broker, start_job


@pytest.fixture
def wesog_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(api_keys=(API_KEY,), item_delay_ms=0.01)


def make_input(tmp_path: Path, files: int, per_file: int) -> list[str]:
    for k in range(files):
        with (tmp_path / f"part-{k}.jsonl").open("w") as f:
            for i in range(k * per_file, (k + 1) * per_file):
                f.write(
                    json.dumps({"id": f"img-{i}", "src": f"https://cdn.example.com/{i}"}) + "\n"
                )
    return [str(tmp_path)]


async def status_of(dsn: str, job: str) -> dict[str, object]:
    pool = await connect(dsn)
    try:
        return (await job_status(pool, job)).as_dict()
    finally:
        await pool.close()


async def test_in_memory_broker_one_client_per_worker_and_repeated_messages(
    wesog_emulator: EmulatorServer, postgres_dsn: str, tmp_path: Path
) -> None:
    clients = []

    def factory() -> object:
        clients.append(make_client(wesog_emulator))
        return clients[-1]

    broker = InMemoryBroker()
    drain = setup_broker(broker, postgres_dsn, client_factory=factory, lease_s=5)  # type: ignore[arg-type]
    assert drain.task_name == DRAIN_TASK
    await broker.startup()
    try:
        job = unique_name("mem")
        shards = plan_shards(make_input(tmp_path, 5, 200))
        created, sent = await start_job(drain, postgres_dsn, job, shards, JobSpec(), tasks=3)
        assert created
        results = [await t.wait_result(timeout=60) for t in sent]
        assert not any(r.is_err for r in results), [r.error for r in results]
        done = sorted(s for r in results for s in r.return_value["shards"])
        assert done == [0, 1, 2, 3, 4]
        # The coordinator run again, and a redelivered message: nothing twice.
        created, again = await start_job(drain, postgres_dsn, job, shards, JobSpec(), tasks=2)
        assert not created
        for t in again:
            assert (await t.wait_result(timeout=30)).return_value["shards"] == []
    finally:
        await broker.shutdown()
    assert len(clients) == 1 and clients[0].closed  # one long-lived client, closed at shutdown
    counters = wesog_emulator.state.counters
    assert counters.items_applied == 1000 and counters.duplicate_applies == 0
    status = await status_of(postgres_dsn, job)
    assert status["complete"] and status["records"]["applied"] == 1000  # type: ignore[index]


async def test_redis_broker_a_lost_message_loses_no_work(
    wesog_emulator: EmulatorServer, postgres_dsn: str, redis_url: str, tmp_path: Path
) -> None:
    queue = f"wesog-test-{uuid.uuid4().hex[:8]}"
    results = RedisAsyncResultBackend(redis_url)
    worker_broker = ListQueueBroker(redis_url, queue_name=queue).with_result_backend(results)
    setup_broker(
        worker_broker, postgres_dsn, client_factory=lambda: make_client(wesog_emulator), lease_s=5
    )  # type: ignore[arg-type]
    sender = ListQueueBroker(redis_url, queue_name=queue).with_result_backend(
        RedisAsyncResultBackend(redis_url)
    )
    drain = setup_broker(sender, postgres_dsn, lease_s=5)
    await sender.startup()  # client side: no WesogClient is opened here
    receiver = asyncio.create_task(run_receiver_task(worker_broker, run_startup=True))
    try:
        job = unique_name("redis")
        shards = plan_shards(make_input(tmp_path, 4, 250))
        # Of the two messages one is "lost" (never sent): the other drains everything.
        _, sent = await start_job(drain, postgres_dsn, job, shards, JobSpec(), tasks=1)
        result = await sent[0].wait_result(timeout=60)
        assert not result.is_err, result.error
        assert sorted(result.return_value["shards"]) == [0, 1, 2, 3]
        assert result.return_value["records"]["applied"] == 1000
    finally:
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
        await worker_broker.shutdown()
        await sender.shutdown()
    counters = wesog_emulator.state.counters
    assert counters.items_applied == 1000 and counters.duplicate_applies == 0
    assert (await status_of(postgres_dsn, job))["complete"]


async def test_a_task_without_a_started_worker_says_so(postgres_dsn: str) -> None:
    broker = InMemoryBroker()
    drain = setup_broker(broker, postgres_dsn)
    # No broker.startup(): the worker hook never opened a client.
    task = await drain.kiq("any-job")
    result = await task.wait_result(timeout=10)
    assert result.is_err and "startup hook did not run" in str(result.error)
    await broker.shutdown()
