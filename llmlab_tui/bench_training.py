"""`llmlab bench tui`, its second half: does watching a run from the app slow the run?

The demo's pretraining is trained for N steps twice in a fresh copy of the project: headless
(`llmlab run`, in a process of its own) and from the app (a headless app at 120×40, in another
process, that opens the Monitor, presses start and keeps its charts shown until the run ends).
Each run's throughput is the median `tokens_per_s` of its metrics events, its first tenth of
steps left out (warm-up); the measure is their ratio, app over headless.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from engine.events import read_events
from engine.project import load_project
from engine.project.layout import METRICS_FILE
from engine.project.runs import list_runs

APP_SIZE = (120, 40)
TARGET_RATIO = 0.95
STAGE = "pretrain"
APP_CODE = "import sys; from llmlab_tui.bench_training import train_in_app; train_in_app(sys.argv[1])"


def train_in_app(project: str) -> None:
    """Run in a fresh process: the app, headless, starts the stage from its Monitor (charts shown)
    and exits once the run has ended; prints the Monitor's redraw count as JSON."""
    from llmlab_tui.app import LabApp
    from llmlab_tui.runner import TRAIN_JOB

    seen: dict = {}

    class Driver(LabApp):
        CSS_PATH = Path(sys.modules[LabApp.__module__].__file__).parent / LabApp.CSS_PATH  # relative to app.py

        def on_ready(self) -> None:
            self.action_show("monitor")
            self.set_interval(0.5, self.step)

        def step(self) -> None:
            """Press start once the Monitor is drawn; exit once its run has ended."""
            monitor = self.screen
            if not seen and monitor.project is not None and monitor.drawable:
                monitor.stage, seen["started"] = STAGE, True
                monitor.action_start()
            elif seen and monitor.view.state != "running" and self.runner.running(TRAIN_JOB) is None:
                seen.update(state=monitor.view.state, redraws=monitor.redraws)
                self.exit()

    Driver(Path(project)).run(headless=True, size=APP_SIZE)
    print(json.dumps(seen))


def run_throughput(run_dir: Path) -> dict:
    """Median tokens/s of a run's steps after its first tenth, its step count and wall time."""
    metrics = [e for e in read_events(run_dir / METRICS_FILE) if e.get("type") == "metrics"]
    if not metrics:
        raise RuntimeError(f"{run_dir} has no metrics: the run failed (see its metrics.jsonl)")
    kept = metrics[len(metrics) // 10 :]
    return {
        "steps": len(metrics),
        "tokens_per_s": statistics.median(e["tokens_per_s"] for e in kept),
        "train_seconds": metrics[-1]["time"] - metrics[0]["time"],
        "load_average": [round(x, 2) for x in os.getloadavg()],  # other work on the machine shows here
    }


def _newest_run(project: Path) -> Path:
    return list_runs(load_project(project), STAGE)[-1]


def _check(done: subprocess.CompletedProcess, what: str) -> str:
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def compare(demo: Path, steps: int) -> dict:
    """Train `steps` steps headless, then from the app, in one fresh copy of `demo`."""
    with tempfile.TemporaryDirectory(prefix="llmlab-bench-tui-") as tmp:
        project = Path(tmp) / demo.name
        shutil.copytree(demo, project, ignore=shutil.ignore_patterns("runs", "tokenizer"))
        overrides = [f"{STAGE}.steps={steps}", f"{STAGE}.sample_every=0", f"{STAGE}.save_every=0"]
        _set(project, overrides)
        headless = subprocess.run(
            [sys.executable, "-m", "engine", "run", str(project), "--stage", STAGE], capture_output=True, text=True
        )
        _check(headless, "llmlab run")
        alone = run_throughput(_newest_run(project))
        app = subprocess.run([sys.executable, "-c", APP_CODE, str(project)], capture_output=True, text=True)
        seen = json.loads(_check(app, "the app's run").strip().splitlines()[-1])
        watched = run_throughput(_newest_run(project))
    return {
        "steps": steps,
        "headless": alone,
        "app": {**watched, **seen},
        "ratio": watched["tokens_per_s"] / alone["tokens_per_s"],
        "target_ratio": TARGET_RATIO,
    }


def _set(project: Path, overrides: list[str]) -> None:
    """Write `overrides` (KEY=VALUE) into the project's file, as the app's forms would save them."""
    from engine.project import save_project

    save_project(load_project(project, overrides), project)
