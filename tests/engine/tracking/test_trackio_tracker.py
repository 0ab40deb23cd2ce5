"""Trackio, local: its project database holds the run's train and eval losses at their steps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.engine.tracking.helpers import measured, tracked_run

trackio_utils = pytest.importorskip("trackio.utils")


def test_the_trackio_project_holds_the_runs_losses(tmp_path):
    from trackio.sqlite_storage import SQLiteStorage

    assert Path(os.environ["TRACKIO_DIR"]) == trackio_utils.TRACKIO_DIR  # set by this folder's conftest
    run_dir, events = tracked_run(tmp_path, "trackio")
    assert (trackio_utils.TRACKIO_DIR / "p.db").is_file()
    logs = SQLiteStorage.get_logs("p", run_dir.name)
    for kind, name in (("metrics", "train/loss"), ("eval", "eval/loss")):
        written = [(row["step"], row[name]) for row in logs if name in row]
        expected = measured(events, kind, "loss")
        assert [s for s, _ in written] == [s for s, _ in expected] and len(expected) > 1
        assert [v for _, v in written] == pytest.approx([v for _, v in expected])
