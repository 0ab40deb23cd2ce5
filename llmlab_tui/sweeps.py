"""Starting a sweep from the app (no Textual): the grid typed as one line, every member's settings
checked here, then `llmlab sweep` in a process of its own (engine.worker.start_sweep)."""

from __future__ import annotations

import shlex
from pathlib import Path

from engine.project.problems import LLMLabError, Problem
from engine.project.sweeps import check_members, parse_grid, sweep_id
from engine.worker import start_sweep as start_sweep_process


def start_sweep(project_dir: Path, stage: str, text: str) -> str:
    """Start the sweep `text` names (`KEY=V1,V2 ...`, shell quoting for values with spaces); its id.
    LLMLabError, naming the field and the rule, before anything starts."""
    try:
        options = shlex.split(text)
    except ValueError as error:
        raise LLMLabError(Problem("grid", f"cannot split {text!r}: {error}")) from None
    grid = parse_grid(options)
    check_members(project_dir, grid)
    start_sweep_process(project_dir, stage, options)
    return sweep_id(stage, grid, [])
