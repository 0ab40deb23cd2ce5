"""A run outlives the app that started it, with real worker processes and keys only: quit with
"leave running", then a second app follows it, stops it, resumes it where it stopped; a worker
killed meanwhile shows as "died" with its last checkpoint and resumes from it."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.events import read_events
from engine.project.layout import METRICS_FILE
from engine.project.run_lock import holder
from engine.worker import OUTPUT_LOG
from llmlab_tui.runner import TRAIN_JOB
from llmlab_tui.screens.monitor import MonitorScreen
from llmlab_tui.screens.quit import QuitScreen
from tests.llmlab_tui.pilot_keys import app_on, show, wait_for
from tests.tiny_project import APP_RUN, make_project

SLOW = {"tries": 1500, "delay": 0.1}  # a worker process imports torch first: seconds on a busy machine
LONG_RUN = {**APP_RUN, "steps": 100_000, "eval_every": 0, "sample_every": 0, "save_every": 2}


@pytest.fixture
def project(tmp_path: Path):
    root = make_project(tmp_path / "projects" / "tiny", **LONG_RUN)
    yield root
    for run in list_runs_of(root):  # never leave a worker behind
        who = holder(run)
        if who:
            os.kill(who["pid"], signal.SIGKILL)


def list_runs_of(root: Path) -> list[Path]:
    return sorted((root / "runs").glob("pretrain-*")) if (root / "runs").is_dir() else []


async def open_monitor(pilot) -> MonitorScreen:
    return await show(pilot, "f4", MonitorScreen)


def seen(monitor: MonitorScreen, run: Path) -> Callable[[], str]:
    """What a failed wait shows: the monitor's view, its log, the run's last events, its lock, the workers' output."""

    def explain() -> str:
        view = monitor.view
        events = [json.dumps(e)[:160] for e in read_events(run / METRICS_FILE)][-6:]
        output = OUTPUT_LOG.read_text(errors="replace")[-1500:] if OUTPUT_LOG.is_file() else ""
        job = monitor.app.runner.jobs.get(TRAIN_JOB)
        return "\n".join(
            [
                f"view: state {view.state!r} step {view.step} run {view.run_dir}; lock {holder(run)}",
                f"job: {job and type(job.source).__name__} running {job and job.running}",
                "log:",
                *(f"  {level}: {message}" for level, message in list(view.log)[-8:]),
                "last events:",
                *(f"  {line}" for line in events),
                f"worker output ({OUTPUT_LOG}):",
                output,
            ]
        )

    return explain


async def start_and_leave_running(project: Path) -> tuple[int, Path]:
    """Start a run from the monitor, wait for a checkpoint, quit with "leave running"."""
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await open_monitor(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: any("checkpoint at step" in m for _, m in monitor.view.log), **SLOW)
        pid = app.runner.running(TRAIN_JOB).source.pid
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("l")
        await wait_for(pilot, lambda: not app.is_running, delay=0.05)
    [run] = list_runs_of(project)
    return pid, run


async def test_a_second_app_stops_the_run_the_first_left_going_and_resumes_it_where_it_stopped(project):
    pid, run = await start_and_leave_running(project)
    assert holder(run)["pid"] == pid  # the worker outlived the app
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await open_monitor(pilot)
        slow = {**SLOW, "explain": seen(monitor, run)}
        await wait_for(pilot, lambda: monitor.view.state == "running" and monitor.view.step > 0, **slow)
        await pilot.press("x")  # a run this app did not start: stopped through its folder
        await wait_for(pilot, lambda: monitor.view.state == "stopped", **slow)
        stopped_at = monitor.view.step
        await pilot.press("r")
        resumed = lambda: monitor.view.state == "running" and monitor.view.step > stopped_at + 1
        await wait_for(pilot, resumed, **slow)
        await pilot.press("x")
        await wait_for(pilot, lambda: monitor.view.state == "stopped", **slow)
    started = [e for e in read_events(run / METRICS_FILE) if e["type"] == "started"]
    assert [e["start_step"] for e in started] == [0, stopped_at] and started[1]["resumed"]


async def test_a_killed_worker_shows_died_with_its_checkpoint_and_resumes_from_it(project):
    pid, run = await start_and_leave_running(project)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while holder(run) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await open_monitor(pilot)
        slow = {**SLOW, "explain": seen(monitor, run)}
        await wait_for(pilot, lambda: monitor.view.state == "died", explain=slow["explain"])
        checkpoint = Path(monitor.view.checkpoint)
        assert checkpoint.parent == run and checkpoint.name.startswith("step-")
        await wait_for(pilot, lambda: monitor.drawn == monitor.view.version)
        assert "died" in str(monitor.query_one("#monitor-state").render())
        await pilot.press("r")
        await wait_for(pilot, lambda: monitor.view.state == "running" and monitor.view.step > 0, **slow)
        await pilot.press("x")
        await wait_for(pilot, lambda: monitor.view.state == "stopped", **slow)
    started = [e for e in read_events(run / METRICS_FILE) if e["type"] == "started"]
    assert started[-1]["start_step"] == int(checkpoint.name.removeprefix("step-"))
