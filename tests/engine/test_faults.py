"""Fault injection with real processes on a tiny model: whatever happens to a run, nothing is lost
and its state tells the truth.

- SIGKILL at random points of training and in the middle of checkpoint writes (20 seeds): the
  run is "died", its last checkpoint loads, the stale temporary folder goes away on resume, and
  the resumed run has exactly the losses of an unbroken one.
- Two resumes at once: the second is refused, naming the first's pid.
- A full disk (a small tmpfs when this machine lets the test mount one, else ENOSPC injected into
  the checkpoint writes): one line, nothing corrupt, and the run resumes once there is space.
- lr = 1e8: the run stops as "diverged" with exit 3, and the next stage refuses to start from it.

Children come from a forkserver that imported the engine once, so each is a real process
(SIGKILL-able, its own lock) that starts in milliseconds.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import worker
from engine.checkpoints import load_trainer_state
from engine.cli import main
from engine.events import read_events
from engine.factory import load_model
from engine.project.layout import METRICS_FILE
from engine.project.problems import LLMLabError
from engine.project.run_lock import holder
from engine.project.runs import resume_point, run_state
from tests.tiny_project import make_project

STEPS = 10
FIELDS = dict(steps=STEPS, eval_every=0, sample_every=0, save_every=1, keep_last=0, lr=3e-3)
SEEDS = range(20)


@pytest.fixture(scope="module")
def forkserver():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["engine.setup", "tests.engine.test_faults"])
    return context


def _train(project: str, resume: bool) -> None:
    """A child: train the tiny project's pretraining (or resume it); exit 1 on any error."""
    try:
        worker.run(project, "pretrain", resume=resume)
    except BaseException:
        os._exit(1)


def _losses(run: Path, session: int = -1) -> dict[int, float]:
    """step → loss of one training session of a run (the last by default)."""
    events, sessions = read_events(run / METRICS_FILE), []
    for event in events:
        if event["type"] == "started":
            sessions.append({})
        elif event["type"] == "metrics":
            sessions[-1][event["step"]] = event["loss"]
    return sessions[session]


def _wait_until_free(run: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while holder(run) is not None and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory, forkserver):
    """The tiny project (a template to copy) and its run trained without a break."""
    template = make_project(tmp_path_factory.mktemp("faults") / "template", **FIELDS)
    project = tmp_path_factory.mktemp("unbroken") / "p"
    shutil.copytree(template, project)
    child = forkserver.Process(target=_train, args=(str(project), False))
    child.start()
    child.join(120)
    [run] = (project / "runs").iterdir()
    assert run_state(run)["state"] == "completed"
    return template, _losses(run)


def _kill_somewhere(child, run_parent: Path, rng: random.Random, in_a_write: bool) -> str:
    """SIGKILL the child after a random number of checkpoints, in the middle of writing one when
    `in_a_write` (a temporary checkpoint folder exists), else at a random moment between."""
    target = rng.randint(1, STEPS - 4)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.is_alive():
        runs = list(run_parent.glob("pretrain-*")) if run_parent.is_dir() else []
        if runs:
            names = [p.name for p in runs[0].iterdir()]
            written = sum(name.startswith("step-") for name in names)
            writing = any(name.startswith(".step-") and name.endswith(".tmp") for name in names)
            if written >= target and (writing or not in_a_write):
                if not in_a_write:
                    time.sleep(rng.uniform(0, 0.01))
                os.kill(child.pid, signal.SIGKILL)
                return "mid-write" if writing else "between"
        time.sleep(0.0005)
    raise AssertionError("the child never reached the point to kill it at")


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_anywhere_leaves_a_died_run_that_resumes_to_the_unbroken_losses(seed, tmp_path, forkserver, unbroken):
    template, expected = unbroken
    project = tmp_path / "p"
    shutil.copytree(template, project)
    rng = random.Random(seed)
    child = forkserver.Process(target=_train, args=(str(project), False))
    child.start()
    _kill_somewhere(child, project / "runs", rng, in_a_write=seed % 2 == 0)
    child.join(30)
    [run] = (project / "runs").iterdir()
    _wait_until_free(run)
    state = run_state(run)
    assert state["state"] == "died" and state["checkpoint"] == resume_point(run)
    checkpoint = state["checkpoint"]
    assert load_trainer_state(checkpoint)["step"] == int(checkpoint.name.removeprefix("step-"))
    assert load_model(checkpoint) is not None
    assert all(json.loads(line) for line in (run / METRICS_FILE).read_text().splitlines()[:-1])

    resumed = forkserver.Process(target=_train, args=(str(project), True))
    resumed.start()
    resumed.join(120)
    assert resumed.exitcode == 0 and run_state(run)["state"] == "completed"
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # the stale write was cleaned up
    got = _losses(run)
    assert got == {step: loss for step, loss in expected.items() if step in got}
    assert max(got) == STEPS and min(got) == int(checkpoint.name.removeprefix("step-")) + 1


def test_a_second_resume_of_a_live_run_is_refused_naming_the_first(tmp_path, unbroken):
    template, _ = unbroken
    project = tmp_path / "p"
    shutil.copytree(template, project)
    assert main(["run", str(project), "--stage", "pretrain", "--set", "pretrain.steps=2"]) == 0
    first = worker.start_worker(project, "pretrain", ["pretrain.steps=100000"], resume=True)
    try:
        for event in first.events():
            if event["type"] == "metrics":
                break
        with pytest.raises(LLMLabError) as refused:
            worker.run(project, "pretrain", ["pretrain.steps=100000"], resume=True)
        assert f"trained right now by pid {first.pid}" in refused.value.lines[0]
    finally:
        first.kill()
        first.join()


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return result.returncode == 0


def test_a_full_disk_is_one_line_leaves_nothing_corrupt_and_resumes_once_there_is_space(
    tmp_path, unbroken, monkeypatch, capsys
):
    template, _ = unbroken
    disk = tmp_path / "disk"
    mounted = _mount_tmpfs(disk, "1500k")
    project = disk / "p"
    shutil.copytree(template, project)
    toml = (project / "project.toml").read_bytes()
    sets = ["--set", "pretrain.steps=400"]
    try:
        if mounted:
            result = subprocess.run(
                [sys.executable, "-m", "engine", "run", str(project), "--stage", "pretrain", *sets],
                capture_output=True,
                text=True,
                timeout=300,
            )
            code, err = result.returncode, result.stderr
        else:  # no tmpfs here: the checkpoint writes fail as on a full disk, after two of them
            real, calls = __import__("torch").save, []

            def save(obj, f, *args, **kwargs):
                calls.append(f)
                if len(calls) > 2:
                    raise OSError(28, "No space left on device")
                return real(obj, f, *args, **kwargs)

            monkeypatch.setattr("engine.checkpoints.torch.save", save)
            code, err = main(["run", str(project), "--stage", "pretrain", *sets]), capsys.readouterr().err
            monkeypatch.undo()
        [run] = (project / "runs").iterdir()
        problem = [line for line in err.splitlines() if "disk is full" in line]
        assert code == 2 and len(problem) == 1 and "Traceback" not in err, err
        assert " free); free some space, then resume the run" in problem[0]
        assert (project / "project.toml").read_bytes() == toml
        events = read_events(run / METRICS_FILE)
        assert events.skipped <= 1  # at most the torn last line, which the resume cuts
        checkpoint = resume_point(run)
        assert checkpoint is not None and load_trainer_state(checkpoint)["step"] >= 1
        if mounted:
            subprocess.run(["mount", "-o", "remount,size=256m", str(disk)], check=True)
        assert (
            main(
                [
                    "run",
                    str(project),
                    "--stage",
                    "pretrain",
                    "--resume",
                    "--set",
                    "pretrain.steps=20",
                    "--set",
                    "pretrain.save_every=0",
                ]
            )
            == 0
        )
        assert run_state(run)["state"] == "completed"
        assert read_events(run / METRICS_FILE).skipped == 0
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)])


def test_an_exploding_lr_ends_diverged_with_exit_3_and_the_next_stage_refuses_it(tmp_path, unbroken, capsys):
    template, _ = unbroken
    project = tmp_path / "p"
    shutil.copytree(template, project)
    sets = [  # validate refuses lr x weight_decay >= 1 up front, so no decay: the lr alone blows up
        "--set",
        "pretrain.lr=1e8",
        "--set",
        "pretrain.warmup_steps=0",
        "--set",
        "pretrain.grad_clip=0",
        "--set",
        "pretrain.optimizer.weight_decay=0",
        "--set",
        "pretrain.steps=60",
        "--set",
        "pretrain.save_every=1",
    ]
    assert main(["run", str(project), "--stage", "pretrain", *sets]) == 3
    out = capsys.readouterr().out
    assert "diverged: pretrain: training diverged at step" in out and "Try a lower pretrain.lr" in out
    [run] = (project / "runs").iterdir()
    state = run_state(run)
    assert state["state"] == "diverged" and not (run / "final").exists()
    assert main(["run", str(project), "--stage", "sft"]) == 2
    assert f"sft.init: the newest pretrain run, {run.name}, diverged" in capsys.readouterr().err
