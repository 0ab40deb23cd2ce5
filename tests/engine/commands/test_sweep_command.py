"""`llmlab sweep --parallel 2` from a shell: both members train at once as processes of their own,
each tagged with its overrides; run again, both are skipped; `llmlab compare --sweep` names the
setting that differs; a bad value is refused before anything trains."""

from __future__ import annotations

from engine.cli import main
from engine.project import load_project
from engine.project.compare import run_config
from engine.project.runs import list_runs, run_state
from engine.project.sweeps import SWEEPS_DIR
from tests.tiny_project import make_project

SWEEP = ["--stage", "pretrain", "--grid", "model.positional_encoding=rope,alibi", "--set", "pretrain.steps=4"]


def test_parallel_sweep_then_skip_then_compare(tmp_path, capsys):
    project = make_project(tmp_path / "p", eval_every=2)
    assert main(["sweep", str(project), *SWEEP, "--parallel", "2"]) == 0
    runs = list_runs(load_project(project))
    assert [run_state(r)["state"] for r in runs] == ["completed", "completed"]
    assert sorted(run_config(r)["model.positional_encoding"] for r in runs) == ["alibi", "rope"]
    capsys.readouterr()
    assert main(["sweep", str(project), *SWEEP]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped (completed") == 2 and out.count(" completed\n") == 2
    (folder,) = (project / SWEEPS_DIR).iterdir()
    assert main(["compare", "--sweep", str(folder)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split()[0] == "model.positional_encoding"


def test_a_bad_grid_value_is_refused_before_training(tmp_path, capsys):
    project = make_project(tmp_path / "p")
    assert main(["sweep", str(project), "--stage", "pretrain", "--grid", "model.positional_encoding=rope,bogus"]) == 2
    assert "model.positional_encoding: must be one of" in capsys.readouterr().err
    assert list_runs(load_project(project)) == []
