"""Scale-out benchmark: records/s with 1, 2 and 4 worker processes, and the
journal's own cost per batch (SQLite vs PostgreSQL).

    python -m benchmarks.scale                     # 100k records, 1/2/4 workers
    python -m benchmarks.scale --records 40000 --workers 1,2
    python -m benchmarks.scale --dsn postgresql://...   # an existing database

Not part of ``python -m benchmarks`` (nor ``--quick``). The emulator runs in
its own process with a small per-item delay; each worker is a
``wesog-async worker`` process; PostgreSQL is ``--dsn``, else
``$WESOG_TEST_POSTGRES_DSN``, else a throwaway cluster started here (as the
tests do). Results: a table on stdout and ``benchmarks/results/scale.json``.
On a 2-core machine the emulator, PostgreSQL and the workers share the cores,
so the figures show the overhead of coordination more than a real speed-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

KEY = "bench-scale-key-0123456789"
ROOT = Path(__file__).resolve().parent.parent


def _spawn(args: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "wesog_async", *args], env=env, **kw)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def emulator(item_delay_ms: float) -> Iterator[str]:
    port = _free_port()
    proc = _spawn(
        ["emulator", "--port", str(port), "--api-key", KEY, "--item-delay-ms", str(item_delay_ms)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/_emulator/stats", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def database(dsn: str | None) -> Iterator[str]:
    dsn = dsn or os.environ.get("WESOG_TEST_POSTGRES_DSN")
    if dsn:
        yield dsn
        return
    sys.path.insert(0, str(ROOT))
    from tests import _services

    bin_dir = _services.postgres_bin()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL: pass --dsn, or run under `bash .ci/services.sh`")
    with _services.run_postgres(bin_dir) as started:
        yield started


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_emulator/stats", timeout=5) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


def run_workers(
    dsn: str, url: str, path: Path, workers: int, shards: int, batch: int
) -> dict[str, Any]:
    """One job over ``path`` drained by ``workers`` processes; records/s."""
    from wesog_async.cli import main as cli_main

    records = sum(1 for _ in path.open("rb"))
    job = f"bench-{workers}w-{os.getpid()}-{time.monotonic_ns()}"
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        code = cli_main(
            ["job", "create", job, str(path), "--journal", dsn, "-q",
             "--lines-per-shard", str(max(1, records // shards)), "--batch-size", str(batch)]
        )  # fmt: skip
    if code != 0:
        raise RuntimeError(f"job create exited {code}")
    before = _stats(url)["items_applied"]
    t0 = time.perf_counter()
    procs = [
        _spawn(
            ["worker", job, "--journal", dsn, "--api-key", KEY, "--base-url", url, "-q"],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - t0
    applied = _stats(url)["items_applied"] - before
    if any(codes) or applied != records:
        raise RuntimeError(f"workers exited {codes}, applied {applied} of {records}")
    return {
        "workers": workers,
        "records": records,
        "elapsed_s": round(elapsed, 3),
        "records_per_s": round(records / elapsed),
    }


async def journal_overhead(dsn: str, batches: int, batch: int) -> dict[str, float]:
    """Microseconds per batch of the journal writes one batch costs
    (insert submitting, accept, finish), per backend."""
    from wesog_async.bulk.journal import DONE, SUBMITTING, Binding, Journal, JournalRow
    from wesog_async.bulk.journal.postgres import PostgresJournal
    from wesog_async.scale import JobSpec, ShardSpec, connect, create_job, leases

    binding = Binding("http://127.0.0.1:1", "bench", "create", False)
    ids = [f"img-{i}" for i in range(batch)]
    out: dict[str, float] = {}
    tag = f"bench-{os.getpid()}-{time.monotonic_ns()}"
    # A worker's journal: every insert checks its shard lease (the fence).
    pool = await connect(dsn)
    try:
        await create_job(pool, tag, [ShardSpec("/dev/null", "jsonl", "file")], JobSpec())
        lease = await leases.claim(pool, tag, "bench", 3600)
        assert lease is not None
    finally:
        await pool.close()
    with tempfile.TemporaryDirectory() as tmp:
        backends = {
            "sqlite": Journal(os.path.join(tmp, "bench.journal")),
            "postgresql": PostgresJournal(dsn, name=tag),
            "postgresql_fenced": PostgresJournal(dsn, name=f"{tag}/0", fence=leases.fence(lease)),
        }
        for name, journal in backends.items():
            async with journal:
                await journal.bind(binding)
                t0 = time.perf_counter()
                for n in range(1, batches + 1):
                    start = (n - 1) * batch
                    row = JournalRow(
                        n, start, start + batch, SUBMITTING, image_ids=ids, fingerprint="f"
                    )
                    await journal.insert([row])
                    await journal.accept(n, n)
                    row.state, row.n_applied = DONE, batch
                    await journal.finish(row)
                out[name] = round((time.perf_counter() - t0) / batches * 1e6, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--item-delay-ms", type=float, default=0.005)
    parser.add_argument("--journal-batches", type=int, default=500)
    parser.add_argument("--dsn", help="PostgreSQL URL (default: start a throwaway cluster)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale.json"))
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",") if x.strip()]
    with tempfile.TemporaryDirectory() as tmp, database(args.dsn) as dsn:
        path = Path(tmp) / "images.jsonl"
        with path.open("w") as f:
            for i in range(args.records):
                f.write(f'{{"id":"b{i}","src":"https://cdn.example.com/{i}.jpg","title":"t{i}"}}\n')
        rows = []
        for workers in counts:
            with emulator(args.item_delay_ms) as url:  # a fresh server per run
                rows.append(run_workers(dsn, url, path, workers, args.shards, args.batch_size))
            print(
                f"{workers} worker(s): {rows[-1]['records']:,} records in "
                f"{rows[-1]['elapsed_s']:.2f} s = {rows[-1]['records_per_s']:,} records/s",
                flush=True,
            )
        overhead = asyncio.run(journal_overhead(dsn, args.journal_batches, args.batch_size))
    print(
        "journal writes per batch (insert + accept + finish, "
        f"{args.batch_size} records): "
        + ", ".join(f"{name} {us:,.0f} µs" for name, us in overhead.items())
    )
    result = {
        "records": args.records,
        "shards": args.shards,
        "batch_size": args.batch_size,
        "item_delay_ms": args.item_delay_ms,
        "cpus": os.cpu_count(),
        "runs": rows,
        "journal_us_per_batch": overhead,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
