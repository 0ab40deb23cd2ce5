"""Tracking tools a run also reports to: project.toml's `[tracking] report_to` (TensorBoard, Trackio, W&B).

A `Reporter` sits in front of the run's event sink on rank 0 (engine.setup): every event goes on
to metrics.jsonl and the app as before, and the numbers of `metrics` and `eval` events go to each
tool as `train/<name>` and `eval/<name>` at their step; `finished` (or its absence) ends the tools'
runs. One module per tool, each importing its library only when a run asks for it;
`check_installed` refuses a missing one before a run folder exists. A tool that fails mid-run is
dropped with a warning event: the training goes on.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from engine import events as ev
from engine.project.problems import LLMLabError, Problem
from engine.project.schema import Project

# each tool's class, built as Class(project, stage, run_dir) on rank 0 once the run folder exists
CLASSES = {
    "tensorboard": ("engine.tracking.tensorboard_tracker", "TensorBoardTracker"),
    "trackio": ("engine.tracking.trackio_tracker", "TrackioTracker"),
    "wandb": ("engine.tracking.wandb_tracker", "WandbTracker"),
}
NOT_SCALARS = ("type", "time", "step")


class Tracker(Protocol):
    def log(self, scalars: dict[str, float], step: int) -> None: ...
    def finish(self, failed: bool) -> None: ...


def check_installed(report_to: list[str]) -> None:
    """LLMLabError naming each tool of `report_to` whose library does not import, with its pip command."""
    missing = []
    for name in dict.fromkeys(report_to):
        try:
            importlib.import_module(name)  # each tool's library has the tool's name
        except ImportError:
            missing.append(name)
    if missing:
        raise LLMLabError(
            [Problem("tracking.report_to", f"{name} is not installed: pip install -e '.[{name}]'") for name in missing]
        )


def scalars(event: dict) -> dict[str, float]:
    """The numbers of a `metrics` (train/…) or `eval` (eval/…) event; {} for any other event."""
    prefix = {"metrics": "train", "eval": "eval"}.get(event["type"])
    if prefix is None:
        return {}
    return {
        f"{prefix}/{key}": float(value)
        for key, value in event.items()
        if key not in NOT_SCALARS and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


class Reporter:
    """`emit` with the run's trackers behind it: call it with each event; `close()` at the end."""

    def __init__(self, emit: Callable[[dict], None], trackers: dict[str, Tracker]):
        self.emit, self.trackers, self.failed = emit, trackers, True

    @classmethod
    def open(cls, project: Project, stage: str, run_dir: Path, emit: Callable[[dict], None]) -> Reporter:
        """Start each tool's run. It emits nothing: a run's first event must stay its `started`."""
        reporter = cls(emit, {})
        try:
            for name in dict.fromkeys(project.tracking.report_to):
                module, class_name = CLASSES[name]
                reporter.trackers[name] = getattr(importlib.import_module(module), class_name)(project, stage, run_dir)
        except BaseException:
            reporter.close()  # the tools opened so far end as failed
            raise
        return reporter

    def __call__(self, event: dict) -> None:
        self.emit(event)
        if event["type"] == "finished":
            self.failed = event["status"] == "diverged"
        numbers = scalars(event)
        if not numbers:
            return
        for name, tracker in list(self.trackers.items()):
            try:
                tracker.log(numbers, event["step"])
            except Exception as error:  # a tool's failure must not end the training
                del self.trackers[name]
                self.emit(ev.log(f"tracking: {name} failed ({error}); the run goes on without it", "warning"))

    def close(self) -> None:
        """End every tool's run: failed unless a `finished` event other than diverged went by."""
        for tracker in self.trackers.values():
            tracker.finish(self.failed)
        self.trackers = {}
