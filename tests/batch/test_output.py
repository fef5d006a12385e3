"""The output file: one write per record, a trailing partial line dropped on resume, failed records dropped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmkit.batch.output import IdSet, ResultWriter, drop_failed, encode, scan
from llmkit.errors import ConfigurationError


def test_each_record_is_one_write_of_a_full_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[bytes] = []
    real_write = os.write

    def spy(fd: int, data: bytes | memoryview) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    path = tmp_path / "out.jsonl"
    with ResultWriter(path, fsync="always") as writer:
        monkeypatch.setattr(os, "write", spy)
        writer.write({"custom_id": "a", "error": None, "text": "é\nnewline inside"})
        writer.write({"custom_id": "b", "error": None})
    monkeypatch.undo()
    assert len(writes) == 2
    assert all(w.endswith(b"\n") and w.count(b"\n") == 1 for w in writes)
    assert path.read_bytes() == b"".join(writes)
    assert json.loads(writes[0])["text"] == "é\nnewline inside"


def test_scan_truncates_a_partial_line_and_collects_ids(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    complete = encode({"custom_id": "a", "error": None}) + encode({"custom_id": "b", "error": {"type": "X"}})
    path.write_bytes(complete + b'{"custom_id": "c", "err')
    state = scan(path)
    assert ("a" in state.done, "b" in state.done, len(state.done)) == (True, True, 2)
    assert (state.succeeded, state.failed, state.truncated_bytes) == (1, 1, 23)
    assert path.read_bytes() == complete
    assert scan(path).truncated_bytes == 0
    assert len(scan(tmp_path / "missing.jsonl").done) == 0


def test_scan_of_a_file_with_no_newline_empties_it(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"custom_id": "only-part')
    assert len(scan(path).done) == 0
    assert path.read_bytes() == b""


def test_scan_refuses_a_file_that_is_not_batch_output(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text('{"custom_id": "a"}\nhello\n')
    with pytest.raises(ConfigurationError, match="line 2 is not a batch record"):
        scan(path)


def test_drop_failed_rewrites_without_error_records(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    records = [{"custom_id": "a", "error": None}, {"custom_id": "b", "error": {"type": "X"}}]
    path.write_bytes(b"".join(encode(r) for r in records))
    assert drop_failed(path) == 1
    assert ("a" in scan(path).done, len(scan(path).done)) == (True, 1)
    assert not (tmp_path / "out.jsonl.rewrite").exists()


def test_writer_refuses_an_unknown_fsync_policy(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="fsync"):
        ResultWriter(tmp_path / "x.jsonl", fsync="sometimes")  # type: ignore[arg-type]


def test_id_set_holds_every_id_across_merges() -> None:
    ids = IdSet()
    for i in range(100_000):  # several merges of the recent set into the sorted array
        ids.add(f"q{i}")
        ids.add(f"q{i // 2}")  # already there: not counted twice
    assert len(ids) == 100_000
    assert all(f"q{i}" in ids for i in range(100_000))
    assert not any(f"r{i}" in ids for i in range(100_000))
    assert 1 not in ids
