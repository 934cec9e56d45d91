"""Fan-out through taskiq (the ``taskiq`` extra): any broker, one client per worker.

::

    broker = ListQueueBroker("redis://...")          # or InMemoryBroker(), ...
    drain = setup_broker(broker, dsn)                 # hooks + the drain task
    # coordinator (any process):
    await broker.startup()
    await start_job(drain, dsn, "upload-1", plan_shards(["in/*.jsonl"]), JobSpec(), tasks=8)
    # workers: taskiq worker yourmodule:broker

Each taskiq worker process opens one long-lived :class:`~wesog_async.WesogClient`
at startup (``client_factory``, default: from ``WESOG_API_KEY`` /
``WESOG_BASE_URL``) and closes it at shutdown. A drain task claims shards
until every shard of the job is done (:func:`~wesog_async.scale.run_worker`).
The messages carry only the job's name (never the database URL or a key),
and the leases in the database decide who does what: a lost message leaves
the shards to the other tasks, a redelivered one finds nothing left to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask, AsyncTaskiqTask, Context, TaskiqDepends
from taskiq.events import TaskiqEvents
from taskiq.state import TaskiqState

from wesog_async._client import WesogClient
from wesog_async.scale.db import connect
from wesog_async.scale.jobs import JobSpec, create_job
from wesog_async.scale.shards import ShardSpec
from wesog_async.scale.worker import DEFAULT_LEASE_S, run_worker

if TYPE_CHECKING:
    from wesog_async import WesogClient

DRAIN_TASK: Final = "wesog_async.scale.drain"
_CLIENT: Final = "wesog_client"

DrainTask = AsyncTaskiqDecoratedTask[[str], Any]


def _client_of(state: TaskiqState) -> WesogClient:
    client: WesogClient | None = getattr(state, _CLIENT, None)
    if client is None:
        raise RuntimeError(
            "no WesogClient in this taskiq worker: its startup hook did not run "
            "(start the broker with `await broker.startup()` or run `taskiq worker`)"
        )
    return client


def setup_broker(
    broker: AsyncBroker,
    dsn: str,
    *,
    client_factory: Callable[[], WesogClient] | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    wait_for_others: bool = True,
) -> DrainTask:
    """Register on ``broker`` the worker hooks (one client per process) and
    the drain task; return the task (send it with :func:`start_job`)."""

    async def startup(state: TaskiqState) -> None:
        client = (client_factory or WesogClient)()
        await client.open()
        setattr(state, _CLIENT, client)

    async def shutdown(state: TaskiqState) -> None:
        client: WesogClient | None = getattr(state, _CLIENT, None)
        if client is not None:
            setattr(state, _CLIENT, None)
            await client.aclose()

    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, startup)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, shutdown)

    # taskiq injects the context through this default (its documented form).
    async def drain(job: str, context: Context = TaskiqDepends()) -> dict[str, Any]:  # noqa: B008
        report = await run_worker(
            _client_of(context.state), dsn, job, lease_s=lease_s, wait_for_others=wait_for_others
        )
        return {
            "worker": report.worker_id,
            "shards": report.shards,
            "takeovers": report.takeovers,
            "lost": report.lost,
            "records": report.records,
        }

    task: DrainTask = broker.register_task(drain, task_name=DRAIN_TASK)
    return task


async def start_job(
    drain: DrainTask,
    dsn: str,
    job: str,
    shards: Sequence[ShardSpec],
    spec: JobSpec,
    *,
    tasks: int,
) -> tuple[bool, list[AsyncTaskiqTask[Any]]]:
    """The coordinator: record ``job`` (idempotent) and send ``tasks`` drain
    tasks; whether the job was created, and the sent tasks."""
    if tasks < 1:
        raise ValueError(f"tasks must be >= 1, got {tasks!r}")
    pool = await connect(dsn)
    try:
        created = await create_job(pool, job, shards, spec)
    finally:
        await pool.close()
    return created, [await drain.kiq(job) for _ in range(tasks)]


__all__ = ["DRAIN_TASK", "DrainTask", "setup_broker", "start_job"]
