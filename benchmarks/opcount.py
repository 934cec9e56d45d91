"""``python -m benchmarks.opcount``: Python bytecodes per batch of one W1 run,
by peer and by function: a cost measure that does not move with the host.

Wall and CPU ratios on a shared 2-core host spread by ±0.1 between runs of
the same code, which hides a change of a few percent. The number of bytecodes
the interpreter executes for the same job does not depend on the host, so an
A/B of a change to the hot path reads here in one run of each side. It is a
proxy: C work (``orjson``, hashing, socket calls) and the cost of each bytecode
are not in it, so a claim of speed still comes from ``python -m benchmarks``.

The run is W1's: records from the harness generator, bulk upload to the fast
server, one warm-up run first; tracing (``sys.settrace`` with opcode events)
makes it ~30x slower, so the default is 10k records.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import attrs

from benchmarks.fastserver import FastServerSpec
from benchmarks.harness import Emulator, split_cores
from benchmarks.peers import PEERS
from benchmarks.stats import ratio_lines
from benchmarks.workloads import bulk_job

Counts = collections.Counter[tuple[str, int, str]]


def _tracer(counts: Counts) -> Callable[[FrameType, str, Any], Any]:
    def trace(frame: FrameType, _event: str, _arg: Any) -> Any:
        frame.f_trace_opcodes = True
        code = frame.f_code
        key = (code.co_filename, code.co_firstlineno, code.co_name)

        def local(_frame: FrameType, event: str, _arg: Any) -> Any:
            if event == "opcode":
                counts[key] += 1
            return local

        return local

    return trace


def count(peer: str, *, records: int, batch: int, in_flight: int) -> Counts:
    """Bytecodes by function of one traced run of ``peer`` (after a warm-up)."""
    run = PEERS[peer].run
    core, _ = split_cores()
    counts: Counts = collections.Counter()
    with Emulator(FastServerSpec(), core=core) as emu:
        job = bulk_job(emu, records, batch, in_flight)
        asyncio.run(run(attrs.evolve(job, n_records=min(records, 2_000))))
        sys.settrace(_tracer(counts))
        try:
            asyncio.run(run(attrs.evolve(job)))
        finally:
            sys.settrace(None)
    return counts


def group(filename: str) -> str:
    """The package a function belongs to, for the summary line."""
    for name in ("wesog_async", "aiohttp", "asyncio", "yarl", "multidict", "benchmarks"):
        if f"{os.sep}{name}{os.sep}" in filename or filename.startswith(f"{name}{os.sep}"):
            return name
    return "generated" if filename.startswith("<") else "other"


def _where(filename: str) -> str:
    for marker in ("site-packages/", os.getcwd() + os.sep):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return re.sub(r"^.*/lib/python3\.\d+/", "", filename)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.opcount", description=__doc__)
    parser.add_argument("--peers", default="P0,P1", help="comma-separated (default P0,P1)")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--top", type=int, default=25, help="functions listed per peer")
    args = parser.parse_args(argv)
    batches = max(1, -(-args.records // args.batch))
    totals = {}
    for peer in args.peers.split(","):
        counts = count(peer, records=args.records, batch=args.batch, in_flight=args.in_flight)
        total = sum(counts.values())
        totals[peer] = total
        by_group: collections.Counter[str] = collections.Counter()
        for (filename, _line, _name), n in counts.items():
            by_group[group(filename)] += n
        print(f"{peer}: {total / batches:,.0f} bytecodes per batch of {args.batch}")
        print("  " + ", ".join(f"{g} {n / batches:,.0f}" for g, n in by_group.most_common()))
        for (filename, line, name), n in counts.most_common(args.top):
            print(f"  {n / batches:9.1f}  {_where(filename)}:{line}({name})")
    for line in ratio_lines(totals, "bytecodes"):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
