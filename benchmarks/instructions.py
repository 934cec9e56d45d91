"""``python -m benchmarks.instructions``: machine instructions per record of a
W1 run, by peer, counted by valgrind's callgrind: the measure under the
bytecodes of :mod:`benchmarks.opcount`, as deterministic and as blind to the
host's load.

Each peer runs twice in a child process under callgrind, uploading a small
and a large number of records to the fast server (which runs outside
valgrind, in its own process); the difference of the two totals divided by
the difference of the record counts is the peer's cost per record, start-up
and imports cancelled out. Per batch costs are in it, spread over the batch.
It needs ``valgrind`` on ``PATH`` and takes a few minutes (callgrind runs
Python ~50x slower). C work (``orjson``, hashing, the socket calls' user-space
side) is in it; the kernel's side of a system call and the cost of a cache miss
are not: a CPU ratio on a real host can differ, and still comes from
``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile

import attrs

from benchmarks.fastserver import FastServerSpec
from benchmarks.harness import Emulator, split_cores
from benchmarks.peers import PEERS
from benchmarks.stats import ratio_lines
from benchmarks.workloads import bulk_job

_TOTAL = re.compile(r"Collected\s*:\s*(\d+)")


def child(peer: str, *, url: str, api_key: str, records: int, batch: int, in_flight: int) -> None:
    """One W1 run of ``peer`` against a server already running (the traced part)."""
    job = bulk_job(_Server(url, api_key), records, batch, in_flight)  # type: ignore[arg-type]
    result = asyncio.run(PEERS[peer].run(attrs.evolve(job)))
    if result.error is not None:
        raise SystemExit(f"{peer} failed: {result.error}")


@attrs.frozen
class _Server:
    """What :func:`bulk_job` reads of an :class:`Emulator`."""

    url: str
    api_key: str
    spec: FastServerSpec = attrs.field(factory=FastServerSpec)


def collected(output: str) -> int:
    """The instruction count in callgrind's summary (``Collected : N``)."""
    match = _TOTAL.search(output)
    if match is None:
        raise ValueError("no 'Collected :' line in callgrind's output")
    return int(match.group(1))


def traced(peer: str, emu: Emulator, records: int, batch: int, in_flight: int) -> int:
    """Instructions callgrind counts for one child run of ``peer``."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={os.path.join(tmp, 'out')}",
            sys.executable, "-m", "benchmarks.instructions", "--child", peer,
            "--url", emu.url, "--api-key", emu.api_key, "--records", str(records),
            "--batch", str(batch), "--in-flight", str(in_flight),
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{peer} under callgrind failed:\n{done.stderr[-2000:]}")
    return collected(done.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    parser.add_argument("--peers", default="P0,P1", help="comma-separated (default P0,P1)")
    parser.add_argument("--records", type=int, default=20_000, help="the large run's records")
    parser.add_argument("--base", type=int, default=2_000, help="the small run's records")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--api-key", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(
            args.child, url=args.url, api_key=args.api_key, records=args.records,
            batch=args.batch, in_flight=args.in_flight,
        )  # fmt: skip
        return 0
    if args.records <= args.base:
        parser.error("--records must be larger than --base")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing counted", file=sys.stderr)
        return 2
    core, _ = split_cores()
    per_record: dict[str, float] = {}
    with Emulator(FastServerSpec(), core=core) as emu:
        for peer in args.peers.split(","):
            small = traced(peer, emu, args.base, args.batch, args.in_flight)
            large = traced(peer, emu, args.records, args.batch, args.in_flight)
            per_record[peer] = (large - small) / (args.records - args.base)
            print(f"{peer}: {per_record[peer]:,.0f} instructions per record (batch {args.batch})")
    for line in ratio_lines(per_record, "instructions"):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
