"""W&B offline: the run folder it writes holds the run's history (train and eval losses at their steps)."""

from __future__ import annotations

import json
import struct

import pytest

from tests.engine.tracking.helpers import measured, tracked_run

wandb_internal_pb2 = pytest.importorskip("wandb.proto.wandb_internal_pb2")

BLOCK, HEADER = 32768, 7  # a .wandb file is LevelDB's log format after a 7-byte ":W&B" header


def records(path):
    """The protobuf records of a .wandb file (wandb 0.31 ships no Python reader for it)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    offset, pieces = HEADER, b""
    while offset + HEADER <= len(data):
        room = BLOCK - offset % BLOCK
        _, length, kind = struct.unpack("<IHB", data[offset : offset + HEADER]) if room >= HEADER else (0, 0, 0)
        if kind == 0:  # the zero padding at the end of a block
            offset += room
            continue
        pieces += data[offset + HEADER : offset + HEADER + length]
        offset += HEADER + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            pieces = b""
            yield record


def test_offline_run_folder_holds_the_history(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb-dir").mkdir()
    run_dir, events = tracked_run(tmp_path, "wandb")
    (run_file,) = (tmp_path / "wandb-dir" / "wandb").glob(f"offline-run-*-p-{run_dir.name}/run-p-{run_dir.name}.wandb")
    rows, exit_codes = [], []
    for record in records(run_file):
        if record.WhichOneof("record_type") == "history":
            items = record.history.item
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
        elif record.WhichOneof("record_type") == "exit":
            exit_codes.append(record.exit.exit_code)
    for kind, key in (("metrics", "loss"), ("eval", "loss")):
        name = f"{'train' if kind == 'metrics' else 'eval'}/{key}"
        written = [(row["_step"], row[name]) for row in rows if name in row]
        expected = measured(events, kind, key)
        assert [s for s, _ in written] == [s for s, _ in expected] and len(expected) > 1
        assert [v for _, v in written] == pytest.approx([v for _, v in expected])
    assert exit_codes == [0]
