"""Checkpoints: RNG round trips, retention, trainer state that loads with weights_only."""

from __future__ import annotations

import pathlib
import random

import numpy as np
import pytest
import torch

from engine.checkpoints import load_trainer_state, prune_checkpoints, rng_state, set_rng_state
from engine.cli import main
from engine.project.layout import TRAINER_STATE, step_name
from engine.project.problems import LLMLabError
from tests.tiny_project import make_project


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


class Planted:
    """Unpickling this calls `pathlib.Path.write_text`: the code a full torch.load would run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path(self.marker).write_text, ("ran",))


@pytest.mark.parametrize("danger", ["class", "code"])
def test_a_state_holding_code_is_refused_naming_the_file(tmp_path, danger):
    marker = tmp_path / "PLANTED-CODE-RAN"
    torch.save({"step": 3, "danger": random.Random if danger == "class" else Planted(marker)}, tmp_path / TRAINER_STATE)
    with pytest.raises(LLMLabError) as caught:
        load_trainer_state(tmp_path)
    (line,) = caught.value.lines
    assert line.startswith(f"{tmp_path / TRAINER_STATE}: holds objects that are not tensors or plain Python values (")
    assert line.endswith(
        "); it is not loaded, since loading it could run code. Resume from another checkpoint or start a new run"
    )
    assert f"(torch refused {'random.Random' if danger == 'class' else 'getattr'});" in line  # the global refused
    assert "Weights only load failed" not in line and "\n" not in line
    assert not marker.exists()


def test_a_damaged_state_is_refused_naming_the_file(tmp_path):
    torch.save({"step": 3}, tmp_path / TRAINER_STATE)
    data = (tmp_path / TRAINER_STATE).read_bytes()
    (tmp_path / TRAINER_STATE).write_bytes(data[: len(data) // 2])
    with pytest.raises(LLMLabError, match=f"^{tmp_path / TRAINER_STATE}: not a trainer state torch can read "):
        load_trainer_state(tmp_path)


def test_resuming_from_a_state_holding_code_is_one_line(tmp_path, capsys):
    project = make_project(tmp_path / "p", steps=2, eval_every=0)
    assert main(["run", str(project), "--stage", "pretrain"]) == 0
    (final,) = (project / "runs").glob("pretrain-*/final")
    marker = tmp_path / "PLANTED-CODE-RAN"
    torch.save({"step": 2, "danger": Planted(marker)}, final / TRAINER_STATE)
    capsys.readouterr()
    assert main(["run", str(project), "--stage", "pretrain", "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{final / TRAINER_STATE}: holds objects that are not tensors or plain Python values" in err
    assert "Traceback" not in err and not marker.exists()


@pytest.mark.parametrize(("keep_last", "left"), [(2, [6, 8]), (1, [8]), (0, [2, 4, 6, 8])])
def test_prune_keeps_the_newest_step_directories_and_final(tmp_path, keep_last, left):
    for step in (2, 4, 6, 8):
        (tmp_path / step_name(step)).mkdir()
    (tmp_path / "final").mkdir()
    prune_checkpoints(tmp_path, keep_last)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([step_name(s) for s in left] + ["final"])
