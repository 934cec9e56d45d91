"""Workloads W1-W8: what runs, in which order, against which server, and the figures.

W1, W3 and W7 run against the fast server (:mod:`benchmarks.fastserver`, never
the bottleneck); W2, W4, W5 and W6 against the emulator, whose accounting
(duplicate applies, images stored, fault injection, the finish feed) they need.
``--server emulator`` runs W1, W3 and W7 against the emulator too. W8 (the load
test of issue #12, :mod:`benchmarks.load`) always uses the fast server.

Every workload runs its peers interleaved (P0, P1, P2, P0, P1, P2, ...), each
run in a fresh event loop against an emulator reset in between, and computes
its figures pair by pair (repetition by repetition) before taking the median.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from benchmarks.fastserver import FastServerSpec
from benchmarks.harness import Emulator, EmulatorSpec, run_loop
from benchmarks.peers import PEERS, Job, bulk_available
from benchmarks.peers.base import FAST_SCHEDULE
from benchmarks.runner import (
    MemoryProbe,
    RunRecord,
    Ticker,
    bare_task_bytes,
    check,
    run_peer,
)
from benchmarks.stats import median, pair_diffs, pair_ratios, percentile

NO_DELAY = EmulatorSpec()


@attrs.frozen
class Profile:
    """Sizes and repetitions: ``full`` fits BENCH.md into ~9 minutes on 2 cores,
    ``quick`` is the CI smoke test.

    ``reps`` is for the headline figures (W4 polls and latency; W1 batch 1000
    and 100 at 16 in flight take ``w1_reps``, issue #13's 13 pairs: a W1 pair
    takes under 2 s, and on a shared host one peer's runs spread by up to
    1.7x within an invocation, so 5 pairs leave the median ratio ±0.1);
    ``secondary_reps`` for the other figures
    with a target (W1 at 4 in flight, W2, W6, W7); ``info_reps`` for P2 (only
    in informative figures, and W4's vs-P2 comparison), P1-uvloop in W1 and
    W3's timing runs.
    ``budget_s`` bounds the whole invocation: once spent, workloads finish the
    repetition they are in and start no further one (each still runs one), and
    W3/W5 run only P1's memory measurement; what was skipped is listed in the
    results.
    """

    name: str
    reps: int
    secondary_reps: int
    info_reps: int
    w1_records: int
    w1_variants: tuple[tuple[int, int], ...]
    w1_headline: tuple[tuple[int, int], ...]
    w2_records: int
    w3_tasks: int
    w3_probe_tasks: int
    w4_ops: int
    w4_delays: tuple[tuple[str, float, str], ...]
    w5_sizes: tuple[int, int]
    #: P2 materializes its input: its large run is the slowest of W5 and its
    #: growth is linear, so a smaller large size shows it as well.
    w5_p2_sizes: tuple[int, int]
    w5_reps: int
    w6_records: int
    w7_records: int
    budget_s: float
    #: W8 (issue #12 load test): concurrent strict single creates, the fast
    #: server's answer delay and the client's per-attempt timeout (seconds).
    load_writes: int = 5_000
    load_response_delay_ms: float = 5.0
    load_timeout_s: float = 2.0
    #: W1 also at batch 1000 / 16 with ~300-byte records (issue #13; fast server only).
    w1_wide: bool = False
    #: Repetitions of W1's headline variants (``None``: ``reps``).
    w1_reps: int | None = None

    def with_reps(self, reps: int) -> Profile:
        """Every workload at ``reps`` repetitions (``--reps``)."""
        return attrs.evolve(
            self, reps=reps, secondary_reps=reps, info_reps=reps, w5_reps=min(self.w5_reps, reps),
            w1_reps=reps,
        )  # fmt: skip

    def deviations(self) -> list[str]:
        """Where this profile departs from BENCH.md's parameters (for the report)."""
        out = []
        bench = BENCH_PARAMETERS
        if self.reps < 5:
            out.append(f"headline figures from {self.reps} repetition(s), not >= 5")
        if self.secondary_reps < self.reps:
            out.append(
                f"{self.secondary_reps} repetitions (headline: {self.reps}) for W1 at 4 in "
                "flight, W2, W6 and W7"
            )
        if self.info_reps < self.secondary_reps:
            out.append(
                f"{self.info_reps} repetitions for P2 (W1, W2, W4: informative figures and "
                "W4's vs-P2 comparison), P1-uvloop in W1 and W3's timing runs"
            )
        for label, value, want in (
            ("W1 records", self.w1_records, bench["w1_records"]),
            ("W2 records", self.w2_records, bench["w2_records"]),
            ("W3 concurrent tasks (timing runs)", self.w3_tasks, bench["w3_tasks"]),
            ("W3 concurrent tasks (memory probe)", self.w3_probe_tasks, bench["w3_tasks"]),
            ("W4 operations", self.w4_ops, bench["w4_ops"]),
            ("W6 records", self.w6_records, bench["w6_records"]),
            ("W7 records", self.w7_records, bench["w7_records"]),
        ):
            if value != want:
                out.append(f"{label}: {value:,} (BENCH.md: {want:,})")
        if self.w5_sizes != bench["w5_sizes"]:
            out.append(f"W5 sizes {self.w5_sizes} (BENCH.md: {bench['w5_sizes']})")
        if self.w5_p2_sizes != self.w5_sizes:
            out.append(
                f"W5 P2 (informative) at {self.w5_p2_sizes[1]:,} vs {self.w5_p2_sizes[0]:,} "
                f"records, not {self.w5_sizes[1]:,}: its growth is linear in the input"
            )
        missing = set(bench["w1_variants"]) - set(self.w1_variants)
        if missing:
            out.append(f"W1 variants not run: {sorted(missing)}")
        if len(self.w4_delays) < 3:
            out.append(f"W4 delays: {[d[0] for d in self.w4_delays]} only")
        return out


#: BENCH.md's parameters, for :meth:`Profile.deviations`.
BENCH_PARAMETERS: dict[str, Any] = {
    "w1_records": 100_000,
    "w1_variants": ((1000, 16), (1000, 4), (100, 16), (100, 4)),
    "w2_records": 100_000,
    "w3_tasks": 10_000,
    "w4_ops": 1_000,
    "w5_sizes": (100_000, 1_000_000),
    "w6_records": 100_000,
    "w7_records": 100_000,
}

FULL = Profile(
    name="full",
    reps=5,
    secondary_reps=3,
    info_reps=2,
    w1_records=100_000,
    w1_variants=((1000, 16), (100, 16), (1000, 4), (100, 4)),
    w1_headline=((1000, 16), (100, 16)),
    w2_records=100_000,
    # W3 is client-CPU-bound (~0.7 ms per await for every peer: ~9 s per 10k-task
    # run, and the traced memory probe several times that): halved. Memory per
    # pending op does not depend on the count.
    w3_tasks=5_000,
    w3_probe_tasks=5_000,
    w4_ops=1_000,
    w4_delays=(
        ("50ms", 50.0, "fixed"),
        ("1s", 1000.0, "fixed"),
        ("lognormal300", 300.0, "lognormal"),
    ),
    w5_sizes=(100_000, 1_000_000),
    w5_p2_sizes=(100_000, 500_000),
    w5_reps=1,
    w6_records=100_000,
    w7_records=100_000,
    budget_s=540.0,
    w1_wide=True,
    w1_reps=13,
)

QUICK = Profile(
    name="quick",
    reps=1,
    secondary_reps=1,
    info_reps=1,
    w1_records=4_000,
    w1_variants=((1000, 16), (100, 16)),
    w1_headline=((1000, 16), (100, 16)),
    w2_records=4_000,
    w3_tasks=300,
    w3_probe_tasks=300,
    w4_ops=100,
    w4_delays=(("50ms", 50.0, "fixed"),),
    w5_sizes=(2_000, 10_000),
    w5_p2_sizes=(2_000, 10_000),
    w5_reps=1,
    w6_records=4_000,
    w7_records=4_000,
    budget_s=55.0,
    load_writes=1_200,
    load_response_delay_ms=10.0,
    load_timeout_s=1.0,
)


@attrs.define
class Figure:
    """One number of the results table, with its target and verdict."""

    workload: str
    name: str
    value: float | None
    unit: str = ""
    target: str = ""
    status: str = "INFO"  # PASS, MISS, INVALID, INFO, SKIP
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        value = None if self.value is None or math.isnan(self.value) else round(self.value, 4)
        return {**attrs.asdict(self), "value": value}


def verdict(ok: bool, *, invalid: bool = False) -> str:
    if invalid:
        return "INVALID"
    return "PASS" if ok else "MISS"


@attrs.define
class Bench:
    """Shared state of one benchmark invocation."""

    profile: Profile
    emulator_core: int | None
    log: Callable[[str], None] = print
    runs: list[RunRecord] = attrs.field(factory=list)
    figures: list[Figure] = attrs.field(factory=list)
    skipped: list[str] = attrs.field(factory=list)
    #: Seconds for the whole invocation (0: unbounded), from ``started``.
    budget_s: float = 0.0
    started: float = attrs.field(factory=time.monotonic)
    warmed: set[tuple[str, str]] = attrs.field(factory=set)
    #: ``"auto"`` (each workload's own server) or ``"emulator"`` (``--server``).
    server_kind: str = "auto"

    def emulator(self, spec: EmulatorSpec | FastServerSpec) -> Emulator:
        return Emulator(spec, core=self.emulator_core)

    def server(self, fast: FastServerSpec, emulator: EmulatorSpec) -> Emulator:
        """The fast server, or the emulator when ``--server emulator`` asks for it."""
        return self.emulator(emulator if self.server_kind == "emulator" else fast)

    def over_budget(self) -> bool:
        return self.budget_s > 0 and time.monotonic() - self.started > self.budget_s

    def peers(self, names: Iterable[str], *, bulk: bool = False) -> list[str]:
        """The available peers among ``names`` (unavailable ones are noted)."""
        out = []
        for name in names:
            spec = PEERS[name]
            if not spec.available():
                self._skip(f"{name}: {spec.why_unavailable}")
            elif bulk and name.startswith("P1") and not bulk_available():
                self._skip(f"{name} (bulk): wesog_async has no _bulk module yet")
            else:
                out.append(name)
        return out

    def _skip(self, why: str) -> None:
        if why not in self.skipped:
            self.skipped.append(why)
            self.log(f"  skipped {why}")

    def warm(self, emu: Emulator, peer: str, job: Job) -> None:
        """One small untimed run of ``peer`` the first time it meets this kind of
        job, so that no timed run pays for imports and first-use set-up."""
        key = (peer, job.kind)
        if key in self.warmed:
            return
        self.warmed.add(key)
        n = min(job.n_records, 2 * job.batch_size if job.kind == "bulk" else 50)
        small = attrs.evolve(
            job, n_records=n, stagger=0.0, on_all_submitted=None, companion=None, prefix="warm"
        )
        emu.reset()
        try:
            run_loop(lambda: PEERS[peer].run(small), use_uvloop=PEERS[peer].uvloop)
        except Exception as exc:  # the timed runs will report it
            self.log(f"  warm-up of {peer} failed: {type(exc).__name__}: {exc}")

    def interleave(
        self,
        emu: Emulator,
        workload: str,
        variant: str,
        peers: Sequence[str],
        make_job: Callable[[str], Job],
        *,
        reps: int | None = None,
        peer_reps: dict[str, int] | None = None,
        faults: Callable[[str, int], dict[str, Any] | None] | None = None,
        wrap: Callable[[str], Any] | None = None,
        after: Callable[[RunRecord], None] | None = None,
    ) -> dict[str, list[RunRecord]]:
        """P0, P1, P2, P0, P1, P2, ...: ``reps`` rounds of every peer.

        ``peer_reps`` gives some peers fewer rounds (they drop out of the last
        rounds; the order of the others is unchanged). Once the invocation's
        time budget is spent, no further round starts (at least one runs).
        """
        rounds = reps or self.profile.reps
        by_peer: dict[str, list[RunRecord]] = {p: [] for p in peers}
        for label in peers:
            self.warm(emu, label.split("+")[0], make_job(label))
        for rep in range(rounds):
            if rep > 0 and self.over_budget():
                self._skip(
                    f"{workload} {variant}: repetitions {rep + 1}-{rounds} (time budget of "
                    f"{self.budget_s:.0f} s spent)"
                )
                break
            for label in peers:
                if peer_reps is not None and rep >= peer_reps.get(label, rounds):
                    continue
                peer = label.split("+")[0]
                run = run_peer(
                    emu,
                    workload,
                    variant,
                    peer,
                    rep,
                    make_job(label),
                    faults=faults(label, rep) if faults else None,
                    wrap=wrap(label) if wrap else None,
                )
                run.peer = label
                if after is not None:
                    after(run)
                self.runs.append(run)
                by_peer[label].append(run)
                self.log(_line(run))
        return by_peer

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)


def _line(run: RunRecord) -> str:
    status = "ok" if run.accounting_ok else "FAIL " + "; ".join(run.problems)
    server = "fast server" if run.server == "fast" else "emulator"
    return (
        f"  {run.workload} {run.variant:<14} {run.peer:<11} rep {run.rep}: "
        f"wall {run.wall:7.3f}s cpu {run.cpu:6.3f}s polls {run.polls:6d} "
        f"client busy {run.client_busy:4.0%} (+{run.descheduled:3.0%} descheduled) "
        f"{server} busy {run.server_busy:4.0%}  {status}"
    )


# -- figure helpers -------------------------------------------------------------------


def walls(runs: Sequence[RunRecord]) -> list[float]:
    return [r.wall for r in runs]


def cpu_us_per_record(runs: Sequence[RunRecord]) -> list[float]:
    return [r.cpu / r.n_records * 1e6 for r in runs]


def polls_per_op(runs: Sequence[RunRecord]) -> list[float]:
    return [r.polls / r.ops for r in runs if r.ops]


def emulator_bound(p0_runs: Sequence[RunRecord]) -> bool:
    """Whether the server was the bottleneck during P0 (most P0 repetitions)."""
    return sum(r.emulator_bound for r in p0_runs) * 2 > len(p0_runs)


def p0_waiting(p0_runs: Sequence[RunRecord]) -> bool:
    """Whether P0 was not CPU-bound (most P0 repetitions): then it is not the
    limit it claims to be, and wall ratios against it are INVALID."""
    return sum(r.p0_waiting for r in p0_runs) * 2 > len(p0_runs)


def busy_note(p0_runs: Sequence[RunRecord]) -> str:
    busy = median([r.server_busy for r in p0_runs if r.wall > 0])
    kind = "fast server" if p0_runs and p0_runs[0].server == "fast" else "emulator"
    return f"{kind} CPU busy {busy:.0%} of P0 wall"


#: Above this median share of P0's wall spent descheduled, the note says so.
CONTENDED = 0.20


def validity_note(p0_runs: Sequence[RunRecord]) -> str:
    """Both validity figures of a wall ratio against P0."""
    client = median([r.client_busy for r in p0_runs if r.wall > 0])
    away = median([r.descheduled for r in p0_runs if r.wall > 0])
    note = (
        f"{busy_note(p0_runs)}; P0 client CPU busy {client:.0%} of its wall, "
        f"+{away:.0%} runnable but descheduled (other processes)"
    )
    if away > CONTENDED:
        note += "; a contended machine: wall figures noisy"
    return note


def invalid_why(p0_runs: Sequence[RunRecord]) -> str:
    """Why a wall ratio against P0 is INVALID ("" when it is valid)."""
    why = []
    if emulator_bound(p0_runs):
        why.append("server-bound")
    if p0_waiting(p0_runs):
        why.append("P0 waiting, not CPU-bound")
    return " and ".join(why)


def bulk_job(emu: Emulator, n: int, batch: int, in_flight: int) -> Job:
    """A bulk job; against the fast server without delay the raw peers poll on
    :data:`~benchmarks.peers.base.FAST_SCHEDULE`."""
    job = Job(
        "bulk",
        emu.url,
        emu.api_key,
        n,
        batch_size=batch,
        in_flight=in_flight,
        max_pending_ops=max(16, in_flight),
    )
    spec = emu.spec
    if isinstance(spec, FastServerSpec) and not (spec.op_delay_ms or spec.item_delay_ms):
        job.poll_schedule = FAST_SCHEDULE
    return job


# -- W1 --------------------------------------------------------------------------------


def w1(b: Bench) -> None:
    """Bulk throughput, CPU-bound: no server delay."""
    p = b.profile
    n = p.w1_records
    with b.server(FastServerSpec(), NO_DELAY) as emu:
        for batch, in_flight in p.w1_variants:
            variant = f"b{batch}/k{in_flight}"
            extras = ("P1-uvloop", "P2", "P3") if (batch, in_flight) == (1000, 16) else ()
            peers = b.peers(("P0", "P1", *extras), bulk=True)
            job = bulk_job(emu, n, batch, in_flight)
            headline = (batch, in_flight) in p.w1_headline
            runs = b.interleave(
                emu,
                "W1",
                variant,
                peers,
                lambda _l, j=job: attrs.evolve(j),
                reps=(p.w1_reps or p.reps) if headline else p.secondary_reps,
                # The extra peers are informative: fewer repetitions.
                peer_reps=dict.fromkeys(extras, p.info_reps),
            )
            w1_figures(b, variant, batch, runs)
        if p.w1_wide and emu.kind == "fast":
            # Issue #13's third case: the same records with ~300 bytes each.
            job = attrs.evolve(bulk_job(emu, n, 1000, 16), wide=True)
            runs = b.interleave(
                emu,
                "W1",
                "b1000/k16/300B",
                b.peers(("P0", "P1"), bulk=True),
                lambda _l, j=job: attrs.evolve(j),
                reps=p.secondary_reps,
            )
            w1_figures(b, "b1000/k16/300B", 1000, runs)


def w1_figures(b: Bench, variant: str, batch: int, runs: dict[str, list[RunRecord]]) -> None:
    p0 = runs.get("P0", [])
    why = invalid_why(p0)
    note = validity_note(p0) + (f": INVALID ({why})" if why else "")
    limit = 1.10 if batch >= 1000 else 1.25
    issue_limit = 1.25 if batch >= 1000 else 1.35
    for peer, tag in (("P1", ""), ("P1-uvloop", " (uvloop)"), ("P3", " (P3 httpx)")):
        if peer not in runs or not p0:
            continue
        ratio = median(pair_ratios(walls(runs[peer]), walls(p0)))
        if peer == "P1":
            b.add(
                Figure(
                    "W1",
                    f"wall ratio P1/P0, {variant}",
                    ratio,
                    "x",
                    f"<= {limit:.2f} (issue #13: <= {issue_limit:.2f})",
                    verdict(ratio <= limit, invalid=bool(why)),
                    note,
                )
            )
        else:
            b.add(
                Figure("W1", f"wall ratio {peer}/P0, {variant}{tag}", ratio, "x", "", "INFO", note)
            )
    for peer, peer_runs in runs.items():
        b.add(
            Figure(
                "W1",
                f"client CPU per record, {peer}, {variant}",
                median(cpu_us_per_record(peer_runs)),
                "us",
            ),
            Figure(
                "W1",
                f"requests per record, {peer}, {variant}",
                median([r.requests / r.n_records for r in peer_runs]),
                "",
            ),
            Figure("W1", f"polls per op, {peer}, {variant}", median(polls_per_op(peer_runs)), ""),
        )
    if "P1" in runs and p0:
        extra = median(pair_diffs(cpu_us_per_record(runs["P1"]), cpu_us_per_record(p0)))
        b.add(
            Figure(
                "W1",
                f"extra client CPU P1-P0 per record, {variant}",
                extra,
                "us",
                "<= 1.0",
                verdict(extra <= 1.0),
                "CPU time of the client process; valid whoever is the bottleneck",
            )
        )
        cpu_limit = 1.30 if batch >= 1000 else 1.40
        cpu_ratio = median(pair_ratios(cpu_us_per_record(runs["P1"]), cpu_us_per_record(p0)))
        b.add(
            Figure(
                "W1",
                f"client CPU ratio P1/P0, {variant}",
                cpu_ratio,
                "x",
                f"<= {cpu_limit:.2f} (issue #13)",
                verdict(cpu_ratio <= cpu_limit),
                "client process CPU, repetition by repetition",
            )
        )


# -- W2 --------------------------------------------------------------------------------


def w2(b: Bench) -> None:
    """Bulk, latency-bound: 200 ms per operation, fixed and exponential."""
    p = b.profile
    batch, in_flight, delay_ms = 1000, 16, 200.0
    for dist in ("fixed", "exponential"):
        spec = EmulatorSpec(
            op_delay_ms=delay_ms, delay_distribution=dist, workers_per_tenant=in_flight
        )
        variant = f"200ms-{dist}"
        with b.emulator(spec) as emu:
            peers = b.peers(("P0", "P1", "P2"), bulk=True)
            runs = b.interleave(
                emu,
                "W2",
                variant,
                peers,
                lambda _l: bulk_job(emu, p.w2_records, batch, in_flight),
                reps=p.secondary_reps,
                peer_reps={"P2": p.info_reps},
            )
        p0 = runs.get("P0", [])
        # Server capacity: workers x batch / delay, and the emulator's CPU rate measured on
        # the P0 run of the same repetition (records per emulator-CPU-second).
        delay_cap = spec.workers_per_tenant * batch / (delay_ms / 1000)
        client_cap = in_flight * batch / (delay_ms / 1000)
        ideals = [
            min(r.n_records / max(r.emulator.get("cpu_s", 0.0), 1e-9), delay_cap, client_cap)
            for r in p0
        ]
        for peer in ("P1", "P0", "P2"):
            if peer not in runs or not ideals:
                continue
            rates = [r.n_records / r.wall for r in runs[peer]]
            share = median(pair_ratios(rates, ideals))
            b.add(
                Figure(
                    "W2",
                    f"records/s vs ideal, {peer}, {variant}",
                    share,
                    "x ideal",
                    ">= 0.90" if peer == "P1" else "",
                    verdict(share >= 0.9, invalid=emulator_bound(p0)) if peer == "P1" else "INFO",
                    f"{median(rates):.0f} rec/s; ideal {median(ideals):.0f} rec/s = min(emulator "
                    f"CPU capacity, {delay_cap:.0f}, {client_cap:.0f}); {busy_note(p0)}",
                )
            )
        if "P1" in runs and p0:
            b.add(
                Figure(
                    "W2",
                    f"records/s P1/P0, {variant}",
                    median(pair_ratios(walls(p0), walls(runs["P1"]))),
                    "x",
                    "",
                    "INFO",
                    "throughput of P1 over P0's, repetition by repetition",
                )
            )
        for peer in runs:
            b.add(
                Figure("W2", f"polls per op, {peer}, {variant}", median(polls_per_op(runs[peer])))
            )


# -- W3 --------------------------------------------------------------------------------


def w3(b: Bench) -> None:
    """Many single awaits: concurrent tasks, each awaiting one create (+ memory probe)."""
    p = b.profile
    n, n_probe = p.w3_tasks, p.w3_probe_tasks
    spec = EmulatorSpec(op_delay_ms=50.0, delay_distribution="exponential", workers_per_tenant=1000)
    fast = FastServerSpec(op_delay_ms=50.0, delay_distribution="exponential")
    with b.server(fast, spec) as emu:
        peers = b.peers(("P0", "P1", "P2"))

        def job(_label: str, size: int = n) -> Job:
            return Job("singles", emu.url, emu.api_key, size)

        runs = b.interleave(emu, "W3", "exp50ms", peers, job, reps=p.info_reps)
        bare = bare_task_bytes(n_probe)
        memory: dict[str, float] = {}
        for peer in peers:
            if peer != "P1" and b.over_budget():
                b._skip(f"W3 memory probe of {peer} (time budget spent)")
                continue
            probe = MemoryProbe(emu)
            mjob = job(peer, n_probe)
            mjob.on_all_submitted = probe.on_all_submitted
            emu.reset()
            emu.pause()
            run = run_peer(emu, "W3", "memory-probe", peer, 0, mjob, wrap=probe.wrap)
            b.runs.append(run)
            if probe.pending_bytes is not None:
                memory[peer] = probe.pending_bytes / n_probe
                run.metrics["bytes_per_pending_op"] = memory[peer]
            status = "ok" if run.accounting_ok else run.problems
            per_op = memory.get(peer, math.nan)
            b.log(
                f"  W3 memory-probe {peer:<11}: {per_op:.0f} B per pending op "
                f"(bare task {bare:.0f} B)  {status}"
            )
    for peer in runs:
        b.add(
            Figure(
                "W3", f"client CPU per await, {peer}", median(cpu_us_per_record(runs[peer])), "us"
            ),
            Figure("W3", f"polls per op, {peer}", median(polls_per_op(runs[peer]))),
            Figure(
                "W3",
                f"completion latency p50, {peer}",
                median([percentile(r.latencies, 50) * 1e3 for r in runs[peer]]),
                "ms",
            ),
        )
    if "P1" in runs and "P0" in runs:
        ratio = median(pair_ratios(cpu_us_per_record(runs["P1"]), cpu_us_per_record(runs["P0"])))
        p0 = runs["P0"]
        b.add(
            Figure(
                "W3",
                "client CPU per await P1/P0",
                ratio,
                "x",
                "<= 1.30 (issue #13)",
                verdict(ratio <= 1.30, invalid=emulator_bound(p0)),
                f"client process CPU, repetition by repetition; {busy_note(p0)}",
            )
        )
    for peer, per_op in memory.items():
        net = per_op - bare
        b.add(
            Figure(
                "W3",
                f"memory per pending op, {peer}",
                net,
                "B",
                "<= 2048" if peer == "P1" else "",
                verdict(net <= 2048) if peer == "P1" else "INFO",
                f"traced bytes while all {n_probe} ops pend, minus a bare awaiting task "
                f"({bare:.0f} B); total {per_op:.0f} B",
            )
        )


# -- W4 --------------------------------------------------------------------------------


#: W4 paces its submissions (1k ops over 2 s) so that the figure measures polling,
#: not a client congested by a burst of 1k simultaneous submits (that is W3).
W4_STAGGER = 0.002
#: Emulator workers in W4: enough for every op of the 1 s case to run at once, few
#: enough that waking the idle ones on each submit does not load the emulator.
W4_WORKERS = 600


def w4(b: Bench) -> None:
    """Polling efficiency: 1k operations, 50 ms, 1 s and lognormal (median 300 ms).

    Not scaled down: with fewer operations a larger share of them would be
    submitted before the first one finishes (nothing learned yet), which
    changes the polls-per-op figure of the 1 s case.
    """
    p = b.profile
    for label, delay_ms, dist in p.w4_delays:
        spec = EmulatorSpec(
            op_delay_ms=delay_ms, delay_distribution=dist, workers_per_tenant=W4_WORKERS
        )
        with b.emulator(spec) as emu:
            peers = b.peers(("P0-oracle", "P1", "P2"))
            runs = b.interleave(
                emu,
                "W4",
                label,
                peers,
                lambda _l: Job("singles", emu.url, emu.api_key, p.w4_ops, stagger=W4_STAGGER),
                peer_reps={"P2": p.info_reps},
            )
        w4_figures(b, label, delay_ms, runs)


def w4_figures(b: Bench, label: str, delay_ms: float, runs: dict[str, list[RunRecord]]) -> None:
    def p50(peer: str) -> list[float]:
        return [percentile(r.latencies, 50) for r in runs.get(peer, [])]

    def p99(peer: str) -> list[float]:
        return [percentile(r.latencies, 99) for r in runs.get(peer, [])]

    oracle = median(polls_per_op(runs.get("P0-oracle", [])))
    for peer, peer_runs in runs.items():
        ppo = median(polls_per_op(peer_runs))
        lat50, lat99 = median(p50(peer)) * 1e3, median(p99(peer)) * 1e3
        if peer == "P1":
            # The emulator answers every poll: when it is the bottleneck, its
            # answers queue, polls come late, and both figures measure it.
            bound = emulator_bound(peer_runs)
            busy = median([r.server_busy for r in peer_runs if r.wall > 0])
            server = f"emulator CPU busy {busy:.0%} of P1 wall" + (
                ": INVALID (server-bound)" if bound else ""
            )
            limit = min(oracle * 1.5 + 1, 3.0) if not math.isnan(oracle) else 3.0
            b.add(
                Figure(
                    "W4",
                    f"polls per op, P1, {label}",
                    ppo,
                    "",
                    f"<= min(oracle x1.5+1, 3) = {limit:.2f}",
                    verdict(ppo <= limit, invalid=bound),
                    f"P0-oracle {oracle:.2f}; {server}",
                )
            )
            allowed = max(50.0, 0.25 * delay_ms)
            b.add(
                Figure(
                    "W4",
                    f"completion latency overhead p50, P1, {label}",
                    lat50,
                    "ms",
                    f"<= {allowed:.0f}",
                    verdict(lat50 <= allowed, invalid=bound),
                    f"p99 {lat99:.1f} ms; {server}",
                )
            )
        else:
            b.add(
                Figure(
                    "W4",
                    f"polls per op, {peer}, {label}",
                    ppo,
                    "",
                    "",
                    "INFO",
                    f"latency overhead p50 {lat50:.1f} ms, p99 {lat99:.1f} ms",
                )
            )
    if "P1" in runs and "P2" in runs:
        fewer = median(pair_ratios(polls_per_op(runs["P2"]), polls_per_op(runs["P1"])))
        better = median(pair_diffs(p50("P1"), p50("P2"))) <= 0
        p2_polls = median(polls_per_op(runs["P2"]))
        note = (
            f"P1 latency overhead p50 {median(p50('P1')) * 1e3:.0f} ms "
            + ("<=" if better else ">")
            + f" P2's {median(p50('P2')) * 1e3:.0f} ms"
        )
        if p2_polls < 1.5:
            note += (
                f"; P2 polls {p2_polls:.2f}/op, at the 1 poll/op floor (its first poll "
                "comes 1 s after submit): no peer can poll 2x less"
            )
        b.add(
            Figure(
                "W4",
                f"vs P2: polls per op P2/P1, {label}",
                fewer,
                "x",
                ">= 2 at equal or better latency",
                verdict(fewer >= 2 and better),
                note,
            )
        )


# -- W5 --------------------------------------------------------------------------------


def w5(b: Bench) -> None:
    """Streaming memory: peak RSS growth of 1M records vs 100k, each in a fresh process."""
    p = b.profile
    peers = b.peers(("P1", "P2"), bulk=True)
    sizes = {peer: p.w5_sizes if peer == "P1" else p.w5_p2_sizes for peer in peers}
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with b.emulator(NO_DELAY) as emu:
        for rep in range(p.w5_reps):
            if rep > 0 and b.over_budget():
                b._skip(f"W5: repetitions {rep + 1}-{p.w5_reps} (time budget spent)")
                break
            for index in (0, 1):  # every small run, then every large one
                for peer in peers:
                    size = sizes[peer][index]
                    if peer != "P1" and b.over_budget():
                        b._skip(f"W5 {peer} n={size} (time budget spent)")
                        continue
                    out = _w5_run(b, emu, peer, size, rep)
                    results.setdefault((peer, size), []).append(out)
    fresh = all(hwm_is_fresh(o) for outs in results.values() for o in outs)
    for peer in peers:
        small, large = sizes[peer]
        if not results.get((peer, small)) or not results.get((peer, large)):
            continue
        peak_s = median([o.get("rss_peak", math.nan) for o in results[(peer, small)]])
        peak_l = median([o.get("rss_peak", math.nan) for o in results[(peer, large)]])
        grow_s = median([o.get("rss_growth", math.nan) for o in results[(peer, small)]])
        grow_l = median([o.get("rss_growth", math.nan) for o in results[(peer, large)]])
        change = peak_l / peak_s - 1 if peak_s else math.nan
        hwm0 = max(
            (o.get("vm_hwm_start", 0) for k, outs in results.items() if k[0] == peer for o in outs),
            default=0,
        )
        note = (
            f"peak RSS (VmHWM) {peak_s / 2**20:.0f} -> {peak_l / 2**20:.0f} MiB; growth over "
            f"the process baseline {grow_s / 2**20:.1f} -> {grow_l / 2**20:.1f} MiB; VmHWM "
            f"before the run <= {hwm0 / 2**20:.0f} MiB (fresh process)"
        )
        is_p1 = peer == "P1"
        b.add(
            Figure(
                "W5",
                f"peak RSS {large} vs {small}, {peer}",
                change * 100,
                "%",
                "<= +10%" if is_p1 else "",
                verdict(change <= 0.10, invalid=not fresh) if is_p1 else "INFO",
                note,
            )
        )


def _w5_run(b: Bench, emu: Emulator, peer: str, size: int, rep: int) -> dict[str, Any]:
    """One W5 child run, checked and logged."""
    emu.reset()
    out = _w5_child(emu, peer, size)
    run = RunRecord("W5", f"n={size}", peer, rep, size)
    run.wall, run.cpu, run.emulator = (
        out.get("wall", math.nan),
        out.get("cpu", math.nan),
        emu.stats(),
    )
    run.result.records_good = out.get("good", 0)
    run.result.records_sent = size
    run.result.error = out.get("error")
    run.metrics = {
        k: float(out[k])
        for k in ("rss_baseline", "rss_peak", "vm_hwm_start", "rss_sampled_peak")
        if k in out
    }
    check(run)
    if not hwm_is_fresh(out):
        run.problems.append(
            f"VmHWM before the run {out.get('vm_hwm_start', 0) / 2**20:.0f} MiB "
            f"vs RSS {out.get('rss_baseline', 0) / 2**20:.0f} MiB: inherited, "
            "the peak RSS is not this process's"
        )
    b.runs.append(run)
    status = "ok" if run.accounting_ok else run.problems
    b.log(
        f"  W5 n={size:<9} {peer:<11} rep {rep}: peak RSS growth "
        f"{out.get('rss_growth', 0) / 2**20:7.1f} MiB, peak "
        f"{out.get('rss_peak', 0) / 2**20:7.1f} MiB wall {run.wall:6.2f}s  {status}"
    )
    return out


#: W5 child processes are killed after this long.
W5_CHILD_TIMEOUT_S = 300


def hwm_is_fresh(out: dict[str, Any]) -> bool:
    """Whether a W5 child's ``VmHWM`` is its own: before the run it must be close
    to the child's baseline RSS (a fresh interpreter: ~40 MiB), not the size of
    the process that spawned it."""
    start, base = out.get("vm_hwm_start"), out.get("rss_baseline")
    if not start or not base:
        return bool(out.get("error"))  # a failed child is reported by the accounting
    return bool(start <= 2 * base)


def _w5_child(emu: Emulator, peer: str, n: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.memchild", peer, str(n), emu.url, emu.api_key]
    env = dict(os.environ, PYTHONHASHSEED="0")
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=W5_CHILD_TIMEOUT_S, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- W6 --------------------------------------------------------------------------------

#: BENCH.md W6: 5% 503, 1% 429 Retry-After 0.1, 1% connection reset after the body,
#: 0.5% malformed poll bodies.
W6_SPEC = (
    "POST /imgs 503 p=0.05; GET /ops/{op_id} 503 p=0.05; "
    "POST /imgs 429(0.1) p=0.01; GET /ops/{op_id} 429(0.1) p=0.01; "
    "POST /imgs reset_after p=0.01; "
    "GET /ops/{op_id} malformed_json p=0.005"
)


def w6(b: Bench) -> None:
    """Throughput under faults: W1 (batch 1000, 16 in flight) with W6_SPEC."""
    p = b.profile
    n = p.w6_records
    has_p1 = bool(b.peers(("P1",), bulk=True))
    labels = ["P1", "P1+faults", "P0+faults"] if has_p1 else ["P0+faults"]

    def faults(label: str, rep: int) -> dict[str, Any] | None:
        return {"spec": W6_SPEC, "seed": 1000 + rep} if label.endswith("+faults") else None

    with b.emulator(NO_DELAY) as emu:
        runs = b.interleave(
            emu,
            "W6",
            "b1000/k16",
            labels,
            lambda _l: bulk_job(emu, n, 1000, 16),
            reps=p.secondary_reps,
            faults=faults,
        )
    if "P1" in runs and "P1+faults" in runs:
        injected = median([r.emulator.get("faults_injected", 0) for r in runs["P1+faults"]])
        share = median(
            pair_ratios([1 / r.wall for r in runs["P1+faults"]], [1 / r.wall for r in runs["P1"]])
        )
        b.add(
            Figure(
                "W6",
                "throughput under faults vs clean, P1",
                share,
                "x",
                ">= 0.80",
                verdict(share >= 0.8),
                f"faults injected per run: {injected:.0f}",
            )
        )
    for label in ("P1+faults", "P0+faults"):
        if label not in runs:
            continue
        peer = label.split("+")[0]
        lost = max((r.result.lost for r in runs[label]), default=0)
        stored_short = max(
            (r.n_records - (r.emulator.get("images_stored") or 0) for r in runs[label]), default=0
        )
        dups = max((r.emulator.get("duplicate_applies", 0) for r in runs[label]), default=0)
        resent = max((r.result.records_resent for r in runs[label]), default=0)
        # Duplicates beyond the records the client reported resent, worst run.
        unreported = max(
            (
                (r.emulator.get("duplicate_applies", 0) or 0) - r.result.records_resent
                for r in runs[label]
            ),
            default=0,
        )
        unknown = max((r.result.records_unknown for r in runs[label]), default=0)
        is_p1 = peer == "P1"
        b.add(
            Figure(
                "W6",
                f"lost records (worst run), {peer}",
                float(lost + stored_short),
                "",
                "0" if is_p1 else "",
                verdict(lost + stored_short == 0) if is_p1 else "INFO",
                f"lost {lost}, not stored {stored_short}, reported unknown {unknown}",
            ),
            Figure(
                "W6",
                f"reported duplicates (worst run), {peer}",
                float(dups),
                "",
                "<= records reported resent" if is_p1 else "",
                verdict(unreported <= 0) if is_p1 else "INFO",
                f"duplicate applies {dups}, records in writes the client reported resent "
                f"{resent} (worst runs); duplicates beyond them: {max(unreported, 0)}. By "
                "design: a strict=false write is resent after 'connection reset after body' "
                "and re-applied; zero would need a server idempotency key",
            ),
        )


# -- W7 --------------------------------------------------------------------------------


def w7(b: Bench) -> None:
    """Web-app co-tenancy: a 1 ms ticker in the same loop while W1 runs."""
    p = b.profile
    n = p.w7_records
    tickers: dict[int, Ticker] = {}

    with b.server(FastServerSpec(), NO_DELAY) as emu:
        peers = b.peers(("P0", "P1"), bulk=True)

        def job(label: str) -> Job:
            ticker = Ticker()
            j = bulk_job(emu, n, 1000, 16)
            j.companion = ticker.run
            tickers[id(j)] = ticker
            jobs.append((j, ticker))
            return j

        jobs: list[tuple[Job, Ticker]] = []

        def after(run: RunRecord) -> None:
            _job, ticker = jobs[-1]
            run.metrics["lag_p99_ms"] = percentile(ticker.lags, 99) * 1e3
            run.metrics["lag_max_ms"] = max(ticker.lags, default=math.nan) * 1e3
            run.metrics["ticks"] = float(len(ticker.lags))

        runs = b.interleave(emu, "W7", "b1000/k16", peers, job, reps=p.secondary_reps, after=after)
    note = busy_note(runs.get("P0", []))
    bound = emulator_bound(runs.get("P0", []))
    for peer in runs:
        p99 = median([r.metrics["lag_p99_ms"] for r in runs[peer]])
        worst = max((r.metrics["lag_max_ms"] for r in runs[peer]), default=math.nan)
        typical_max = median([r.metrics["lag_max_ms"] for r in runs[peer]])
        if peer == "P1":
            b.add(
                Figure(
                    "W7",
                    "loop lag p99, P1",
                    p99,
                    "ms",
                    "<= 5",
                    verdict(p99 <= 5, invalid=bound),
                    note,
                ),
                Figure(
                    "W7",
                    "loop lag max, P1",
                    typical_max,
                    "ms",
                    "<= 20",
                    verdict(typical_max <= 20, invalid=bound),
                    f"median of per-run maxima; worst run {worst:.1f} ms; {note}",
                ),
            )
        else:
            b.add(
                Figure(
                    "W7",
                    f"loop lag p99 / max, {peer}",
                    p99,
                    "ms",
                    "",
                    "INFO",
                    f"max {typical_max:.1f} ms (worst {worst:.1f} ms)",
                )
            )


def w8(b: Bench) -> None:
    """Load test (issue #12): concurrent strict single creates over 8 connections."""
    from benchmarks.load import w8_load

    w8_load(b)


#: Workloads the quick profile runs by default (W8 only when asked: ``--workload W8``).
QUICK_DEFAULT = ("W1", "W2", "W3", "W4", "W5", "W6", "W7")

WORKLOADS: dict[str, Callable[[Bench], None]] = {
    "W1": w1,
    "W2": w2,
    "W3": w3,
    "W4": w4,
    "W5": w5,
    "W6": w6,
    "W7": w7,
    "W8": w8,
}
