"""The one decision of what a finished status proves (pure, table tests)."""

from __future__ import annotations

from typing import Any

import pytest

from wesog_async import Operation, OperationItemError, prove
from wesog_async._outcome import map_errors

IDS = ("a", "b", "c", "d")


def op(**kw: Any) -> Operation:
    base: dict[str, Any] = {
        "num_total": 4, "num_good": 4, "num_bad": 0, "is_finished": True, "op_id": 7,
    }  # fmt: skip
    base.update(kw)
    errors = base.pop("errors", ())
    return Operation(**base, errors=tuple(OperationItemError(i, m) for i, m in errors))


def test_a_consistent_status_proves_every_record() -> None:
    proof = prove(op(), IDS, op_id=7)
    assert proof.applied == (0, 1, 2, 3) and not proof.failed and proof.proven
    assert proof.reason is None


def test_all_applied_positions_are_shared_by_size_and_not_kept_past_a_batch() -> None:
    first = prove(op(num_total=1000, num_good=1000), (), op_id=7, sent=1000)
    second = prove(op(num_total=1000, num_good=1000), (), op_id=7, sent=1000)
    assert first.applied == tuple(range(1000)) and first.applied is second.applied
    n = 10_001  # more than a request holds: built, never cached
    big = prove(op(num_total=n, num_good=n), (), op_id=7, sent=n)
    again = prove(op(num_total=n, num_good=n), (), op_id=7, sent=n)
    assert big.applied == tuple(range(n)) and big.applied is not again.applied


def test_listed_failures_are_failed_the_rest_applied() -> None:
    proof = prove(op(num_good=2, num_bad=2, errors=[(1, "x"), ("d", "y")]), IDS, op_id=7)
    assert proof.applied == (0, 2) and dict(proof.failed) == {1: "x", 3: "y"}
    assert proof.proven


@pytest.mark.parametrize(
    ("status", "reason", "failed"),
    [
        (op(is_finished=False, num_good=0), "not finished", {}),
        (op(op_id=8), "about operation 8", {}),
        (op(num_total=5, num_good=5), "counts 5 items, 4 were sent", {}),
        (op(num_good=3), "does not add up", {}),
        (op(num_good=5, num_bad=-1), "negative", {}),
        (op(num_good=1, num_bad=3, errors=[(0, "x")]), "truncated", {0: "x"}),
        (op(num_good=3, num_bad=1, errors=[(9, "x")]), "not one of the 4 sent", {}),
        (op(num_good=2, num_bad=2, errors=[(1, "x"), (1, "y")]), "listed twice", {1: "x"}),
        (op(num_good=4, num_bad=0, errors=[(1, "x")]), "1 errors listed for 0 bad", {}),
        (op(all_good=False), "all_good=False", {}),
        (op(num_good=3, num_bad=1, all_good=True, errors=[(0, "x")]), "all_good=True", {0: "x"}),
        (op(num_good=3, num_bad=1, errors=[("zz", "x")]), "not one of the 4 sent", {}),
    ],
)
def test_what_a_status_does_not_prove_is_unknown(
    status: Operation, reason: str, failed: dict[int, str]
) -> None:
    proof = prove(status, IDS, op_id=7)
    assert proof.applied == (), "nothing unproven is ever applied"
    assert dict(proof.failed) == failed
    assert set(proof.unknown) == set(range(4)) - set(failed)
    assert proof.reason is not None and reason in proof.reason


def test_no_status_is_unknown() -> None:
    proof = prove(None, IDS)
    assert proof.unknown == (0, 1, 2, 3) and not proof.proven


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (None, "not finished"),
        (op(is_finished=False, num_good=0), "not finished"),
        (op(), "counts 4 items, 0 were sent"),
        (
            op(num_good=0, num_bad=4, all_good=False, errors=[(i, "x") for i in range(4)]),
            "counts 4 items, 0 were sent",
        ),
        (op(op_id=8, num_total=0, num_good=0), "about operation 8"),
        (op(num_total=0, num_good=0, num_bad=0, errors=[(0, "x")]), "not one of the 0 sent"),
        (op(num_total=0, num_good=1), "does not add up"),
    ],
)
def test_a_write_of_no_records_is_proven_only_by_a_status_of_no_records(
    status: Operation | None, reason: str
) -> None:
    # Nothing sent leaves no position unknown, but the reason still stands:
    # a status of 4 items proves nothing about a write of none.
    proof = prove(status, [], op_id=7)
    assert proof.applied == () and proof.unknown == () and not proof.failed
    assert not proof.proven
    assert proof.reason is not None and reason in proof.reason


def test_an_empty_write_with_an_empty_status_is_proven() -> None:
    proof = prove(op(num_total=0, num_good=0), [], op_id=7)
    assert proof.proven and proof.reason is None and proof.applied == ()


def test_listed_failures_of_every_record_under_doubt_are_not_proven() -> None:
    # Every record listed failed, but the counts do not add up: no position is
    # unknown, yet the status is not proven.
    status = op(num_total=2, num_good=1, num_bad=2, errors=[(0, "x"), (1, "y")])
    proof = prove(status, ["a", "b"], op_id=7)
    assert dict(proof.failed) == {0: "x", 1: "y"} and proof.unknown == ()
    assert not proof.proven and proof.reason is not None and "does not add up" in proof.reason


def test_a_status_without_op_id_is_taken_for_the_followed_op() -> None:
    assert prove(op(op_id=None), IDS, op_id=7).proven


def test_every_position_lands_in_exactly_one_bucket() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    @given(
        st.integers(0, 6), st.integers(-1, 6), st.integers(-1, 6), st.booleans(),
        st.lists(st.tuples(st.one_of(st.integers(-1, 6), st.sampled_from(IDS)), st.just("m"))),
    )  # fmt: skip
    def check(total: int, good: int, bad: int, finished: bool, errors: list[Any]) -> None:
        status = op(num_total=total, num_good=good, num_bad=bad, is_finished=finished,
                    errors=errors)  # fmt: skip
        proof = prove(status, IDS, op_id=7)
        buckets = [*proof.applied, *proof.failed, *proof.unknown]
        assert sorted(buckets) == [0, 1, 2, 3]
        if proof.applied:
            assert finished and good == len(proof.applied) and total == 4

    check()


def test_errors_of_a_status_about_another_op_blame_no_record() -> None:
    status = op(op_id=8, num_good=3, num_bad=1, errors=[(1, "x")])
    assert [e.image_id for e in map_errors(status, IDS, op_id=7)] == [None]
    assert prove(status, IDS, op_id=7).unknown == (0, 1, 2, 3)


def test_errors_of_a_running_status_are_mapped_once_each() -> None:
    status = op(is_finished=False, num_good=0, num_bad=2, errors=[(1, "x"), ("b", "y"), (9, "z")])
    assert [e.image_id for e in map_errors(status, IDS, op_id=7)] == ["b", None, None]
    assert [e.image_id for e in map_errors(status, IDS, op_id=8)] == [None, None, None]


def test_mapped_errors_are_exactly_the_proven_failures() -> None:
    # The one mapping: what a future reports failed is what prove() says.
    from hypothesis import given
    from hypothesis import strategies as st

    @given(
        st.integers(0, 6), st.integers(-1, 6), st.integers(-1, 6), st.booleans(),
        st.sampled_from([7, 8, None]),
        st.lists(st.tuples(st.one_of(st.integers(-1, 6), st.sampled_from([*IDS, "zz"])),
                           st.sampled_from(["m", "n"]))),
    )  # fmt: skip
    def check(
        total: int, good: int, bad: int, finished: bool, op_id: int | None, errors: list[Any]
    ) -> None:
        status = op(num_total=total, num_good=good, num_bad=bad, is_finished=finished,
                    op_id=op_id, errors=errors)  # fmt: skip
        mapped = map_errors(status, IDS, op_id=7)
        assert [(e.index, e.msg) for e in mapped] == [(e.index, e.msg) for e in status.errors]
        named = [e.image_id for e in mapped if e.image_id is not None]
        assert len(named) == len(set(named)), "no record blamed twice"
        if finished:
            proof = prove(status, IDS, op_id=7)
            assert named == [IDS[p] for p in proof.failed]
            assert not set(named) & {IDS[p] for p in proof.unknown}
            assert [e.msg for e in mapped if e.image_id is not None] == list(proof.failed.values())

    check()
