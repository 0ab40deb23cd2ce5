"""Run directories: unique names, ordering, checkpoints, init resolution and run state."""

from __future__ import annotations

import json
import os

import pytest

from engine.project import Project, runs
from engine.project.problems import LLMLabError
from engine.project.run_lock import RunLock
from engine.project.runs import (
    checkpoints,
    create_run_dir,
    latest_checkpoint,
    latest_run,
    list_runs,
    resolve_init,
    run_stage,
    run_state,
)


@pytest.fixture
def project(tmp_path):
    return Project(root=tmp_path)


@pytest.fixture
def frozen_clock(monkeypatch):
    monkeypatch.setattr(runs.time, "strftime", lambda fmt: "20250102-030405")


def test_run_dirs_are_unique_within_one_second(project, frozen_clock):
    made = [create_run_dir(project, "pretrain") for _ in range(11)]
    assert [p.name for p in made[:3]] == [
        "pretrain-20250102-030405",
        "pretrain-20250102-030405-2",
        "pretrain-20250102-030405-3",
    ]
    assert len(set(made)) == 11 and all(p.is_dir() and not any(p.iterdir()) for p in made)
    assert list_runs(project) == made  # -10 and -11 sort after -9
    assert latest_run(project, "pretrain") == made[-1]
    assert run_stage(made[0]) == "pretrain"


def test_unknown_stage_is_refused(project):
    with pytest.raises(LLMLabError, match="stage: must be one of"):
        create_run_dir(project, "rlhf")


def test_list_runs_by_stage_and_ignores_strangers(project):
    assert list_runs(project) == [] and latest_run(project, "sft") is None
    base = project.root / "runs"
    for name in ("sft-20250101-000000", "pretrain-20250101-000001", "pretrain-20241231-235959", "notes", ".tmp"):
        (base / name).mkdir(parents=True)
    (base / "sft-20250101-000009").write_text("a file, not a run")
    assert [p.name for p in list_runs(project)] == [
        "pretrain-20241231-235959",
        "sft-20250101-000000",
        "pretrain-20250101-000001",
    ]
    assert [p.name for p in list_runs(project, "pretrain")] == ["pretrain-20241231-235959", "pretrain-20250101-000001"]


def test_checkpoints_in_step_order_then_final(tmp_path):
    for name in ("step-000200", "step-001000", "step-000010", "final", ".step-000300.tmp", "logs"):
        (tmp_path / name).mkdir()
    (tmp_path / "step-000500").write_text("not a directory")
    assert [p.name for p in checkpoints(tmp_path)] == ["step-000010", "step-000200", "step-001000", "final"]
    assert latest_checkpoint(tmp_path) == tmp_path / "final"
    (tmp_path / "final").rmdir()
    assert latest_checkpoint(tmp_path) == tmp_path / "step-001000"
    assert checkpoints(tmp_path / "missing") == [] and latest_checkpoint(tmp_path / "missing") is None


def test_resolve_init_by_stage_takes_the_newest_finished_run(project):
    base = project.root / "runs"
    for name in (
        "pretrain-20250101-000000/final",
        "pretrain-20250102-000000/final",
        "pretrain-20250103-000000/step-000100",
    ):
        (base / name).mkdir(parents=True)
    assert resolve_init(project, "pretrain") == base / "pretrain-20250102-000000" / "final"
    with pytest.raises(LLMLabError) as error:
        resolve_init(project, "sft", field="dpo.init")
    assert error.value.lines == [
        "dpo.init: no finished sft run yet (no runs/sft-*/final); "
        "run the sft stage first, or set dpo.init to a model directory"
    ]


def test_resolve_init_by_path(project, tmp_path_factory):
    (project.root / "models" / "base").mkdir(parents=True)
    (project.root / "models" / "base" / "config.json").write_text("{}")
    assert resolve_init(project, "models/base") == project.root / "models" / "base"
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "adapter_config.json").write_text("{}")
    assert resolve_init(project, str(elsewhere)) == elsewhere
    (project.root / "notes").mkdir()
    (project.root / "notes" / "readme.txt").write_text("not a model")
    with pytest.raises(LLMLabError) as error:  # blamed on the init, not on tokenizer.source
        resolve_init(project, "notes", field="sft.init")
    assert error.value.lines == [
        f"sft.init: {project.root / 'notes'} is not a model directory (no config.json or adapter_config.json)"
    ]
    with pytest.raises(LLMLabError) as error:
        resolve_init(project, "models/nope", field="sft.init")
    assert error.value.lines == [
        f"sft.init: 'models/nope' is neither a stage (pretrain, sft, dpo, ppo, grpo) "
        f"nor an existing model directory ({project.root / 'models' / 'nope'})"
    ]


def write_events(run_dir, events, tail: str = ""):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events) + tail)


STARTED = {"type": "started", "time": 1.0, "total_steps": 100}


@pytest.mark.parametrize(
    "last,state",
    [
        ({"type": "finished", "time": 9.0, "status": "completed", "report": {}}, "completed"),
        ({"type": "finished", "time": 9.0, "status": "stopped", "report": {}}, "stopped"),
        ({"type": "finished", "time": 9.0, "status": "diverged", "report": {}, "message": "nan"}, "diverged"),
        ({"type": "error", "time": 9.0, "message": "boom", "traceback": "..."}, "failed"),
        ({"type": "sample", "time": 9.0, "step": 20, "samples": []}, "died"),  # no end, and nobody holds the lock
    ],
)
def test_run_state_from_the_last_events(tmp_path, last, state):
    events = [
        STARTED,
        {"type": "metrics", "time": 2.0, "step": 10, "loss": 3.0},
        {"type": "eval", "time": 3.0, "step": 10, "loss": 3.5},
        {"type": "metrics", "time": 4.0, "step": 20, "loss": 2.0},
    ]
    write_events(tmp_path, events + [last], tail='{"type": "metr')  # a line cut short by a crash
    got = run_state(tmp_path)
    assert (got["state"], got["step"], got["total_steps"], got["loss"], got["eval_loss"], got["updated"]) == (
        state,
        20,
        100,
        2.0,
        3.5,
        9.0,
    )
    assert got["message"] == {"failed": "boom", "diverged": "nan"}.get(state)


def test_a_run_whose_lock_is_held_is_running_and_names_its_process(tmp_path):
    write_events(tmp_path, [STARTED, {"type": "metrics", "time": 4.0, "step": 51, "loss": 1.5}])
    with RunLock(tmp_path):
        got = run_state(tmp_path)
        assert (got["state"], got["pid"]) == ("running", os.getpid())
    assert run_state(tmp_path)["state"] == "died"


def test_a_resumed_run_is_running_again(tmp_path):
    write_events(
        tmp_path,
        [
            STARTED,
            {"type": "finished", "time": 2.0, "status": "stopped", "report": {}},
            {**STARTED, "time": 3.0},
            {"type": "metrics", "time": 4.0, "step": 51, "loss": 1.5},
        ],
    )
    with RunLock(tmp_path):
        assert run_state(tmp_path)["state"] == "running"
    assert run_state(tmp_path)["state"] == "died"


def test_the_resume_point_is_the_newest_checkpoint_with_a_trainer_state(tmp_path):
    for name in ("step-000010", "step-000020", "final"):
        (tmp_path / name).mkdir()
    (tmp_path / "step-000010" / "trainer_state.pt").touch()
    assert run_state(tmp_path)["checkpoint"] == tmp_path / "step-000010"
    (tmp_path / "final" / "trainer_state.pt").touch()
    assert run_state(tmp_path)["checkpoint"] == tmp_path / "final"


def test_run_state_reads_only_the_tail_of_a_long_log(tmp_path):
    metrics = [{"type": "metrics", "time": float(i), "step": i, "loss": 1.0 / (i + 1)} for i in range(5000)]
    write_events(tmp_path, [STARTED] + metrics)
    assert (tmp_path / "metrics.jsonl").stat().st_size > 4 * runs._TAIL_BYTES
    got = run_state(tmp_path)
    assert (got["state"], got["step"], got["total_steps"]) == ("died", 4999, 100)


def test_run_state_of_an_empty_run(tmp_path):
    assert run_state(tmp_path) == {
        "state": "died",
        "step": None,
        "total_steps": None,
        "loss": None,
        "eval_loss": None,
        "updated": None,
        "message": None,
        "pid": None,
        "checkpoint": None,
    }
