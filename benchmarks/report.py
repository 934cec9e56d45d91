"""Results: JSON Lines (one line per workload, variant and peer, plus one per
figure) and a markdown table, written under ``benchmarks/results/``."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.runner import RunRecord
from benchmarks.stats import median
from benchmarks.workloads import Bench, Figure


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment(bench: Bench, cores: dict[str, Any]) -> dict[str, Any]:
    """Python, library versions, CPU model and the core layout of this run."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "profile": bench.profile.name,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cores": cores,
        "wesog_async": _version("wesog-async"),
        "aiohttp": _version("aiohttp"),
        "uvloop": _version("uvloop"),
        "orjson": _version("orjson"),
        "cattrs": _version("cattrs"),
        "attrs": _version("attrs"),
        "httpx": _version("httpx"),
        "commit": _commit(),
    }


def _commit() -> str | None:
    """The short commit of the checkout the library is imported from (``+dirty``
    when it has uncommitted changes)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "wesog_async"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def peer_lines(bench: Bench, env: dict[str, Any]) -> list[dict[str, Any]]:
    """One JSON object per (workload, variant, peer) with every repetition."""
    groups: dict[tuple[str, str, str], list[RunRecord]] = defaultdict(list)
    for run in bench.runs:
        groups[(run.workload, run.variant, run.peer)].append(run)
    lines = []
    for (workload, variant, peer), runs in groups.items():
        lines.append(
            {
                "kind": "peer",
                "workload": workload,
                "variant": variant,
                "peer": peer,
                "reps": len(runs),
                "median_wall_s": round(median([r.wall for r in runs]), 4),
                "median_cpu_s": round(median([r.cpu for r in runs]), 4),
                "accounting_ok": all(r.accounting_ok for r in runs),
                "emulator_bound": any(r.emulator_bound for r in runs),
                "runs": [r.summary() for r in runs],
                "env": env,
            }
        )
    return lines


def write(bench: Bench, env: dict[str, Any], out_dir: Path, stem: str) -> tuple[Path, Path]:
    """Write ``{stem}.jsonl`` and ``{stem}.md`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = out_dir / f"{stem}.jsonl"
    with jsonl.open("w", encoding="utf-8") as fh:
        for line in peer_lines(bench, env):
            fh.write(json.dumps(line, default=str) + "\n")
        for fig in bench.figures:
            fh.write(json.dumps({"kind": "figure", **fig.as_json(), "env": env}) + "\n")
    md = out_dir / f"{stem}.md"
    md.write_text(markdown(bench, env), encoding="utf-8")
    return jsonl, md


def _fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "x" or unit == "x ideal":
        return f"{value:.3f}x"
    if abs(value) >= 100:
        return f"{value:.0f} {unit}".strip()
    return f"{value:.2f} {unit}".strip()


def targets_table(figures: list[Figure]) -> str:
    """The figures that have a target: value, target, verdict."""
    rows = ["| workload | figure | value | target | verdict | note |", "|---|---|---|---|---|---|"]
    for fig in figures:
        if fig.status == "INFO":
            continue
        rows.append(
            f"| {fig.workload} | {fig.name} | {_fmt(fig.value, fig.unit)} | {fig.target} "
            f"| **{fig.status}** | {fig.note} |"
        )
    return "\n".join(rows)


def info_table(figures: list[Figure]) -> str:
    rows = ["| workload | figure | value | note |", "|---|---|---|---|"]
    rows.extend(
        f"| {fig.workload} | {fig.name} | {_fmt(fig.value, fig.unit)} | {fig.note} |"
        for fig in figures
        if fig.status == "INFO"
    )
    return "\n".join(rows)


def validity_lines(bench: Bench) -> list[str]:
    out = []
    failed = [r for r in bench.runs if not r.accounting_ok]
    bound = sorted({(r.workload, r.variant) for r in bench.runs if r.emulator_bound})
    waiting = sorted({(r.workload, r.variant) for r in bench.runs if r.p0_waiting})
    servers = sorted({(r.workload, r.server) for r in bench.runs})
    out.append(f"- peer runs: {len(bench.runs)}; accounting failures: {len(failed)}")
    out.extend(
        f"  - {r.workload} {r.variant} {r.peer} rep {r.rep}: {'; '.join(r.problems)}"
        for r in failed
    )
    out.append("- servers: " + ", ".join(f"{w} {k}" for w, k in servers))
    if bound:
        out.append(
            "- the server was the bottleneck (CPU busy > 80% of P0 wall) in: "
            + ", ".join(f"{w} {v}" for w, v in bound)
            + ": their wall-time figures are marked INVALID"
        )
    if waiting:
        out.append(
            "- P0 was not CPU-bound (client CPU < 80% of its wall) in: "
            + ", ".join(f"{w} {v}" for w, v in waiting)
            + ": wall ratios against it (W1) are marked INVALID; elsewhere P0 is not "
            "claimed to be the limit (latency-bound workloads)"
        )
    out.extend(f"- skipped: {why}" for why in bench.skipped)
    return out


def markdown(bench: Bench, env: dict[str, Any]) -> str:
    verdicts = defaultdict(int)
    for fig in bench.figures:
        verdicts[fig.status] += 1
    summary = ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items()))
    lines = [
        f"# wesog_async benchmark results ({env['profile']} profile)",
        "",
        f"{env['date']} · Python {env['python']} · aiohttp {env['aiohttp']} · "
        f"uvloop {env['uvloop']} · orjson {env['orjson']} · cattrs {env['cattrs']} · "
        f"attrs {env['attrs']} · httpx {env['httpx'] or 'not installed'}",
        "",
        f"CPU: {env['cpu_model']} ({env['cpu_count']} cores; server pinned to core "
        f"{env['cores'].get('emulator')}, harness to {env['cores'].get('harness')}) · "
        f"{env['platform']}",
        "",
        f"wesog_async {env['wesog_async']} at commit {env.get('commit') or 'unknown'} · "
        f"workloads {', '.join(env.get('workloads', []))} · wall time "
        f"{env.get('elapsed_s', 0) / 60:.1f} min (budget {env.get('budget_s', 0):.0f} s)",
        "",
        f"Figures: {summary}. Every ratio is taken repetition by repetition between peers "
        "run interleaved in the same invocation, then the median.",
        "",
        "## Scaled from BENCH.md",
        "",
        *(f"- {line}" for line in env.get("deviations") or ["nothing: BENCH.md's parameters"]),
        "",
        "## Validity",
        "",
        *validity_lines(bench),
        "",
        "## Targets",
        "",
        targets_table(bench.figures),
        "",
        "## Other figures",
        "",
        info_table(bench.figures),
        "",
    ]
    return "\n".join(lines)
