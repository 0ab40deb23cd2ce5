"""Checkpoints: RNG round trips, retention, trainer state that loads with weights_only."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from engine.checkpoints import load_trainer_state, prune_checkpoints, rng_state, set_rng_state
from engine.project.layout import TRAINER_STATE, step_name


def draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    draws()
    torch.save({"rng": rng_state()}, tmp_path / TRAINER_STATE)
    expected = draws()
    draws()  # move every generator on
    set_rng_state(load_trainer_state(tmp_path)["rng"])
    assert draws() == expected


def test_optimizer_state_loads_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    torch.save({"optimizer": optimizer.state_dict(), "step": 1}, tmp_path / TRAINER_STATE)
    state = load_trainer_state(tmp_path)
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    fresh.load_state_dict(state["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


def test_a_state_holding_code_is_refused(tmp_path):
    torch.save({"danger": random.Random}, tmp_path / TRAINER_STATE)
    with pytest.raises(Exception, match="Weights only load failed"):
        load_trainer_state(tmp_path)


@pytest.mark.parametrize(("keep_last", "left"), [(2, [6, 8]), (1, [8]), (0, [2, 4, 6, 8])])
def test_prune_keeps_the_newest_step_directories_and_final(tmp_path, keep_last, left):
    for step in (2, 4, 6, 8):
        (tmp_path / step_name(step)).mkdir()
    (tmp_path / "final").mkdir()
    prune_checkpoints(tmp_path, keep_last)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([step_name(s) for s in left] + ["final"])
