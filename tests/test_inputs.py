"""Record readers: JSON Lines, CSV and id lists, with line numbers for bad rows."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API_KEY
from wesog_async import WesogClient
from wesog_async.bulk import InvalidRecord, ingest_all
from wesog_async.bulk.inputs import (
    RecordSource,
    ThreadedSource,
    csv_record,
    detect_format,
    open_records,
)
from wesog_async.emulator import EmulatorConfig, EmulatorServer


@pytest.fixture
def wesog_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(api_keys=(API_KEY,), item_delay_ms=0)


JSONL = b"""{"id": "a", "src": "https://x.example/a.jpg", "keywords": ["k1"]}

{"id": "b", "src": "https://x.example/b.jpg"
{"id": "c"}
[1, 2]
{"id": "d", "src": "https://x.example/d.jpg", "nsfw": false}
"""

CSV = """id,src,title,keywords,nsfw,collections
a,https://x.example/a.jpg,Alpha,dog|cat; bird,true,
b,https://x.example/b.jpg,,,maybe,
c,,"Gamma, with comma",,no,
d,https://x.example/d.jpg,"multi
line title",,0,one;two

e,https://x.example/e.jpg,Echo,,1
f,https://x.example/f.jpg,Foxtrot,,YES,
"""


def write(tmp_path: Path, name: str, data: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return str(path)


def test_detect_format() -> None:
    assert detect_format("x.jsonl") == "jsonl"
    assert detect_format("x.NDJSON") == "jsonl"
    assert detect_format("x.csv") == "csv"
    assert detect_format("ids.txt") == "ids"
    assert detect_format("-") == "jsonl"
    assert detect_format("data.bin", "csv") == "csv"
    with pytest.raises(ValueError, match="--format"):
        detect_format("data.bin")
    with pytest.raises(ValueError, match="unknown format"):
        detect_format("x.csv", "xml")


def test_jsonl_malformed_lines_become_invalid_records_with_line_numbers(tmp_path: Path) -> None:
    with open_records(write(tmp_path, "in.jsonl", JSONL)) as source:
        assert isinstance(source, RecordSource)
        records = list(source)
        assert len(records) == 5  # the blank line is skipped
        assert records[0]["keywords"] == ["k1"]
        assert isinstance(records[1], InvalidRecord)
        assert records[1].message.startswith("line 3: malformed JSON")
        assert [source.line_of(p) for p in range(5)] == [1, 3, 4, 5, 6]


def test_csv_parsing_lists_booleans_and_empty_cells(tmp_path: Path) -> None:
    with open_records(write(tmp_path, "in.csv", CSV)) as source:
        records = list(source)
        lines = [source.line_of(p) for p in range(len(records))]
    assert records[0] == {
        "id": "a",
        "src": "https://x.example/a.jpg",
        "title": "Alpha",
        "keywords": ["dog", "cat", "bird"],
        "nsfw": True,
    }
    assert isinstance(records[1], InvalidRecord)
    assert records[1].field == "nsfw" and records[1].image_id == "b"
    assert "line 3" in records[1].message and "'maybe'" in records[1].message
    assert records[2] == {"id": "c", "title": "Gamma, with comma", "nsfw": False}
    assert records[3]["title"] == "multi\nline title"
    assert records[3]["collections"] == ["one", "two"] and records[3]["nsfw"] is False
    assert isinstance(records[4], InvalidRecord) and "expected 6 cells, got 5" in records[4].message
    assert records[5]["nsfw"] is True
    assert lines == [2, 3, 4, 5, 8, 9]


def test_csv_header_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'notes'"):
        open_records(write(tmp_path, "a.csv", "id,src,notes\n"))
    with pytest.raises(ValueError, match="computed by Wesog"):
        open_records(write(tmp_path, "b.csv", "id,src,height\n"))
    with pytest.raises(ValueError, match="needs an 'id'"):
        open_records(write(tmp_path, "c.csv", "src,title\n"))
    with pytest.raises(ValueError, match="twice"):
        open_records(write(tmp_path, "d.csv", "id,image_id,src\n"))
    with open_records(write(tmp_path, "e.csv", "image_id,src\nx,https://a.example/x\n")) as s:
        assert list(s) == [{"id": "x", "src": "https://a.example/x"}]
    with open_records(write(tmp_path, "f.csv", "")) as s:
        assert list(s) == []


def test_csv_record_helper() -> None:
    assert csv_record(["id", "categories"], ["x", " a | b ;; c "], 2) == {
        "id": "x",
        "categories": ["a", "b", "c"],
    }


def test_id_lists(tmp_path: Path) -> None:
    with open_records(write(tmp_path, "ids.txt", b"a\n\n  b  \n\xff\nc\n")) as source:
        records = list(source)
        assert records[:2] == ["a", "b"] and records[3] == "c"
        assert isinstance(records[2], InvalidRecord)
        assert source.line_of(3) == 5


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError):
        open_records("/nonexistent/in.jsonl")


def test_stdin_redirected_from_a_file_is_read_directly(tmp_path: Path) -> None:
    path = write(tmp_path, "in.jsonl", JSONL)
    with open(path, "rb") as stream:
        source = open_records("-", stdin=stream)
        assert isinstance(source, RecordSource)
        assert len(list(source)) == 5


async def test_stdin_pipe_is_read_by_a_thread() -> None:
    read_fd, write_fd = os.pipe()
    lines = b"".join(
        b'{"id": "i%d", "src": "https://x.example/%d"}\n' % (i, i) for i in range(2500)
    )

    def feed() -> None:  # more than a pipe buffer: written while being read
        with os.fdopen(write_fd, "wb") as writer:
            writer.write(lines)

    feeder = threading.Thread(target=feed)
    feeder.start()
    with os.fdopen(read_fd, "rb") as reader:
        source = open_records("-", stdin=reader)
        assert isinstance(source, ThreadedSource)
        with source:
            records = [r async for r in source]
        assert len(records) == 2500 and records[-1]["id"] == "i2499"
        assert source.line_of(10) == 11
        with pytest.raises(RuntimeError, match="once"):
            source.__aiter__()
    feeder.join()


async def test_threaded_source_passes_errors_and_stops_early() -> None:
    class Boom(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            raise OSError("device gone")

    source = ThreadedSource(RecordSource(io.BufferedReader(Boom()), "jsonl"))
    with pytest.raises(OSError, match="device gone"):
        async for _ in source:
            pass
    many = b'{"id": "x"}\n' * 10_000
    early = ThreadedSource(RecordSource(io.BytesIO(many), "jsonl"))
    async for _ in early:
        break


async def test_bad_rows_reach_the_report_with_their_line_numbers(
    wesog_emulator: EmulatorServer, client: WesogClient, tmp_path: Path
) -> None:
    with open_records(write(tmp_path, "in.csv", CSV)) as source:
        report = await ingest_all(client, source)
        lines = {source.line_of(e.position): e for e in report.invalid_items}
    assert report.applied == 3  # a, d, f
    assert sorted(lines) == [3, 4, 8]
    assert lines[3].field == "nsfw"
    assert lines[4].field == "src"  # c has no src
    assert "expected 6 cells" in lines[8].message
    with open_records(write(tmp_path, "in.jsonl", JSONL)) as source:
        report = await ingest_all(client, source)
        lines = {source.line_of(e.position): e.message for e in report.invalid_items}
    assert report.applied == 2
    assert sorted(lines) == [3, 4, 5]
    assert "malformed JSON" in lines[3]
    assert "list" in lines[5]
