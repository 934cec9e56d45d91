"""Batch keeps its encoded records in one buffer: the body, the parts and the
decoded records are exactly what the list-of-parts form gave."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from wesog_async.bulk.batcher import Batch

records = st.lists(
    st.fixed_dictionaries(
        {"id": st.text(min_size=1, max_size=8), "src": st.text(max_size=12)},
        optional={"tags": st.lists(st.text(max_size=5), max_size=3)},
    ),
    max_size=20,
)


@given(records)
def test_body_parts_and_records_match_the_joined_form(recs: list[dict[str, object]]) -> None:
    parts = [orjson.dumps(r) for r in recs]
    batch = Batch(0)
    for part in parts:
        batch.append(part)
    assert batch.body() == b"[" + b",".join(parts) + b"]"
    assert batch.body() == batch.body()  # body() leaves the buffer as it was
    assert batch.parts == parts
    assert [batch.record_at(i) for i in range(len(recs))] == recs
    assert batch.record_at(len(recs)) is None
    if parts:
        batch.append(parts[0])
        assert batch.body() == b"[" + b",".join([*parts, parts[0]]) + b"]"


def test_parts_setter_replaces_the_records() -> None:
    batch = Batch(0)
    batch.append(b'{"id":"x"}')
    batch.parts = [b'{"id":"a"}', b'{"id":"b"}']
    assert batch.body() == b'[{"id":"a"},{"id":"b"}]'
    assert batch.record_at(1) == {"id": "b"}
    batch.parts = []
    assert batch.body() == b"[]" and batch.parts == []
