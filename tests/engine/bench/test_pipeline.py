"""`llmlab bench pipeline --fast`: the demo end to end through the real stage runs, each stage's
held-out measure moving the right way; the overrides and the table it prints."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from engine.bench import pipeline
from engine.bench.pipeline import FAST, STAGES, Measure, run_pipeline, stage_overrides, table
from engine.events import read_events
from engine.project import apply_overrides, load_project, read_toml
from engine.project.runs import list_runs

DEMO = Path(__file__).resolve().parents[3] / "projects" / "demo"


@pytest.fixture(scope="module")
def fast_result(tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the engine tests' one-thread rule, for this module-wide run
    try:
        return run_pipeline(tmp_path_factory.mktemp("pipeline"), fast=True)
    finally:
        torch.set_num_threads(threads)


def _measures(result) -> dict[tuple[str, str], Measure]:
    return {(d["stage"], d["name"]): Measure(**d) for d in result["measures"]}


def test_every_stage_ran_to_its_final_checkpoint(fast_result):
    project = load_project(fast_result["project"])
    for stage in STAGES:
        (run,) = list_runs(project, stage)
        assert (run / "final" / "config.json").is_file()
        steps = FAST[stage]["steps"]
        assert read_events(run / "metrics.jsonl")[-1]["report"]["steps"] == steps
    assert set(fast_result["seconds"]) == set(STAGES)


def test_each_held_out_measure_moves_the_right_way(fast_result):
    m = _measures(fast_result)
    pretrain = m["pretrain", "validation loss vs ln V"]
    assert pretrain.before == pytest.approx(math.log(739))  # the demo BPE's vocabulary
    assert pretrain.after < pretrain.before - 1.0
    assert m["sft", "assistant loss"].after < m["sft", "assistant loss"].before
    assert m["sft", "answers start in format"].before == 0.0  # a pretrained model does not answer in the format
    assert m["sft", "answers start in format"].after > 0.5
    assert m["dpo", "preference accuracy vs chance"].after > 0.5
    for stage in ("grpo", "ppo"):  # the fast SFT model is not yet right: RL finds the terse reply
        reward = m[stage, "reward (right + terse)"]
        assert 0.0 <= reward.before < reward.after <= 1.5  # exact match 1, a terse reply 0.5


def test_fast_overrides_are_valid_sets_of_the_stage():
    for stage in STAGES:
        sets = stage_overrides(stage, fast=True)
        assert sets[-1] == f"{stage}.sample_every=0"
        assert all(line.startswith(f"{stage}.") for line in sets)
        assert stage_overrides(stage, fast=False) == []
    data = apply_overrides(read_toml(load_project(DEMO).file), stage_overrides("pretrain", True))
    assert data["pretrain"]["steps"] == FAST["pretrain"]["steps"]


def _result() -> dict:
    return {
        "measures": [
            json.loads(json.dumps(vars(m)))
            for m in (
                Measure("sft", "assistant loss", 3.0, 0.5, False),
                Measure("sft", "answers in format", 0.0, 0.75, True),
                Measure("dpo", "preference accuracy vs chance", 0.5, 0.4, True),
            )
        ],
        "seconds": {"sft": 65.2, "dpo": 5.0},
        "total_seconds": 70.2,
    }


def test_the_table_shows_time_once_per_stage_and_the_verdicts():
    assert table(_result()).splitlines() == [
        "stage       time  held-out measure                  before   after  improved",
        "sft         1:05  assistant loss                     3.000   0.500  yes",
        "                  answers in format                  0.000   0.750  yes",
        "dpo         0:05  preference accuracy vs chance      0.500   0.400  no",
        "total       1:10",
    ]


def test_main_prints_the_table_the_machine_and_the_verdict(monkeypatch, capsys):
    monkeypatch.setattr(pipeline, "run_pipeline", lambda *args: _result())
    args = argparse.Namespace(dir=None, fast=True, device="cpu", json=False)
    assert pipeline.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3] == "total       1:10"
    assert lines[-2].startswith("cpu: ")
    assert lines[-1] == "pipeline (--fast): 1:10, every held-out measure improved: no"
