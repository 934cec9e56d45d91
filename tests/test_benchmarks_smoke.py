"""Smoke tests of the benchmark package's pure parts (the benchmark itself runs in
CI as ``python -m benchmarks --quick --check``)."""

from __future__ import annotations

import math

import pytest

from benchmarks.cli import parse_args
from benchmarks.peers import PEERS
from benchmarks.peers.base import FIXED_SCHEDULE, PeerResult, chunks, fixed_delay, records
from benchmarks.runner import RunRecord, check
from benchmarks.stats import median, pair_diffs, pair_ratios, percentile
from benchmarks.workloads import FULL, QUICK, W6_SPEC, WORKLOADS, hwm_is_fresh
from wesog_async.emulator.faults import parse_spec


def test_stats_helpers() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert math.isnan(median([]))
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    assert pair_ratios([2.0, 3.0], [1.0, 0.0]) == [2.0]
    assert pair_diffs([2.0, 3.0], [1.0, 1.0]) == [1.0, 2.0]


def test_records_are_streamed_and_chunked() -> None:
    gen = records(2500, "t")
    assert not isinstance(gen, list)
    batches = list(chunks(gen, 1000))
    assert [len(b) for b in batches] == [1000, 1000, 500]
    assert len({r["id"] for b in batches for r in b}) == 2500


def test_fixed_schedule_is_bounded() -> None:
    assert fixed_delay(0) == FIXED_SCHEDULE[0]
    assert fixed_delay(10_000) == FIXED_SCHEDULE[-1]


def test_profiles_and_peers() -> None:
    assert set(WORKLOADS) == {f"W{i}" for i in range(1, 8)}
    assert FULL.reps >= 5
    assert FULL.w1_records == 100_000
    assert FULL.w5_sizes == (100_000, 1_000_000)
    assert QUICK.w1_records < FULL.w1_records
    assert {"P0", "P0-oracle", "P1", "P1-uvloop", "P2", "P3"} <= set(PEERS)


def test_profile_deviations_name_what_is_scaled() -> None:
    assert FULL.reps >= 5 and FULL.secondary_reps >= 3
    notes = " ".join(FULL.deviations())
    assert "W3 concurrent tasks (timing runs): 5,000" in notes
    assert "W4 operations" not in notes  # W4 keeps 1k operations
    assert QUICK.with_reps(2).secondary_reps == 2
    assert "1 repetition" in " ".join(QUICK.deviations())


def test_w5_high_water_mark_must_be_the_childs_own() -> None:
    assert hwm_is_fresh({"vm_hwm_start": 42 << 20, "rss_baseline": 40 << 20})
    assert not hwm_is_fresh({"vm_hwm_start": 436 << 20, "rss_baseline": 40 << 20})


def test_w6_spec_parses() -> None:
    rules, scripts = parse_spec(W6_SPEC)
    assert {r.kind for r in rules} == {"status", "reset_after", "malformed_json"}
    assert not scripts


@pytest.mark.parametrize(
    ("stats", "faults", "result", "problem"),
    [
        ({"items_applied": 10, "images_stored": 10, "duplicate_applies": 0}, False, {}, None),
        ({"items_applied": 9, "images_stored": 9}, False, {}, "applied 9"),
        ({"items_applied": 11, "images_stored": 10, "duplicate_applies": 1}, False, {}, "dupl"),
        (
            {"items_applied": 11, "images_stored": 10, "duplicate_applies": 1},
            True,
            {"records_resent": 1},
            None,
        ),
        ({"items_applied": 11, "images_stored": 10, "duplicate_applies": 1}, True, {}, "resent"),
        ({"items_applied": 10, "images_stored": 9, "duplicate_applies": 0}, True, {}, "stored"),
        ({"items_applied": 10, "images_stored": 10}, False, {"records_good": 9}, "lost"),
        ({}, False, {"error": "boom"}, "did not complete"),
    ],
)
def test_accounting_check(
    stats: dict[str, int], faults: bool, result: dict[str, object], problem: str | None
) -> None:
    peer = PeerResult(records_sent=10, records_good=10)
    for key, value in result.items():
        setattr(peer, key, value)
    run = RunRecord("W1", "v", "P1", 0, 10, faults=faults, result=peer, emulator=stats)
    check(run)
    if problem is None:
        assert run.problems == []
    else:
        assert any(problem in p for p in run.problems)


def test_cli_arguments() -> None:
    args = parse_args(["--quick", "--check", "--workload", "W1,W4"])
    assert args.quick and args.check
    assert args.workload == "W1,W4"
