"""Runs side by side from hand-written run folders: series against each axis, final measures with
bits per byte beside the losses, and only the settings that differ."""

from __future__ import annotations

import json

import pytest

from engine.project.compare import comparison, config_diff, read_run
from engine.project.problems import LLMLabError
from tests.run_folders import write_run, write_scores


@pytest.fixture
def runs(tmp_path):
    return [
        write_run(tmp_path / "runs/pretrain-20260101-120000", 1e-3, "rope", [3.0, 2.5, 2.0], 1.1),
        write_run(tmp_path / "runs/pretrain-20260101-120001", 1e-3, "alibi", [3.1, 2.7, 2.4], 1.3),
    ]


def test_series_against_step_tokens_and_time(runs):
    run = read_run(runs[0])
    assert run.state == "completed"
    assert run.series("train_loss", "step") == ([1, 2, 3], [3.0, 2.5, 2.0])
    assert run.series("train_loss", "tokens") == ([128, 256, 384], [3.0, 2.5, 2.0])
    assert run.series("train_loss", "time") == ([1.0, 2.0, 3.0], [3.0, 2.5, 2.0])
    assert run.series("eval_loss", "tokens") == ([384], [2.0])  # an eval sits at the tokens seen by then
    assert run.series("reward") == ([], [])
    with pytest.raises(LLMLabError, match="axis: 'epochs' is not one of step, tokens, time"):
        run.series("train_loss", "epochs")


def test_comparison_final_measures_and_differences(runs):
    found = comparison(runs)
    assert found["measures"][:4] == ["train_loss", "eval_loss", "bpb", "lr"]
    assert [run["final"]["bpb"] for run in found["runs"]] == [1.1, 1.3]
    assert found["differences"] == {"model.positional_encoding": ["rope", "alibi"]}


def test_bpb_listed_wherever_a_loss_is_even_without_values(tmp_path):
    run = tmp_path / "pretrain-20260101-120000"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"type": "metrics", "time": 1.0, "step": 1, "loss": 2.0}) + "\n")
    assert comparison([run])["measures"] == ["train_loss", "bpb"]


def test_config_diff_keeps_fields_absent_from_one_side():
    assert config_diff([{"a": 1, "b": 2}, {"a": 1}]) == {"b": [2, None]}


def test_a_folder_without_metrics_is_refused(tmp_path):
    with pytest.raises(LLMLabError, match="not a run folder"):
        read_run(tmp_path)


def test_the_final_models_lm_eval_scores_join_the_final_measures_last(runs):
    write_scores(runs[0], hellaswag=0.31, demo_facts=0.62)
    found = comparison(runs)
    assert found["measures"][-2:] == ["demo_facts acc", "hellaswag acc"]  # stderr left out
    assert found["runs"][0]["final"]["hellaswag acc"] == 0.31
    assert "hellaswag acc" not in found["runs"][1]["final"]
    assert read_run(runs[0]).measures() == read_run(runs[1]).measures()  # scores are no series to chart
