"""Control that reaches a live run from anywhere: `stop` (checkpoint, then exit) and `save`
(checkpoint now), as request files in `<run>/control/` that the training loop takes between steps.

The app that started a run also has its queue; this channel outlives it, so another app window
or a shell (`llmlab stop RUN`, `llmlab save RUN`) can reach the same run. Torch-free.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from engine.project.fileio import atomic_write_text
from engine.project.layout import CONTROL_DIR
from engine.project.problems import LLMLabError
from engine.project.run_lock import holder

COMMANDS = ("stop", "save")


def request(run_dir: str | Path, command: str) -> Path:
    """Ask the process training `run_dir` to `stop` or `save`; refused when no process is."""
    if command not in COMMANDS:
        raise LLMLabError(f"control: must be one of {', '.join(COMMANDS)}, got {command!r}")
    run_dir = Path(run_dir)
    if holder(run_dir) is None:
        raise LLMLabError(f"{run_dir}: no process is training this run (nothing to {command})")
    path = run_dir / CONTROL_DIR / f"{time.time_ns():020d}-{os.getpid()}.{command}"
    atomic_write_text(path, command)
    return path


def take_requests(run_dir: str | Path) -> list[str]:
    """The commands requested since the last call, oldest first (each taken once)."""
    folder = Path(run_dir) / CONTROL_DIR
    try:
        names = sorted(entry.name for entry in os.scandir(folder) if not entry.name.startswith("."))
    except FileNotFoundError:
        return []
    commands = []
    for name in names:
        try:
            os.unlink(folder / name)
        except FileNotFoundError:
            continue  # taken by another reader
        command = name.rsplit(".", 1)[-1]
        if command in COMMANDS:
            commands.append(command)
    return commands
