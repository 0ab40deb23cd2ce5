"""Run directories: `runs/<stage>-<YYYYmmdd-HHMMSS>/` inside a project, their checkpoints and state.

A run never reuses another's directory; a checkpoint is `step-NNNNNN/` or `final/`. A stage's
`init` names its starting weights: a stage (its newest run with a `final/`) or a model directory.
Torch-free: the app lists runs and their state with it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from engine.project.layout import (
    ADAPTER_CONFIG,
    FINAL,
    METRICS_FILE,
    MODEL_CONFIG,
    RUNS_DIR,
    STEP_NAME,
    TRAINER_STATE,
    model_kind,
)
from engine.project.problems import LLMLabError
from engine.project.run_lock import holder
from engine.project.schema import STAGES, Project

_RUN_NAME = re.compile(rf"^({'|'.join(STAGES)})-(\d{{8}}-\d{{6}})(?:-(\d+))?$")
_TAIL_BYTES = 64 * 1024
STATES = ("running", "completed", "stopped", "failed", "diverged", "died")
# a run's last terminal event → its state; none since it (re)started: running if locked, else died
_OUTCOMES = {
    "error": "failed",
    ("finished", "completed"): "completed",
    ("finished", "stopped"): "stopped",
    ("finished", "diverged"): "diverged",
}


def create_run_dir(project: Project, stage: str) -> Path:
    """A new, empty `runs/<stage>-<stamp>` directory (`-2`, `-3`, ... within the same second)."""
    project.stage(stage)  # refuses unknown stage names
    base = project.root / RUNS_DIR / f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir()  # exclusive: two processes never get the same directory
            return path
        except FileExistsError:
            continue
    raise LLMLabError(f"runs: cannot create a new run directory beside {base}")


def _run_key(path: Path) -> tuple[str, int]:
    match = _RUN_NAME.match(path.name)
    return match[2], int(match[3] or 1)


def list_runs(project: Project, stage: str | None = None) -> list[Path]:
    """The project's run directories, oldest first (all stages, or one)."""
    runs = project.root / RUNS_DIR
    if not runs.is_dir():
        return []
    found = [
        p for p in runs.iterdir() if p.is_dir() and (m := _RUN_NAME.match(p.name)) and (stage is None or m[1] == stage)
    ]
    return sorted(found, key=_run_key)


def run_stage(run_dir: Path) -> str | None:
    """The stage a run directory belongs to, from its name."""
    match = _RUN_NAME.match(Path(run_dir).name)
    return match[1] if match else None


def latest_run(project: Project, stage: str) -> Path | None:
    runs = list_runs(project, stage)
    return runs[-1] if runs else None


def checkpoints(run_dir: Path) -> list[Path]:
    """A run's checkpoint directories: step-NNNNNN by step, then final/."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    steps = sorted((int(m[1]), p) for p in run_dir.iterdir() if p.is_dir() and (m := STEP_NAME.match(p.name)))
    final = [run_dir / FINAL] if (run_dir / FINAL).is_dir() else []
    return [p for _, p in steps] + final


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = checkpoints(run_dir)
    return found[-1] if found else None


def resolve_init(project: Project, init: str, field: str = "init") -> Path:
    """The model directory `init` names: a stage's newest run with final/, or a path."""
    if init in STAGES:
        runs = list_runs(project, init)
        if runs and not (runs[-1] / FINAL).is_dir() and run_state(runs[-1])["state"] == "diverged":
            raise LLMLabError(
                f"{field}: the newest {init} run, {runs[-1].name}, diverged; resume it with a lower "
                f"lr (llmlab run PROJECT --stage {init} --resume --set {init}.lr=...), or set "
                f"{field} to a model directory"
            )
        for run in reversed(runs):
            if (run / FINAL).is_dir():
                return run / FINAL
        raise LLMLabError(
            f"{field}: no finished {init} run yet (no {RUNS_DIR}/{init}-*/{FINAL}); "
            f"run the {init} stage first, or set {field} to a model directory"
        )
    path = project.resolve(init) if init else None
    if path is None or not path.is_dir():
        raise LLMLabError(
            f"{field}: {init!r} is neither a stage ({', '.join(STAGES)}) "
            f"nor an existing model directory{f' ({path})' if path else ''}"
        )
    if model_kind(path) is None:
        raise LLMLabError(f"{field}: {path} is not a model directory (no {MODEL_CONFIG} or {ADAPTER_CONFIG})")
    return path


def run_state(run_dir: Path) -> dict:
    """The truth about a run, from its lock and its events (DESIGN.md, "The life of a run").

    state: running (a process holds the lock) / completed / stopped / failed / diverged / died
    (no process, and no end since it last started). Also: step, total_steps, loss, eval_loss,
    updated (time of the last event), message (of an error or a divergence), pid (while
    running) and checkpoint (the newest one a resume would continue from, or None).
    """
    run_dir = Path(run_dir)
    first, tail = _first_and_last_events(run_dir / METRICS_FILE)
    state = {
        "state": "running",
        "step": None,
        "total_steps": (first or {}).get("total_steps"),
        "loss": None,
        "eval_loss": None,
        "updated": tail[-1].get("time") if tail else None,
        "message": None,
        "pid": None,
        "checkpoint": None,
    }
    for ev in tail:  # oldest to newest: later events win
        kind = ev.get("type")
        if kind == "metrics":
            state["step"], state["loss"] = ev.get("step", state["step"]), ev.get("loss", state["loss"])
        elif kind == "eval":
            state["eval_loss"] = ev.get("loss", state["eval_loss"])
        elif kind == "started":
            state["total_steps"] = ev.get("total_steps", state["total_steps"])
        outcome = _OUTCOMES.get(kind) or _OUTCOMES.get((kind, ev.get("status")))
        if outcome:
            state["state"], state["message"] = outcome, ev.get("message")
        elif kind == "started":
            state["state"], state["message"] = "running", None  # a resumed run runs again
    who = holder(run_dir)
    if who is not None:
        state["state"], state["pid"] = "running", who.get("pid")
    elif state["state"] == "running":
        state["state"] = "died"
    state["checkpoint"] = resume_point(run_dir)
    return state


def resume_point(run_dir: Path) -> Path | None:
    """The newest checkpoint holding a trainer state (what a resume continues from)."""
    found = [path for path in checkpoints(run_dir) if (path / TRAINER_STATE).is_file()]
    return found[-1] if found else None


def _first_and_last_events(path: Path) -> tuple[dict | None, list[dict]]:
    """The first `started` event (after the run's preparation `phase` events) and the events in the
    last 64 KiB of a JSON-lines file (partial lines skipped)."""
    if not path.is_file():
        return None, []
    with open(path, "rb") as f:
        first = _parse(f.readline())
        while first is not None and first.get("type") == "phase":
            first = _parse(f.readline())
        size = f.seek(0, 2)
        f.seek(max(0, size - _TAIL_BYTES))
        lines = f.read().split(b"\n")
    if size > _TAIL_BYTES:
        lines = lines[1:]  # the first one is cut
    return first, [ev for ev in map(_parse, lines) if ev is not None]


def _parse(line: bytes) -> dict | None:
    try:
        ev = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return ev if isinstance(ev, dict) else None
