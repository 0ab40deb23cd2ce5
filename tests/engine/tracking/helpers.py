"""A tiny pretraining run that reports to a tracking tool, and what metrics.jsonl says it measured."""

from __future__ import annotations

from pathlib import Path

from engine import worker
from engine.events import read_events
from engine.project.layout import METRICS_FILE
from tests.tiny_project import Recorder, make_project


def tracked_run(tmp_path: Path, tool: str) -> tuple[Path, list[dict]]:
    """Train the tiny project 4 steps (eval at 2 and 4) reporting to `tool`; its run folder and events."""
    project = make_project(tmp_path / "p", steps=4, eval_every=2, warmup_steps=1)
    events = Recorder()
    worker.run(project, "pretrain", [f'tracking.report_to=["{tool}"]'], events=events)
    run_dir = Path(events.of("started")[0]["run_dir"])
    return run_dir, read_events(run_dir / METRICS_FILE)


def measured(events: list[dict], kind: str, key: str) -> list[tuple[int, float]]:
    """(step, value) of `key` in every `kind` event (metrics or eval)."""
    return [(e["step"], e[key]) for e in events if e["type"] == kind]
