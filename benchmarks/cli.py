"""``python -m benchmarks``: run the workloads, print and write the results.

``--quick`` is the small profile (under a minute on 2 cores, W8 left out unless
asked for); ``--check`` makes the exit status depend on validity and accounting
only (records applied == sent, no duplicates in fault-free runs, every peer
completed, nothing lost, W8's false unknowns when W8 runs), never on timing:
``--quick --check`` is what CI runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.harness import pin_self, split_cores
from benchmarks.report import environment, targets_table, write
from benchmarks.workloads import FULL, QUICK, QUICK_DEFAULT, WORKLOADS, Bench

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repetition")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit non-zero on a validity/accounting failure (never on timing)",
    )
    parser.add_argument(
        "--workload",
        default="",
        help="comma-separated subset, e.g. W1,W4 (default: all; --quick leaves out W8)",
    )
    parser.add_argument(
        "--server",
        choices=("auto", "emulator"),
        default="auto",
        help="auto: W1, W3, W7 (and W8) on the fast server, the rest on the emulator; "
        "emulator: W1, W3 and W7 on the emulator too (W8 always uses the fast server)",
    )
    parser.add_argument(
        "--reps", type=int, default=None, help="every workload at this many repetitions"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds for the whole invocation: once spent, no further repetition starts "
        "(default: the profile's, 570 full / 55 quick; 0: unbounded)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    parser.add_argument("--name", default=None, help="file stem (default: latest / quick)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = QUICK if args.quick else FULL
    if args.reps is not None:
        if args.reps < 1:
            raise SystemExit("--reps must be >= 1")
        profile = profile.with_reps(args.reps)
    default = list(QUICK_DEFAULT) if args.quick else list(WORKLOADS)
    selected = [w.strip().upper() for w in args.workload.split(",") if w.strip()] or default
    unknown = [w for w in selected if w not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; choose from {sorted(WORKLOADS)}")

    emulator_core, harness_cores = split_cores()
    pin_self(harness_cores)
    budget = profile.budget_s if args.budget is None else max(0.0, args.budget)
    bench = Bench(
        profile,
        emulator_core,
        log=lambda line: print(line, flush=True),
        budget_s=budget,
        server_kind=args.server,
    )
    cores = {
        "emulator": emulator_core,
        "harness": sorted(harness_cores) if harness_cores else None,
    }
    env = environment(bench, cores)
    started = time.monotonic()
    print(
        f"profile {profile.name}: {', '.join(selected)} (reps {profile.reps}, secondary "
        f"{profile.secondary_reps}; budget {budget:.0f} s)",
        flush=True,
    )
    for line in profile.deviations():
        print(f"  scaled from BENCH.md: {line}", flush=True)
    for name in selected:
        t0 = time.monotonic()
        doc = (WORKLOADS[name].__doc__ or "").strip().splitlines()
        print(f"{name}: {doc[0] if doc else ''}", flush=True)
        WORKLOADS[name](bench)
        print(f"{name} done in {time.monotonic() - t0:.1f}s", flush=True)
    env["elapsed_s"] = round(time.monotonic() - started, 1)
    env["budget_s"] = budget
    env["workloads"] = selected
    env["deviations"] = profile.deviations()
    stem = args.name or ("quick" if args.quick else "latest")
    jsonl, md = write(bench, env, args.out, stem)
    print()
    print(targets_table(bench.figures))
    print()
    failures = [r for r in bench.runs if not r.accounting_ok]
    print(
        f"{len(bench.runs)} peer runs in {env['elapsed_s']}s; accounting failures: "
        f"{len(failures)}; results: {md} and {jsonl}"
    )
    for run in failures:
        print(f"  FAIL {run.workload} {run.variant} {run.peer} rep {run.rep}: {run.problems}")
    if args.check:
        print("check: " + ("FAILED" if failures else "passed") + " (validity and accounting only)")
        return 1 if failures else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
