"""W8, the load test of issue #12: no write that never reached the server may be
reported unknown or resent.

``load_writes`` (5,000) concurrent ``strict=True`` single creates, each awaited,
through one client with ``max_connections=8`` and a per-attempt ``timeout``
(2 s), against the fast server holding every answer ``load_response_delay_ms``
(5 ms) — a slow server without CPU, so that the writes queue for the 8 pooled
connections for longer than the timeout (5,000 / 8 x 5 ms ≈ 3.1 s, polls
besides). Every attempt that reaches the server is answered within ~5 ms, far
inside the timeout; a write that times out *waiting for a connection* never
left the client. Then the same with ``strict=False`` (upserts), where the client
resends instead and flags ``fut.resent``.

Cross-check against the server: it counts receipts per image id
(``/_emulator/bench/received``).

* false unknown: ``OutcomeUnknownError`` for an id the server never received;
* false resend: ``fut.resent`` for an id the server received only once (the
  resend got through, so the first attempt never arrived);
* strict write sent twice: a strict id received more than once (a strict write
  must never be resent after an attempt that may have been applied);
* any other failure (create or await), by type, and writes with no outcome.

Any of these marks the variant FAIL (a check, not a timing figure: W8 runs are
accounting failures for ``--check``). W8 is in the full profile; the quick
profile runs it only when asked (``--quick --workload W8``, 1,200 writes, 10 ms,
1 s timeout), so CI's ``--quick --check`` does not run it.
"""

from __future__ import annotations

import math
from collections import Counter

from benchmarks.fastserver import FastServerSpec
from benchmarks.harness import run_loop, timed
from benchmarks.peers import Job
from benchmarks.peers.wesog import LoadResult, p1_load
from benchmarks.runner import RunRecord
from benchmarks.workloads import Bench, Figure

#: W8's pool size (issue #12).
LOAD_CONNECTIONS = 8
#: Each operation finishes this long after submit (one item each).
LOAD_ITEM_DELAY_MS = 20.0


def w8_load(b: Bench) -> None:
    """Load test: concurrent single creates over 8 connections, zero false unknowns."""
    p = b.profile
    spec = FastServerSpec(
        item_delay_ms=LOAD_ITEM_DELAY_MS, response_delay_ms=p.load_response_delay_ms
    )
    n = p.load_writes
    b.log(
        f"  W8: {n} concurrent creates, max_connections={LOAD_CONNECTIONS}, "
        f"timeout={p.load_timeout_s:g} s, answers held {p.load_response_delay_ms:g} ms "
        f"(queue for the pool ~{n / LOAD_CONNECTIONS * p.load_response_delay_ms / 1e3:.1f} s)"
    )
    with b.emulator(spec) as server:
        for variant, strict in (("strict", True), ("upsert", False)):
            server.reset()
            job = Job("singles", server.url, server.api_key, n, prefix=f"load-{variant}")

            async def main(job: Job = job, strict: bool = strict) -> LoadResult:
                return await p1_load(
                    job, strict=strict, max_connections=LOAD_CONNECTIONS, timeout=p.load_timeout_s
                )

            with timed() as t:
                try:
                    res: LoadResult = run_loop(main, use_uvloop=False)
                except Exception as exc:
                    res = LoadResult(error=f"{type(exc).__name__}: {exc}")
            run = RunRecord("W8", variant, "P1", 0, n, server=server.kind)
            run.wall, run.cpu = t["wall"], t["cpu"]
            run.emulator = server.stats()
            counts = judge(res, Counter(server.received()), n, strict=strict)
            run.metrics = {k: float(v) for k, v in counts.items()}
            run.result.records_sent = n
            run.result.records_good = len(res.good)
            run.result.records_unknown = len(res.unknown)
            run.result.error = res.error
            run.problems = problems(counts, res.error)
            b.runs.append(run)
            b.log(f"  W8 {variant:<7}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            b.log(
                f"  W8 {variant:<7}: "
                + ("FAIL " + "; ".join(run.problems) if run.problems else "ok")
            )
            add_figures(b, variant, counts, res)


def judge(res: LoadResult, received: Counter[str], n: int, *, strict: bool) -> dict[str, int]:
    """The W8 counts: client outcomes against the server's receipts per id."""
    outcomes = res.good | res.bad | res.unknown | set(res.failed)
    return {
        "writes": n,
        "server_received": sum(received.values()),
        "ids_received": len(received),
        "client_requests": res.client_stats.get("requests", 0),
        "good": len(res.good),
        "bad": len(res.bad),
        "unknown": len(res.unknown),
        "false_unknown": sum(1 for i in res.unknown if received[i] == 0),
        "resent": len(res.resent),
        "false_resent": sum(1 for i in res.resent if received[i] <= 1),
        "strict_sent_twice": sum(1 for c in received.values() if c > 1) if strict else 0,
        "other_failures": len(res.failed),
        "no_outcome": n - len(outcomes) if res.error is None else n,
    }


def problems(counts: dict[str, int], error: str | None) -> list[str]:
    """Why a W8 variant FAILs (empty: it passes)."""
    out = [f"did not complete: {error}"] if error else []
    for key, what in (
        ("false_unknown", "write(s) reported unknown that the server never received"),
        ("false_resent", "write(s) flagged resent whose first attempt never reached the server"),
        ("strict_sent_twice", "strict write(s) received twice"),
        ("other_failures", "write(s) failed otherwise"),
        ("no_outcome", "write(s) with no outcome"),
    ):
        if counts.get(key):
            out.append(f"{counts[key]} {what}")
    return out


def add_figures(b: Bench, variant: str, counts: dict[str, int], res: LoadResult) -> None:
    kinds = Counter(res.failed.values())
    failed_note = ", ".join(f"{k} x{v}" for k, v in kinds.most_common()) or "none"
    ok = "PASS" if res.error is None else "FAIL"
    key = "false_unknown" if variant == "strict" else "false_resent"
    label = "false unknowns" if variant == "strict" else "false resends"
    value = float(counts[key]) if res.error is None else math.nan
    b.add(
        Figure(
            "W8",
            f"{label}, {counts['writes']} {variant} creates / {LOAD_CONNECTIONS} connections",
            value,
            "",
            "0",
            ok if counts[key] == 0 else "FAIL",
            f"unknown {counts['unknown']}, resent {counts['resent']}; server received "
            f"{counts['server_received']} requests for {counts['ids_received']} ids; client "
            f"requests (writes and polls) {counts['client_requests']}",
        ),
        Figure(
            "W8",
            f"other failures, {variant}",
            float(counts["other_failures"] + counts["no_outcome"] + counts["strict_sent_twice"]),
            "",
            "0",
            ok
            if not (counts["other_failures"] or counts["no_outcome"] or counts["strict_sent_twice"])
            else "FAIL",
            f"by type: {failed_note}; no outcome {counts['no_outcome']}; strict sent twice "
            f"{counts['strict_sent_twice']}; good {counts['good']}, bad {counts['bad']}",
        ),
    )
