"""One peer run: reset the server (the emulator or the fast server), run the peer
in a fresh event loop, read the server's counters, and check validity and
accounting."""

from __future__ import annotations

import asyncio
import gc
import math
import time
import traceback
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from benchmarks.harness import Emulator, run_loop, timed
from benchmarks.peers import PEERS, Job, PeerResult
from benchmarks.stats import percentile

#: The server is "the bottleneck" when its CPU was busy more than this share of
#: the wall time of a P0 run (BENCH.md).
EMULATOR_BUSY_LIMIT = 0.80
#: P0 is the limit it claims to be only when it is CPU-bound: it used or wanted
#: the CPU at least this share of its wall time (client CPU plus the time it was
#: runnable but descheduled by other processes, see :func:`runqueue_wait_s`).
#: Below it, P0 waits (on the server or on its own schedule) and a wall ratio
#: against it is inflated: INVALID.
P0_BUSY_MIN = 0.80

POLL_ROUTE = "GET /ops/{op_id}"


@attrs.define
class RunRecord:
    """One peer run of one variant of one workload: measurements and checks."""

    workload: str
    variant: str
    peer: str
    rep: int
    n_records: int
    faults: bool = False
    wall: float = math.nan
    cpu: float = math.nan
    #: Seconds the harness was runnable but not running (other processes).
    runq: float = math.nan
    result: PeerResult = attrs.field(factory=PeerResult)
    emulator: dict[str, Any] = attrs.field(factory=dict)
    latencies: list[float] = attrs.field(factory=list)
    metrics: dict[str, float] = attrs.field(factory=dict)
    problems: list[str] = attrs.field(factory=list)
    emulator_bound: bool = False
    #: ``"emulator"`` or ``"fast"``: which server answered this run.
    server: str = "emulator"

    @property
    def client_busy(self) -> float:
        """Client (harness process) CPU / wall of this run."""
        return self.cpu / self.wall if self.wall > 0 else math.nan

    @property
    def server_busy(self) -> float:
        """Server CPU / wall of this run."""
        return self.emulator.get("cpu_s", 0.0) / self.wall if self.wall > 0 else math.nan

    @property
    def descheduled(self) -> float:
        """Share of the wall the client was runnable but not running (0 if unknown)."""
        return self.runq / self.wall if self.wall > 0 and not math.isnan(self.runq) else 0.0

    @property
    def p0_waiting(self) -> bool:
        """A P0 run that was not CPU-bound (see :data:`P0_BUSY_MIN`)."""
        demand = self.client_busy + self.descheduled
        return self.peer.split("+")[0] == "P0" and demand < P0_BUSY_MIN

    @property
    def completed(self) -> bool:
        return self.result.error is None

    @property
    def accounting_ok(self) -> bool:
        return not self.problems

    @property
    def requests(self) -> int:
        return int(sum(self.emulator.get("requests", {}).values()))

    @property
    def polls(self) -> int:
        return int(self.emulator.get("requests", {}).get(POLL_ROUTE, 0))

    @property
    def ops(self) -> int:
        return int(self.emulator.get("ops_created", 0))

    def summary(self) -> dict[str, Any]:
        """The JSON-ready numbers of this run."""
        lat = self.latencies
        return {
            "rep": self.rep,
            "wall_s": round(self.wall, 4),
            "cpu_s": round(self.cpu, 4),
            "records": self.n_records,
            "requests": self.requests,
            "polls": self.polls,
            "ops": self.ops,
            "emulator_cpu_s": self.emulator.get("cpu_s"),
            "server": self.server,
            "emulator_busy": round(self.server_busy, 3) if self.wall > 0 else None,
            "client_busy": round(self.client_busy, 3) if self.wall > 0 else None,
            "client_descheduled": round(self.descheduled, 3),
            "items_applied": self.emulator.get("items_applied"),
            "images_stored": self.emulator.get("images_stored"),
            "duplicate_applies": self.emulator.get("duplicate_applies"),
            "faults_injected": self.emulator.get("faults_injected", 0),
            "good": self.result.records_good,
            "bad": self.result.records_bad,
            "unknown": self.result.records_unknown,
            "lost": self.result.lost,
            "records_resent": self.result.records_resent,
            "latency_p50_ms": round(percentile(lat, 50) * 1000, 2) if lat else None,
            "latency_p99_ms": round(percentile(lat, 99) * 1000, 2) if lat else None,
            "error": self.result.error,
            "problems": self.problems,
            "emulator_bound": self.emulator_bound,
            **{k: round(v, 6) for k, v in self.metrics.items()},
        }


def check(run: RunRecord) -> None:
    """Fill ``run.problems`` with accounting failures (BENCH.md validity rules)."""
    stats, result, n = run.emulator, run.result, run.n_records
    if result.error is not None:
        run.problems.append(f"peer did not complete: {result.error}")
        return
    if result.lost != 0:
        run.problems.append(f"{result.lost} record(s) lost (no outcome)")
    stored = stats.get("images_stored")
    if run.faults:
        # A write resent after a failure that may have left it applied (a
        # connection reset after the body) can be applied twice: the client
        # resends strict=false writes on purpose and reports it. What must hold:
        # every record ended in the store, and every duplicate apply is one the
        # client reported (no more duplicates than records in resent writes).
        if stored != n:
            run.problems.append(f"{stored} images stored != {n} records sent")
        dups = stats.get("duplicate_applies", 0) or 0
        if dups > result.records_resent:
            run.problems.append(
                f"{dups} duplicate applies > {result.records_resent} records in writes the "
                "client reported resent"
            )
    else:
        applied = stats.get("items_applied")
        if applied != n:
            run.problems.append(f"records applied {applied} != records sent {n}")
        if stats.get("duplicate_applies", 0):
            run.problems.append(
                f"{stats['duplicate_applies']} duplicate applies in a fault-free run"
            )
    if stats.get("count_mismatches"):
        run.problems.append(
            f"the fast server's record count disagreed with a full parse in "
            f"{stats['count_mismatches']} of {stats.get('count_checks')} sampled bodies"
        )
    if result.records_bad or result.records_unknown:
        run.problems.append(
            f"{result.records_bad} failed and {result.records_unknown} unknown record(s)"
        )


def run_peer(
    emu: Emulator,
    workload: str,
    variant: str,
    peer: str,
    rep: int,
    job: Job,
    *,
    faults: dict[str, Any] | None = None,
    wrap: Callable[[Callable[[], Awaitable[PeerResult]]], Awaitable[PeerResult]] | None = None,
) -> RunRecord:
    """Run ``peer`` once on ``job`` in a fresh event loop, then check it.

    ``wrap`` (optional) runs around the peer coroutine inside the loop (the
    memory probe and the W7 ticker use it).
    """
    spec = PEERS[peer]
    run = RunRecord(workload, variant, peer, rep, job.n_records, faults=faults is not None)
    run.server = emu.kind
    emu.reset()
    if faults is not None and not emu.set_faults(faults):
        run.result.error = "this emulator has no fault injection"
        run.problems.append(run.result.error)
        return run
    cursor = emu.finish_cursor()
    gc.collect()

    async def main() -> PeerResult:
        if wrap is not None:
            return await wrap(lambda: spec.run(job))
        return await spec.run(job)

    with timed() as t:
        try:
            result: PeerResult = run_loop(main, use_uvloop=spec.uvloop)
        except Exception as exc:
            result = PeerResult(error=f"{type(exc).__name__}: {exc}")
            result.extra["traceback"] = traceback.format_exc(limit=8)
    run.wall, run.cpu, run.runq = t["wall"], t["cpu"], t["runq"]
    result.records_sent = job.n_records
    run.result = result
    run.emulator = _settled_stats(emu)
    finish = emu.finish_times(cursor)
    run.latencies = [obs - finish[op] for op, obs in result.observed.items() if op in finish]
    check(run)
    if peer == "P0" and run.wall > 0:
        run.emulator_bound = run.emulator.get("cpu_s", 0.0) / run.wall > EMULATOR_BUSY_LIMIT
    return run


def _settled_stats(emu: Emulator) -> dict[str, Any]:
    """Emulator counters once its queue is empty (a peer that gave up may leave
    work behind; wait for it briefly so the counters are final)."""
    stats = emu.stats()
    deadline = time.monotonic() + 5.0
    while stats.get("ops_queued") and time.monotonic() < deadline:
        time.sleep(0.05)
        stats = emu.stats()
    return stats


# -- helpers used inside the loop ---------------------------------------------------


class Ticker:
    """A 1 ms ticker in the same loop: records how late each tick wakes up."""

    PERIOD = 0.001
    MAX_TICKS = 2_000_000

    def __init__(self) -> None:
        self.lags: list[float] = []

    async def run(self) -> None:
        clock = time.perf_counter
        for _ in range(self.MAX_TICKS):
            start = clock()
            await asyncio.sleep(self.PERIOD)
            self.lags.append(max(0.0, clock() - start - self.PERIOD))


class MemoryProbe:
    """Traced memory held while every operation is pending.

    The emulator is paused before the run; when the peer reports that all
    records were submitted, the probe measures (after a full collection) and
    resumes the emulator.
    """

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.baseline = 0
        self.pending_bytes: int | None = None

    async def wrap(self, peer: Callable[[], Awaitable[PeerResult]]) -> PeerResult:
        tracemalloc.start()
        try:
            gc.collect()
            self.baseline = tracemalloc.get_traced_memory()[0]
            return await peer()
        finally:
            tracemalloc.stop()

    async def on_all_submitted(self) -> None:
        await asyncio.sleep(0)  # let the other tasks reach their await
        gc.collect()
        self.pending_bytes = tracemalloc.get_traced_memory()[0] - self.baseline
        # Measured: the rest of the run (every op finishing) need not be traced,
        # which would make it several times slower.
        tracemalloc.stop()
        await asyncio.to_thread(self.emu.resume)


def bare_task_bytes(n: int) -> float:
    """Traced bytes per idle task awaiting a future: the cost of the caller's own
    task, subtracted from the per-pending-op memory."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        tracemalloc.start()
        try:
            gc.collect()
            base = tracemalloc.get_traced_memory()[0]
            futures = [loop.create_future() for _ in range(n)]

            async def wait(fut: asyncio.Future[None]) -> None:
                await fut

            tasks = [asyncio.create_task(wait(f)) for f in futures]
            await asyncio.sleep(0)
            gc.collect()
            used = tracemalloc.get_traced_memory()[0] - base
            for fut in futures:
                fut.set_result(None)
            await asyncio.gather(*tasks)
            return used / n
        finally:
            tracemalloc.stop()

    result: float = run_loop(main, use_uvloop=False)
    return result
