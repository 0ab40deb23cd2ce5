"""A 2×1 sweep of the tiny project: two runs with their overrides, tagged; stopped midway, a rerun
resumes the stopped member in its own folder and starts the other; run again, it skips both."""

from __future__ import annotations

from engine.project import load_project
from engine.project.compare import run_config
from engine.project.runs import list_runs, run_state
from engine.project.sweeps import member_runs, parse_grid, sweep_runs
from engine.sweep import run_sweep
from tests.tiny_project import Recorder, StopAfter, make_project

GRID = ["pretrain.lr=1e-3,3e-3", "model.positional_encoding=alibi"]


def test_sweep_runs_stops_resumes_and_skips(tmp_path):
    project = make_project(tmp_path / "p", steps=6, eval_every=3)
    grid = parse_grid(GRID)
    first = Recorder()
    sweep, plan = run_sweep(project, "pretrain", grid, events=first, control=StopAfter(first, 2))
    assert [m.action for m in plan] == ["new", "new"]
    stopped = list_runs(load_project(project))
    assert len(stopped) == 1 and run_state(stopped[0])["state"] == "stopped"  # the sweep stopped with it

    second = Recorder()
    _, plan = run_sweep(project, "pretrain", grid, events=second)
    assert [(m.action, m.run_dir) for m in plan] == [("resume", stopped[0]), ("new", None)]
    assert [e["resumed"] for e in second.of("started")] == [True, False]
    runs = sweep_runs(sweep.folder)
    assert runs[0] == stopped[0] and [run_state(r)["state"] for r in runs] == ["completed", "completed"]
    configs = [run_config(r) for r in runs]
    assert [c["pretrain.lr"] for c in configs] == [1e-3, 3e-3]
    assert {c["model.positional_encoding"] for c in configs} == {"alibi"}
    tagged = member_runs(load_project(project), sweep.id)
    assert sorted(tagged) == [
        ("pretrain.lr=1e-3", "model.positional_encoding=alibi"),
        ("pretrain.lr=3e-3", "model.positional_encoding=alibi"),
    ]

    third = Recorder()
    _, plan = run_sweep(project, "pretrain", grid, events=third)
    assert [m.action for m in plan] == ["skip", "skip"]
    assert third.of("started") == [] and len(list_runs(load_project(project))) == 2
