"""Resuming a run, never silently different: which run, which of its settings may change, and the
record of every resume in the run folder. Torch-free (the checks run before any model loads).

A resume continues a run in its own folder from its newest checkpoint. What shapes the weights
or the data stream cannot change (the tokenizer, the model, the stage's init, LoRA, datasets,
batch shape, the optimizer's and scheduler's kind): each change is refused with its own line.
Everything else (steps, lr, warmup, clipping, cadences, the optimizer's settings, the RL
weights, ...) is applied, written into the run's project.toml and appended to resumes.jsonl.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from engine.project.codec import project_to_dict
from engine.project.files import checked, project_file, read_toml, save_project
from engine.project.layout import RESUMES_FILE
from engine.project.problems import LLMLabError, Problem
from engine.project.runs import latest_run, run_stage
from engine.project.schema import Project

FIXED_TABLES = ("tokenizer", "model")  # shape the weights: a resume keeps them
FIXED_STAGE_KEYS = (
    "init",
    "lora",
    "datasets",
    "batch_size",
    "grad_accum",
    "seq_len",
    "optimizer.name",
    "scheduler.name",
    "group_size",
)


def resume_run_dir(project: Project, stage: str, run: str | Path | bool | None) -> Path:
    """The run folder a resume continues: the one named (a path), or the stage's newest run."""
    if run in (None, True, ""):
        found = latest_run(project, stage)
        if found is None:
            raise LLMLabError(Problem("--resume", f"the project has no {stage} run to resume (runs/{stage}-*)"))
        return found
    path = Path(run)
    path = path if path.is_absolute() or path.is_dir() else project.resolve(path)
    if not path.is_dir():
        raise LLMLabError(Problem("--resume", f"{run}: no such run folder"))
    if run_stage(path) != stage:
        raise LLMLabError(Problem("--resume", f"{path.name} is not a {stage} run (its stage: {run_stage(path)})"))
    return path


def resume_changes(trained: dict, current: dict, stage: str) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (as trained, now)} for every setting a resume would change; LLMLabError with one
    line per change that a resume cannot make."""
    changes = {
        key: pair
        for table in FIXED_TABLES
        for key, pair in _diff(trained.get(table), current.get(table), table).items()
    }
    changes.update(_diff(trained.get(stage), current.get(stage), stage))
    if trained.get("seed") != current.get("seed"):
        changes["seed"] = (trained.get("seed"), current.get("seed"))
    refused = [
        Problem(
            key,
            f"the run was trained with {old!r}; a resume cannot change it (now {new!r}): "
            "start a new run instead, or set it back",
        )
        for key, (old, new) in changes.items()
        if _fixed(key, stage)
    ]
    if refused:
        raise LLMLabError(refused)
    return changes


def _fixed(key: str, stage: str) -> bool:
    if key == "seed" or key.split(".", 1)[0] in FIXED_TABLES:
        return True
    inner = key.removeprefix(f"{stage}.")
    return any(inner == fixed or inner.startswith((f"{fixed}.", f"{fixed}[")) for fixed in FIXED_STAGE_KEYS)


def _diff(old: Any, new: Any, path: str) -> dict[str, tuple[Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        return {
            key: pair
            for name in dict.fromkeys([*old, *new])
            for key, pair in _diff(old.get(name), new.get(name), f"{path}.{name}").items()
        }
    if (
        isinstance(old, list)
        and isinstance(new, list)
        and len(old) == len(new)
        and all(isinstance(item, dict) for item in [*old, *new])
    ):
        return {
            key: pair for i, (a, b) in enumerate(zip(old, new)) for key, pair in _diff(a, b, f"{path}[{i}]").items()
        }
    return {} if old == new else {path: (old, new)}


def record_resume(run_dir: Path, project: Project, step: int, changes: dict[str, tuple[Any, Any]]) -> None:
    """Append this resume to resumes.jsonl and make the run's project.toml say what it now trains."""
    line = {"time": time.time(), "step": step, "changes": {key: list(pair) for key, pair in changes.items()}}
    with open(run_dir / RESUMES_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    if changes:
        save_project(project, run_dir)


def trained_settings(run_dir: Path) -> dict | None:
    """The settings a run was trained with (its project.toml, as plain data), if it has one."""
    try:
        file = project_file(run_dir)
    except LLMLabError:
        return None
    return project_to_dict(checked(read_toml(file), run_dir)[0])


def remove_temporaries(run_dir: Path) -> list[Path]:
    """Delete what an interrupted atomic write left in a run folder (`.<name>.*.tmp`, `.<name>.old`)."""
    doomed = [p for p in Path(run_dir).iterdir() if p.name.startswith(".") and p.name.endswith((".tmp", ".old"))]
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return doomed
