"""Sweep grids from the command line: values split outside brackets, malformed options refused by
name, every combination, and the same sweep given twice has the same id."""

from __future__ import annotations

import json

import pytest

from engine.project.problems import LLMLabError
from engine.project.sweeps import combinations, parse_grid, sweep_id


def test_grid_values_and_combinations():
    grid = parse_grid(["model.positional_encoding=rope,alibi", "pretrain.optimizer.betas=[0.9, 0.95],[0.9, 0.99]"])
    assert grid[1] == ("pretrain.optimizer.betas", ["[0.9, 0.95]", "[0.9, 0.99]"])
    assert combinations(grid)[1] == ["model.positional_encoding=rope", "pretrain.optimizer.betas=[0.9, 0.99]"]
    assert len(combinations(grid)) == 4
    assert sweep_id("pretrain", grid, []) == sweep_id(
        "pretrain", parse_grid([f"{k}={','.join(v)}" for k, v in grid]), []
    )
    assert sweep_id("pretrain", grid, []) != sweep_id("pretrain", grid, ["pretrain.steps=5"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([], "--grid: a sweep needs at least one"),
        (["pretrain.lr"], "expected KEY=VALUE,VALUE"),
        (["pretrain.lr=1e-3,"], "no empty value"),
        (["pretrain.lr=1e-3", "pretrain.lr=3e-3"], "pretrain.lr is given twice"),
        (["pretrain.lr=1e-3,0.001"], "pretrain.lr: a value is listed twice"),
    ],
)
def test_bad_grids_are_refused(options, message):
    with pytest.raises(LLMLabError, match=message):
        parse_grid(options)


def test_the_plan_resumes_a_died_member_with_a_checkpoint_and_restarts_one_without(tmp_path):
    from engine.project import load_project
    from engine.project.layout import TRAINER_STATE
    from engine.project.sweeps import Sweep
    from tests.tiny_project import make_project

    project = load_project(make_project(tmp_path / "p"))
    sweep = Sweep(project, "pretrain", parse_grid(["pretrain.lr=1e-3,2e-3,3e-3"]))
    ends = [None, None, {"type": "finished", "time": 3.0, "status": "completed", "report": {}}]
    for n, (overrides, end) in enumerate(zip(combinations(sweep.grid), ends)):
        run = project.root / f"runs/pretrain-20260101-12000{n}"
        (run / "step-000002").mkdir(parents=True)
        if n == 0:  # killed after its step-2 checkpoint
            (run / "step-000002" / TRAINER_STATE).write_bytes(b"")
        started = {"type": "started", "time": 1.0, "total_steps": 8}
        (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in (started, end) if e))
        sweep.tag(run, overrides)
    plan = sweep.plan()
    assert [(m.action, m.state) for m in plan] == [("resume", "died"), ("new", "died"), ("skip", "completed")]
    assert plan[0].run_dir.name == "pretrain-20260101-120000"
