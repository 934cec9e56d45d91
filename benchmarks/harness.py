"""The server in its own pinned process, its control routes, and measurement helpers.

The server — the emulator, or the fast server of :mod:`benchmarks.fastserver`
(the spec passed to :class:`Emulator` decides) — is spawned (``multiprocessing``
"spawn" context), pinned to one core with :func:`os.sched_setaffinity`, run on
uvloop when installed, with access logs off. The harness pins itself to the
other core(s). The fast server answers the same control routes as below.

Besides the emulator's own internal routes (``/_emulator/stats``,
``/_emulator/reset``, ``/_emulator/faults``), the benchmark child adds two
routes of its own, under ``/_emulator/bench/`` (the library is not changed for
them; the ``/_emulator/`` prefix keeps them out of the request counters, auth and
fault injection):

* ``GET /_emulator/bench/finished?since=N`` — long-poll: ``[[op_id, finish_time], ...]``
  for operations finished after cursor ``N`` (``time.time()`` in the emulator
  process, comparable with the harness clock). The P0-oracle peer learns
  completion times from it; every peer's completion latency overhead is
  measured against it.
* ``GET /_emulator/bench/finish_times`` — every finish time recorded so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import attrs

from benchmarks.fastserver import FastServerSpec, fast_server_main

BENCH_PREFIX = "/_emulator/bench/"

# The child gives up on its own after this long (a bound on every loop).
EMULATOR_MAX_LIFETIME_S = 3600.0
_START_TIMEOUT_S = 30.0
_CONTROL_TIMEOUT_S = 30.0


# -- cores -------------------------------------------------------------------------


def available_cores() -> list[int]:
    """Cores this process may run on (all CPUs where affinity is unsupported)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return list(range(os.cpu_count() or 1))


def split_cores() -> tuple[int | None, set[int] | None]:
    """``(emulator core, harness cores)``: the last core for the emulator, the rest
    for the harness. ``(None, None)`` on a single core (nothing to pin)."""
    cores = available_cores()
    if len(cores) < 2:
        return None, None
    return cores[-1], set(cores[:-1])


def pin_self(cores: set[int] | None) -> None:
    """Pin this process to ``cores`` (no-op when ``None`` or unsupported)."""
    if cores:
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(0, cores)


# -- the emulator child --------------------------------------------------------------


@attrs.frozen
class EmulatorSpec:
    """What the emulator child is started with (kwargs of ``EmulatorConfig``)."""

    item_delay_ms: float = 0.0
    op_delay_ms: float = 0.0
    delay_distribution: str = "fixed"
    workers_per_tenant: int = 1
    seed: int = 1
    api_key: str = "bench-key"

    def describe(self) -> str:
        delay = f"op {self.op_delay_ms:g} ms" if self.op_delay_ms else "no op delay"
        if self.item_delay_ms:
            delay += f", item {self.item_delay_ms:g} ms"
        return f"{delay} ({self.delay_distribution}), {self.workers_per_tenant} worker(s)"


class _FinishLog:
    """Finish times of operations, in finishing order (child process only)."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, float]] = []
        self.waiters: list[asyncio.Event] = []

    def add(self, op_id: int) -> None:
        self.entries.append((op_id, time.time()))
        for event in self.waiters:
            event.set()


def _install_finish_hook(log: _FinishLog) -> None:
    """Record each operation's finish time: wraps the emulator's
    ``Operation.finish`` in the child process only (the library is untouched)."""
    from wesog_async.emulator import operations

    original = operations.Operation.finish

    def finish(self: Any) -> None:
        original(self)
        log.add(self.op_id)

    operations.Operation.finish = finish  # type: ignore[method-assign]


def _emulator_main(spec: EmulatorSpec, core: int | None, conn: Connection) -> None:
    """Entry point of the spawned emulator process."""
    if core is not None:
        pin_self({core})
    log = _FinishLog()
    _install_finish_hook(log)
    from aiohttp import web

    from wesog_async.emulator import EmulatorConfig
    from wesog_async.emulator.http import STATE_KEY
    from wesog_async.emulator.server import EmulatorServer

    config = EmulatorConfig(
        api_keys=(spec.api_key,),
        item_delay_ms=spec.item_delay_ms,
        op_delay_ms=spec.op_delay_ms,
        delay_distribution=spec.delay_distribution,  # type: ignore[arg-type]
        workers_per_tenant=spec.workers_per_tenant,
        seed=spec.seed,
        access_log=False,
    )

    async def finished_since(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        timeout = float(request.query.get("timeout", "0"))
        if len(log.entries) <= since and timeout > 0:
            event = asyncio.Event()
            log.waiters.append(event)
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await event.wait()
            finally:
                log.waiters.remove(event)
        since = min(since, len(log.entries))
        return web.json_response({"next": len(log.entries), "finished": log.entries[since:]})

    async def pause(request: web.Request) -> web.Response:
        request.app[STATE_KEY].pause_processing()
        return web.json_response({"paused": True})

    async def resume(request: web.Request) -> web.Response:
        request.app[STATE_KEY].resume_processing()
        return web.json_response({"paused": False})

    async def main() -> None:
        server = EmulatorServer(config, host="127.0.0.1", port=0)
        server.app.router.add_get(BENCH_PREFIX + "finished", finished_since)
        server.app.router.add_post(BENCH_PREFIX + "pause", pause)
        server.app.router.add_post(BENCH_PREFIX + "resume", resume)
        await server.start()
        conn.send(server.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        parent = os.getppid()
        deadline = time.monotonic() + EMULATOR_MAX_LIFETIME_S
        # Bounded: stops on SIGTERM, when the parent dies, or at the deadline.
        while not stop.is_set() and time.monotonic() < deadline and os.getppid() == parent:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()
        await server.close()

    run_loop(main)


def run_loop(main: Callable[[], Any], *, use_uvloop: bool = True) -> Any:
    """``asyncio.run(main())`` on uvloop when asked and installed."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - depends on the environment
            pass
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main())
    with asyncio.Runner() as runner:
        return runner.run(main())


class Emulator:
    """A running server child process; use as a context manager.

    The kind of server follows the spec: :class:`EmulatorSpec` spawns the
    emulator (``wesog_async.emulator``, full accounting), :class:`FastServerSpec`
    the benchmark's fast server (:mod:`benchmarks.fastserver`, never the
    bottleneck). Both answer the same control routes.
    """

    def __init__(self, spec: EmulatorSpec | FastServerSpec, *, core: int | None) -> None:
        self.spec = spec
        self.core = core
        self.port = 0
        self._process: multiprocessing.process.BaseProcess | None = None

    @property
    def kind(self) -> str:
        """``"emulator"`` or ``"fast"``."""
        return "fast" if isinstance(self.spec, FastServerSpec) else "emulator"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_key(self) -> str:
        return self.spec.api_key

    def __enter__(self) -> Emulator:
        ctx = multiprocessing.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe(duplex=False)
        target = fast_server_main if isinstance(self.spec, FastServerSpec) else _emulator_main
        process = ctx.Process(target=target, args=(self.spec, self.core, child_conn), daemon=True)
        process.start()
        self._process = process
        child_conn.close()
        if not parent_conn.poll(_START_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"the {self.kind} server did not start in time")
        self.port = int(parent_conn.recv())
        parent_conn.close()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
            process.join(10)
        if process.is_alive():  # pragma: no cover - a stuck child
            process.kill()
            process.join(5)

    # -- control (synchronous: never inside a timed section) --------------------

    def _call(self, method: str, path: str, body: bytes | None = None) -> Any:
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=_CONTROL_TIMEOUT_S) as resp:
            return json.loads(resp.read() or b"null")

    def reset(self) -> None:
        self._call("POST", "/_emulator/reset")

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_emulator/stats")
        return result

    def finish_cursor(self) -> int:
        """A cursor into the finish log: pass it to :meth:`finish_times` later."""
        return int(self._call("GET", BENCH_PREFIX + "finished?since=1000000000")["next"])

    def finish_times(self, since: int) -> dict[int, float]:
        """``{op_id: finish time}`` of operations finished after ``since``."""
        data = self._call("GET", f"{BENCH_PREFIX}finished?since={since}")
        return {int(op_id): float(t) for op_id, t in data["finished"]}

    def received(self) -> dict[str, int]:
        """Fast server only: receipts per image id on the single-image routes."""
        result: dict[str, int] = self._call("GET", BENCH_PREFIX + "received")
        return result

    def pause(self) -> None:
        """Hold the queues: submitted operations stay pending."""
        self._call("POST", BENCH_PREFIX + "pause")

    def resume(self) -> None:
        self._call("POST", BENCH_PREFIX + "resume")

    def set_faults(self, spec: Any) -> bool:
        """Install a fault spec; ``False`` if this emulator has no fault injection."""
        body = json.dumps(spec).encode()
        try:
            self._call("POST", "/_emulator/faults", body)
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 405):
                return False
            raise
        return True


# -- measurement ---------------------------------------------------------------------


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssSampler:
    """Samples RSS every ``interval`` seconds on a thread; ``peak`` is the maximum."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.baseline = rss_bytes()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def runqueue_wait_s() -> float:
    """Seconds this thread spent runnable but waiting for a CPU (Linux
    ``/proc/self/schedstat``; ``nan`` elsewhere): time taken by other processes
    on a shared machine, not time the process chose to wait."""
    try:
        with open("/proc/self/schedstat", encoding="ascii") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return math.nan


@contextlib.contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds of the block, and the seconds it was runnable but not
    running: ``{"wall": ..., "cpu": ..., "runq": ...}``."""
    out: dict[str, float] = {}
    wall0, cpu0, runq0 = time.perf_counter(), time.process_time(), runqueue_wait_s()
    try:
        yield out
    finally:
        out["wall"] = time.perf_counter() - wall0
        out["cpu"] = time.process_time() - cpu0
        out["runq"] = runqueue_wait_s() - runq0
