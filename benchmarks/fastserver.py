"""A benchmark server that is never the bottleneck: a raw asyncio ``Protocol``.

It speaks just enough HTTP/1.1 for the workloads (keep-alive, ``Content-Length``
and chunked request bodies) and just enough of the Wesog API:
``POST/PUT/PATCH/DELETE /imgs`` (N records), ``.../imgs/{image_id}`` (one),
``GET /ops/{op_id}``, with the ``API-Key`` header checked (401 otherwise).

It does almost no work per record: it **counts records without parsing
JSON**. A batch body the harness generates is a JSON array of objects, each
with exactly one ``"id"`` key and no string value containing ``"id"`` (ids are
``prefix-NNNNNNNN``, ``src`` is a URL), so the record count is
``body.count(b'"id"')`` (a ``DELETE /imgs`` body of plain id strings counts its
quotes / 2). The count is cross-checked two ways: the harness compares the
total with the records the client sent (``items_applied`` == records sent), and
the server fully parses every ``verify_every``-th write body and counts any
disagreement in ``count_mismatches`` (must stay 0).

Operations are canned but consistent: the 202 body is the full Operation
(section 5 of wesog-api.md) plus ``op_id``, queued; an op's finish time is
fixed at submit (``op_delay_ms`` drawn from ``fixed``/``exponential``/``lognormal``
as the emulator draws it, plus ``item_delay_ms`` x records; no queue, every op
runs at once), so a poll after that time sees it finished with ``num_good`` =
records, ``num_bad`` 0, ``errors`` [] and timing fields that match. ``wait=true``
answers 200 at the finish time. ``response_delay_ms`` holds every API answer
that long (a slow server without CPU: the load test's pool pressure).

Duplicate detection is done only where it is cheap: on the single-image routes
(the id is in the path) it counts receipts per id; a ``strict=true`` create of
an id already received fails its item, as the emulator would. Batch routes are
not checked for duplicates (``duplicate_applies`` is ``None``): accounting runs
under faults (W6) use the emulator.

Control routes under ``/_emulator/`` mirror the emulator's (not counted, no
auth): ``stats``, ``reset``, ``bench/finished``, ``bench/pause``,
``bench/resume``, plus ``bench/received`` (receipts per image id).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter
from typing import Any

import attrs

CONTROL = b"/_emulator/"
_METHODS = {b"POST": "add", b"PUT": "upd", b"PATCH": "upd", b"DELETE": "del"}
_LOGNORMAL_SIGMA = 0.5  # as the emulator's (wesog_async.emulator.config)
_TRUE = (b"true", b"1", b"yes", b"on")
_FLAG_NAMES = (b"wait", b"urgent", b"strict")
_OP = (
    '{"op_id":%d,"method":"%s","resource":"image","num_total":%d,"num_good":%d,'
    '"num_bad":%d,"is_started":%s,"is_finished":%s,"all_good":%s,"do_wait":%s,'
    '"do_urgent":%s,"do_strict":%s,"idle_ms":%.3f,"exec_ms":%.3f,"created_at":"%s",'
    '"started_at":%s,"finished_at":%s,"errors":%s}'
)


@attrs.frozen
class FastServerSpec:
    """What the fast server child is started with."""

    op_delay_ms: float = 0.0
    item_delay_ms: float = 0.0
    delay_distribution: str = "fixed"
    response_delay_ms: float = 0.0
    verify_every: int = 50
    seed: int = 1
    api_key: str = "bench-key"

    def describe(self) -> str:
        delay = f"op {self.op_delay_ms:g} ms" if self.op_delay_ms else "no op delay"
        if self.item_delay_ms:
            delay += f", item {self.item_delay_ms:g} ms"
        if self.response_delay_ms:
            delay += f", responses held {self.response_delay_ms:g} ms"
        return f"fast server: {delay} ({self.delay_distribution})"


def iso(epoch: float) -> str:
    """``2026-01-02T03:04:05.678Z``."""
    ms = int(epoch * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{ms:03d}Z"


def count_records(body: bytes, method: bytes) -> int:
    """Records in a batch body the harness generates, without parsing it."""
    n = body.count(b'"id"')
    if n == 0 and method == b"DELETE":
        n = body.count(b'"') // 2  # ["id1", "id2", ...]
    return n


def parsed_count(body: bytes) -> int:
    """The record count from a full parse (the sampled cross-check)."""
    value = json.loads(body)
    return len(value) if isinstance(value, list) else -1


def _b(flag: bool | None) -> str:
    return "null" if flag is None else ("true" if flag else "false")


class _Op:
    __slots__ = (
        "bad",
        "created",
        "created_iso",
        "finish",
        "flags",
        "method",
        "n",
        "op_id",
        "start",
    )

    def __init__(self, op_id: int, method: str, n: int, created: float, flags: tuple[bool, ...]):
        self.op_id, self.method, self.n, self.created, self.flags = op_id, method, n, created, flags
        self.created_iso = iso(created)
        self.bad = 0
        self.start: float | None = None
        self.finish: float | None = None

    def body(self, now: float) -> bytes:
        """The Operation as seen at ``now`` (epoch seconds): queued, running or
        finished, with timing fields that agree with each other."""
        start, finish = self.start, self.finish
        good = bad = 0
        idle = exe = 0.0
        started = ended = "null"
        errors = "[]"
        if start is None or finish is None or now < start:
            is_started, is_finished, all_good = "false", "false", "null"
        else:
            started, idle = f'"{iso(start)}"', (start - self.created) * 1e3
            if now < finish:
                is_started, is_finished, all_good = "true", "false", "null"
            else:
                is_started, is_finished, all_good = "true", "true", _b(not self.bad)
                ended, exe = f'"{iso(finish)}"', (finish - start) * 1e3
                good, bad = self.n - self.bad, self.bad
                if self.bad:
                    errors = '[{"id":0,"msg":"image already exists"}]'
        wait, urgent, strict = (_b(f) for f in self.flags)
        values: tuple[object, ...] = (self.op_id, self.method, self.n, good, bad, is_started)
        values += (is_finished, all_good, wait, urgent, strict, idle, exe, self.created_iso)
        return (_OP % (*values, started, ended, errors)).encode()


class State:
    """Everything the server counts; :meth:`reset` between runs."""

    def __init__(self, spec: FastServerSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.next_op_id = 1
        self.paused = False
        self.reset()

    def reset(self) -> None:
        self.ops: dict[int, _Op] = {}
        self.order: list[_Op] = []
        self.held: list[_Op] = []
        self.requests: Counter[str] = Counter()
        self.responses: Counter[int] = Counter()
        self.received: Counter[str] = Counter()
        self.records = 0
        self.items_failed = 0
        self.writes = 0
        self.count_checks = 0
        self.count_mismatches = 0
        self.cpu0 = time.process_time()
        self.paused = False

    def delay_s(self, n: int) -> float:
        mean, dist, spec = self.spec.op_delay_ms, self.spec.delay_distribution, self.spec
        op = 0.0
        if mean > 0:
            if dist == "exponential":
                op = self.rng.expovariate(1.0 / mean)
            elif dist == "lognormal":
                op = self.rng.lognormvariate(math.log(mean), _LOGNORMAL_SIGMA)
            else:
                op = mean
        return (op + spec.item_delay_ms * n) / 1000.0

    def submit(self, method: bytes, n: int, flags: tuple[bool, ...], bad: int = 0) -> _Op:
        now = time.time()
        op = _Op(self.next_op_id, _METHODS[method], n, now, flags)
        self.next_op_id += 1
        op.bad = bad
        self.ops[op.op_id] = op
        self.order.append(op)
        self.records += n - bad
        self.items_failed += bad
        if self.paused:
            self.held.append(op)
        else:
            self._schedule(op, now)
        return op

    def _schedule(self, op: _Op, now: float) -> None:
        op.start = now
        op.finish = now + self.delay_s(op.n)

    def resume(self) -> None:
        self.paused = False
        now = time.time()
        for op in self.held:
            self._schedule(op, now)
        self.held = []

    def stats(self) -> dict[str, Any]:
        now = time.time()
        singles = sum(self.received.values())
        return {
            "server": "fast",
            "requests": dict(self.requests),
            "responses": {str(k): v for k, v in sorted(self.responses.items())},
            "items_applied": self.records,
            "items_failed": self.items_failed,
            # Batch routes are not checked for duplicates (see the module docstring).
            "duplicate_applies": sum(c - 1 for c in self.received.values() if c > 1)
            if singles == self.writes
            else None,
            "images_stored": len(self.received) if singles == self.writes else None,
            "ops_created": len(self.order),
            "ops_queued": sum(1 for op in self.order if op.finish is None or op.finish > now),
            "count_checks": self.count_checks,
            "count_mismatches": self.count_mismatches,
            "faults_injected": 0,
            "cpu_s": round(time.process_time() - self.cpu0, 6),
        }

    def finished(self, since: int) -> dict[str, Any]:
        ops = self.order[since:]
        return {
            "next": len(self.order),
            "finished": [[op.op_id, op.finish] for op in ops if op.finish is not None],
        }


def _detail(status: int, msg: str) -> tuple[int, bytes, float]:
    return status, json.dumps({"detail": msg}).encode(), 0.0


def _query(query: bytes) -> dict[bytes, bytes]:
    return dict(p.partition(b"=")[::2] for p in query.split(b"&") if p)


def _flags(query: bytes) -> tuple[bool, bool, bool]:
    """``(wait, urgent, strict)`` from the query string."""
    values = _query(query)
    wait, urgent, strict = (values.get(k, b"").lower() in _TRUE for k in _FLAG_NAMES)
    return wait, urgent, strict


class App:
    """Routing: API routes (counted, authenticated) and control routes."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.key = state.spec.api_key.encode()
        self.hold = state.spec.response_delay_ms / 1000.0
        self.batch_writes = 0

    def handle(
        self, method: bytes, target: bytes, key: bytes | None, body: bytes, enc: bool
    ) -> Any:
        """``(status, body or a callable making it, seconds to hold the answer)``."""
        path, _, query = target.partition(b"?")
        if path.startswith(CONTROL):
            return self.control(method, path[len(CONTROL) :], query)
        state = self.state
        if path == b"/imgs":
            route = "/imgs"
        elif path.startswith(b"/imgs/"):
            route = "/imgs/{image_id}"
        elif path.startswith(b"/ops/"):
            route = "/ops/{op_id}"
        else:
            route = "<unmatched>"
        state.requests[f"{method.decode()} {route}"] += 1
        if key != self.key:
            return _detail(401, "missing or invalid API-Key")
        if route == "/ops/{op_id}":
            if method != b"GET":
                return _detail(405, "method not allowed")
            op = state.ops.get(int(path[5:])) if path[5:].isdigit() else None
            if op is None:
                return _detail(404, "operation not found")
            return 200, op.body(time.time()), self.hold
        if route == "<unmatched>" or method not in _METHODS:
            return _detail(404 if route == "<unmatched>" else 405, "not a benchmark route")
        if enc:
            return _detail(415, "compressed request bodies are not supported here")
        flags = _flags(query)
        bad = 0
        if route == "/imgs":
            n = count_records(body, method)
            self.batch_writes += 1
            if self.batch_writes % state.spec.verify_every == 0:
                state.count_checks += 1
                if parsed_count(body) != n:
                    state.count_mismatches += 1
        else:
            n = 1
            image_id = path[6:].decode("latin-1")
            state.received[image_id] += 1
            bad = int(method == b"POST" and flags[2] and state.received[image_id] > 1)
        state.writes += 1
        op = state.submit(method, n, flags, bad)
        if flags[0]:  # wait=true: the finished operation, at its finish time
            hold = max(self.hold, (op.finish or time.time()) - time.time())
            return 200, lambda: op.body(max(time.time(), op.finish or 0.0)), hold
        return 202, op.body(0.0), self.hold

    def control(self, method: bytes, name: bytes, query: bytes) -> Any:
        state = self.state
        if name == b"stats":
            data: Any = state.stats()
            data["batch_writes"] = self.batch_writes
        elif name == b"reset" and method == b"POST":
            state.reset()
            self.batch_writes = 0
            data = {"reset": True}
        elif name == b"bench/finished":
            since = _query(query).get(b"since", b"0")
            data = state.finished(min(int(since), len(state.order)))
        elif name == b"bench/pause" and method == b"POST":
            state.paused = True
            data = {"paused": True}
        elif name == b"bench/resume" and method == b"POST":
            state.resume()
            data = {"paused": False}
        elif name == b"bench/received":
            data = dict(state.received)
        else:  # faults and anything else: this server has none
            return _detail(404, "no such control route on the fast server")
        return 200, json.dumps(data).encode(), 0.0


async def serve(spec: FastServerSpec, port: int = 0) -> tuple[asyncio.Server, State]:
    """Start the server on 127.0.0.1 in the running loop (tests use this directly)."""
    state = State(spec)
    app = App(state)
    loop = asyncio.get_running_loop()
    from benchmarks.fasthttp import HttpProtocol

    server = await loop.create_server(lambda: HttpProtocol(app), "127.0.0.1", port)
    return server, state


def fast_server_main(spec: FastServerSpec, core: int | None, conn: Any) -> None:
    """Entry point of the spawned server process: pinned, on uvloop when installed."""
    import contextlib
    import os
    import signal

    from benchmarks.harness import EMULATOR_MAX_LIFETIME_S, pin_self, run_loop

    if core is not None:
        pin_self({core})

    async def main() -> None:
        server, _state = await serve(spec)
        conn.send(server.sockets[0].getsockname()[1])
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        parent, deadline = os.getppid(), time.monotonic() + EMULATOR_MAX_LIFETIME_S
        # Bounded: stops on SIGTERM, when the parent dies, or at the deadline.
        while not stop.is_set() and time.monotonic() < deadline and os.getppid() == parent:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()
        server.close()
        await server.wait_closed()

    run_loop(main)
