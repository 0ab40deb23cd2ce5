"""Editing project.toml from the app: checks, saving a section, the `llmlab run` line.

Plain functions, no Textual: the screens call them and tests import them directly. Every rule
comes from engine.project (project_problems; overrides.py turns edits into `--set` lines), so
the app and `llmlab validate` always agree.
"""

from __future__ import annotations

import copy
import os
import shlex
from pathlib import Path
from typing import Any

from engine.project import (
    LLMLabError,
    Project,
    project_file,
    project_from_dict,
    project_problems,
    read_toml,
    save_project,
)


def load_dict(project_dir: Path) -> dict:
    """The parsed project.toml of a project directory."""
    return read_toml(project_file(project_dir))


def save_sections(project_dir: Path, sections: dict[str, Any]) -> Project:
    """Replace top-level tables of the file on disk with `sections`, check, then save atomically.

    Reading the file again first keeps what another screen saved meanwhile.
    """
    data = {**load_dict(project_dir), **copy.deepcopy(sections)}
    problems = project_problems(data, project_dir)
    if problems:
        raise LLMLabError(problems)
    project = project_from_dict(data, project_dir)
    save_project(project)
    return project


def shown_path(path: Path) -> str:
    """`path` relative to the working directory when it is below it (as a person would type it)."""
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else relative


def run_command(project_dir: Path, stage: str, sets: list[str]) -> str:
    """The `llmlab run` line that runs `stage` with `sets` applied to the saved project."""
    words = ["llmlab", "run", shown_path(project_dir), "--stage", stage]
    for line in sets:
        words += ["--set", line]
    return shlex.join(words)


def shares(weights: list[Any]) -> list[float | None]:
    """Each weight's share of the total (None where a weight is not a number or all are 0)."""
    numbers = [w if isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 else None for w in weights]
    total = sum(w for w in numbers if w is not None)
    return [w / total if w is not None and total > 0 else None for w in numbers]
