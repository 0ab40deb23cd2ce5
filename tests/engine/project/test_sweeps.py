"""Sweep grids from the command line: values split outside brackets, malformed options refused by
name, every combination, and the same sweep given twice has the same id."""

from __future__ import annotations

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
