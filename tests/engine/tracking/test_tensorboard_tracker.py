"""TensorBoard: the event file in the run folder holds the run's train and eval losses at their steps."""

from __future__ import annotations

import pytest

from tests.engine.tracking.helpers import measured, tracked_run

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def test_the_event_file_holds_the_runs_losses(tmp_path):
    run_dir, events = tracked_run(tmp_path, "tensorboard")
    assert next(e for e in events if e["type"] != "phase")["type"] == "started"  # run_state reads total_steps there
    board = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"))
    board.Reload()
    assert {"train/loss", "train/lr", "train/grad_norm", "eval/loss", "eval/bpb"} <= set(board.Tags()["scalars"])
    checked = (("train/loss", "metrics", "loss"), ("eval/loss", "eval", "loss"), ("train/lr", "metrics", "lr"))
    for tag, kind, key in checked:
        written = [(s.step, s.value) for s in board.Scalars(tag)]
        expected = measured(events, kind, key)
        assert [step for step, _ in written] == [step for step, _ in expected] and len(expected) > 1
        assert [value for _, value in written] == pytest.approx([value for _, value in expected], rel=1e-6)
