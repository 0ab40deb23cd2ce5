"""Resuming a run (engine/project/resume.py, through engine/setup.py and `llmlab run`): never silently different.
A changed model or tokenizer is refused field by field; training settings that change are applied
and recorded; a completed run continues only with more steps, keeping its old final as a step."""

from __future__ import annotations

import json
import tomllib

from engine.checkpoints import load_trainer_state
from engine.cli import main
from engine.events import read_events
from engine.project.layout import METRICS_FILE, RESUMES_FILE
from tests.tiny_project import make_project


def _run(project, *sets: str, resume: bool = False) -> int:
    args = ["run", str(project), "--stage", "pretrain", *(f"--set={s}" for s in sets)]
    return main(args + (["--resume"] if resume else []))


def test_a_resume_refuses_a_changed_model_one_line_each_and_applies_training_changes(tmp_path, capsys):
    project = make_project(tmp_path / "p", steps=6, eval_every=0, save_every=2)
    assert _run(project, "pretrain.steps=4") == 0  # completed at step 4
    [run] = (project / "runs").iterdir()
    capsys.readouterr()
    assert _run(project, "pretrain.steps=8", "model.n_layers=6", "model.d_model=128", resume=True) == 2
    assert capsys.readouterr().err.splitlines() == [
        "model.d_model: the run was trained with 32; a resume cannot change it (now 128): "
        "start a new run instead, or set it back",
        "model.n_layers: the run was trained with 2; a resume cannot change it (now 6): "
        "start a new run instead, or set it back",
    ]
    assert (run / "final").is_dir() and not (run / RESUMES_FILE).exists()  # nothing was touched

    assert _run(project, "pretrain.steps=8", "pretrain.lr=1e-3", resume=True) == 0
    [line] = [json.loads(text) for text in (run / RESUMES_FILE).read_text().splitlines()]
    assert line["step"] == 4
    assert line["changes"] == {"pretrain.steps": [4, 8], "pretrain.lr": [0.003, 0.001]}
    trained = tomllib.loads((run / "project.toml").read_text())["pretrain"]
    assert (trained["steps"], trained["lr"]) == (8, 1e-3)  # the run folder says what it trained
    assert (run / "step-000004").is_dir()  # the old final, kept as the checkpoint of its step
    assert load_trainer_state(run / "final")["step"] == 8
    started = [e for e in read_events(run / METRICS_FILE) if e["type"] == "started"]
    assert [(e["start_step"], e["total_steps"]) for e in started] == [(0, 4), (4, 8)]


def test_continuing_a_completed_run_needs_more_steps(tmp_path, capsys):
    project = make_project(tmp_path / "p", steps=3, eval_every=0)
    assert _run(project) == 0
    [run] = (project / "runs").iterdir()
    capsys.readouterr()
    assert _run(project, resume=True) == 2
    assert capsys.readouterr().err == (
        f"pretrain.steps: {run.name} completed all 3 steps; continuing it needs more (e.g. --set pretrain.steps=6)\n"
    )
    assert (run / "final").is_dir() and not (run / "step-000003").exists()


def test_resume_names_a_run_folder_and_refuses_one_of_another_stage(tmp_path, capsys):
    project = make_project(tmp_path / "p", steps=4, eval_every=0, save_every=2)
    assert _run(project, "pretrain.steps=2") == 0
    assert _run(project, "pretrain.steps=2") == 0
    first, second = sorted((project / "runs").iterdir())
    assert main(["run", str(project), "--stage", "pretrain", "--resume", str(first)]) == 0
    assert load_trainer_state(first / "final")["step"] == 4
    assert load_trainer_state(second / "final")["step"] == 2  # the newest run was left alone
    capsys.readouterr()
    assert main(["run", str(project), "--stage", "sft", "--resume", str(first)]) == 2
    assert capsys.readouterr().err == f"--resume: {first.name} is not a sft run (its stage: pretrain)\n"
