"""W5 child: run one bulk peer in a fresh process and report its peak RSS.

``python -m benchmarks.memchild PEER N URL API_KEY`` prints one JSON line:
``rss_baseline`` (after imports, before the run), ``rss_peak`` (the larger of
the RSS sampled every 5 ms and the kernel's high-water mark ``VmHWM``),
``rss_growth``, ``vm_hwm_start`` (``VmHWM`` before the run: the validity check),
wall and CPU seconds, and the peer's record counts.
"""

from __future__ import annotations

import json
import sys

from benchmarks.harness import RssSampler, run_loop, timed
from benchmarks.peers import PEERS, Job, PeerResult


def vm_hwm() -> int:
    """Peak resident set size of this process (``VmHWM``), in bytes."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str]) -> int:
    peer, n, url, api_key = argv[0], int(argv[1]), argv[2], argv[3]
    spec = PEERS[peer]
    job = Job("bulk", url, api_key, n, batch_size=1000, in_flight=16, max_pending_ops=16)
    out: dict[str, object] = {"peer": peer, "n": n}
    # The high-water mark before the run: a fresh process's (execve starts a new
    # address space), close to the baseline RSS. The harness checks it: a value
    # near the harness's own size would mean the mark was inherited.
    hwm_start = vm_hwm()
    with RssSampler() as sampler, timed() as t:
        try:
            result: PeerResult = run_loop(lambda: spec.run(job), use_uvloop=spec.uvloop)
        except Exception as exc:
            result = PeerResult(error=f"{type(exc).__name__}: {exc}")
    # The kernel's high-water mark of this process's memory (VmHWM) covers
    # anything the sampler missed. Not ru_maxrss: Linux carries it across
    # execve, so it would report the (much larger) harness that spawned us.
    peak = max(sampler.peak, vm_hwm())
    out.update(
        rss_baseline=sampler.baseline,
        rss_peak=peak,
        rss_growth=peak - sampler.baseline,
        vm_hwm_start=hwm_start,
        rss_sampled_peak=sampler.peak,
        wall=t["wall"],
        cpu=t["cpu"],
        good=result.records_good,
        bad=result.records_bad,
        unknown=result.records_unknown,
        error=result.error,
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
