"""Running a sweep (engine/project/sweeps.py): its members one after another in this process, or N
at a time as training processes of their own (engine.worker.start_worker), each through the normal
run lifecycle. A member's run folder is tagged once its run has started. A `stop` on the sweep's
control stops the member(s) training and ends the sweep (a rerun resumes them); a member stopped
from elsewhere (`llmlab stop RUN`) ends alone and the sweep goes on.
"""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

from engine import events as ev
from engine.project import load_project
from engine.project.problems import Diverged, LLMLabError
from engine.project.sweeps import Member, Sweep, check_members


def run_sweep(
    project_path: str | Path,
    stage: str,
    grid: list[tuple[str, list[str]]],
    sets: list[str] = (),
    parallel: int = 1,
    events: Any = None,
    control: Any = None,
    device: str | None = None,
) -> tuple[Sweep, list[Member]]:
    """Run the sweep's members that need it; returns the sweep and its plan as it was at the start."""
    if parallel < 1:
        raise LLMLabError(f"--parallel: must be at least 1 (got {parallel})")
    sweep = Sweep(load_project(project_path, sets), stage, grid, sets)
    check_members(project_path, grid, sets)
    sweep.record()
    plan = sweep.plan()
    sink = events if events is not None else queue.SimpleQueue()
    for member in plan:
        if member.action == "skip":
            sink.put(ev.log(f"sweep {sweep.id}: {_label(member)} skipped ({member.state}: {member.run_dir.name})"))
    todo = [member for member in plan if member.action != "skip"]
    if parallel == 1:
        _in_process(project_path, sweep, todo, sink, _SweepControl(control), device)
    else:
        _in_processes(project_path, sweep, todo, sink, _SweepControl(control), device, parallel)
    return sweep, plan


def _label(member: Member) -> str:
    return " ".join(member.overrides)


def _in_process(project_path, sweep: Sweep, todo: list[Member], sink, control, device) -> None:
    for member in todo:
        if control.stopped:
            return
        sink.put(ev.log(f"sweep {sweep.id}: {_label(member)} ({member.action})"))
        try:
            _run_member(project_path, sweep, member, _Tagger(sink, sweep, member), control, device)
        except Diverged:
            continue  # its finished event said so; the other members go on
        except LLMLabError:
            raise  # a setting the sweep gives is refused: every member would be
        except Exception:
            continue  # its error event said what; the other members go on


def _run_member(project_path, sweep: Sweep, member: Member, events, control, device) -> dict:
    from engine.worker import run

    resume = member.run_dir if member.action == "resume" else False
    return run(project_path, sweep.stage, sweep.sets + member.overrides, events, control, device, resume)


def _in_processes(project_path, sweep: Sweep, todo: list[Member], sink, control, device, parallel) -> None:
    """Up to `parallel` members at a time, each in a training process of its own."""
    from engine.worker import start_worker

    waiting, live = list(todo), []
    while waiting or live:
        while waiting and len(live) < parallel and not control.stopped:
            member = waiting.pop(0)
            sink.put(ev.log(f"sweep {sweep.id}: {_label(member)} ({member.action})"))
            resume = str(member.run_dir) if member.action == "resume" else False
            handle = start_worker(project_path, sweep.stage, sweep.sets + member.overrides, device, resume)
            live.append((handle, _Tagger(sink, sweep, member)))
        if control.poll() == "stop":
            for handle, _ in live:
                handle.stop()
        for handle, tagger in list(live):
            batch = handle.poll(0.2 / len(live))
            for event in batch:
                tagger.put(event)
            if not batch and not handle.alive():
                while batch := handle.poll(0):  # its last words, or the news of its death
                    for event in batch:
                        tagger.put(event)
                handle.join()
                live.remove((handle, tagger))
        if control.stopped and not live:
            return


class _Tagger:
    """Passes a member's events on; its `started` event tags the run folder as the sweep's."""

    def __init__(self, sink, sweep: Sweep, member: Member):
        self.sink, self.sweep, self.member = sink, sweep, member

    def put(self, event: dict) -> None:
        if event.get("type") == "started" and event.get("run_dir"):
            self.sweep.tag(event["run_dir"], self.member.overrides)
        self.sink.put(event)


class _SweepControl:
    """The sweep's control queue as a member's (get_nowait), remembering a `stop` (it ends the sweep)."""

    def __init__(self, control: Any):
        self.control, self.stopped = control, False

    def poll(self) -> str | None:
        if self.control is None:
            return None
        try:
            message = ev.control_type(self.control.get_nowait())
        except queue.Empty:
            return None
        self.stopped = self.stopped or message == "stop"
        return message

    def get_nowait(self):
        message = self.poll()
        if message is None:
            raise queue.Empty
        return message
