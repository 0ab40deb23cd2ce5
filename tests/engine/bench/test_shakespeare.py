"""`llmlab bench shakespeare`: the recipe runs through the loop and reports its held-out losses."""

from __future__ import annotations

from pathlib import Path

import pytest

import engine.bench
from engine.bench.shakespeare import RECIPE, _EvalLosses, find_data, run_bench
from engine.project.problems import LLMLabError


def test_the_recipe_is_nanogpts_cpu_recipe():
    model, stage = RECIPE["model"], RECIPE["pretrain"]
    assert (model["n_layers"], model["n_heads"], model["d_model"], model["dropout"]) == (4, 4, 128, 0.0)
    assert (stage["seq_len"], stage["batch_size"], stage["steps"], stage["lr"], stage["warmup_steps"]) == (
        64,
        12,
        2000,
        1e-3,
        100,
    )
    assert stage["optimizer"] == {"name": "adamw", "betas": [0.9, 0.99], "weight_decay": 0.1}
    assert stage["scheduler"] == {"name": "cosine", "min_lr": 1e-4} and stage["eval_every"] == 250


def test_a_short_run_reports_its_evaluations(tmp_path):
    text = tmp_path / "tiny.txt"
    text.write_text("\n\n".join(f"FIRST CITIZEN:\nSpeak, speak. We are resolved {i}." for i in range(300)))
    sets = ["pretrain.steps=4", "pretrain.eval_every=2", "pretrain.eval_batches=1", "pretrain.batch_size=2"]
    result = run_bench(text, sets, "cpu")
    assert list(result["eval_losses"]) == [2, 4] and result["steps"] == 4
    assert result["val_loss"] == result["eval_losses"][4] and result["precision"] == "fp32"
    assert result["tokens_per_s"] > 0 and result["total_seconds"] >= result["train_seconds"]


def test_the_default_data_ships_with_the_package():
    path = find_data(None)
    assert path.is_file() and path.stat().st_size > 1_000_000
    assert "shared" not in path.parts and path.is_relative_to(Path(engine.bench.__file__).parent)
    assert path.read_text().startswith("First Citizen:")


def test_a_missing_file_is_named():
    with pytest.raises(LLMLabError, match="path: tiny Shakespeare not found .*nope.txt"):
        find_data("nope.txt")


def test_time_to_target_is_the_first_evaluation_at_or_below_it():
    seen = _EvalLosses()
    for ev in [
        {"type": "started", "time": 100.0, "precision": "fp32"},
        {"type": "eval", "time": 110.0, "step": 250, "loss": 2.0},
        {"type": "eval", "time": 130.0, "step": 500, "loss": 1.89},
        {"type": "eval", "time": 150.0, "step": 750, "loss": 1.7},
    ]:
        seen.put(ev)
    assert seen.seconds_to_target == 30.0 and seen.losses == {250: 2.0, 500: 1.89, 750: 1.7}
