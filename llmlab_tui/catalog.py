"""The projects of a directory as the projects screen lists them, and copying or deleting one.

Plain functions, no Textual. Sizes come from engine.project.sizing, runs and their state from
engine.project.runs; a project with a live run is never deleted.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import tomlkit

from engine.project import PROJECT_FILE, STAGES, LLMLabError, Project, load_project, new_project
from engine.project.fileio import atomic_write_text
from engine.project.run_lock import describe, holder
from engine.project.runs import RUNS_DIR, list_runs, run_stage, run_state
from llmlab_tui.summary import model_size

# What a duplicate leaves behind: its runs (history belongs to the original).
_NOT_COPIED = shutil.ignore_patterns(RUNS_DIR)


@dataclass(frozen=True)
class ProjectRow:
    """One line of the projects table."""

    path: Path
    name: str
    parameters: int | None = None
    stages_done: tuple[str, ...] = ()
    last_run: str = ""
    last_state: str = ""
    problem: str = ""  # the first problem when project.toml does not load


def list_projects(directory: Path) -> list[ProjectRow]:
    """Every project (a folder with a project.toml) directly under `directory`, by name."""
    if not directory.is_dir():
        return []
    found = sorted(p for p in directory.iterdir() if (p / PROJECT_FILE).is_file())
    return [project_row(path) for path in found]


def project_row(path: Path) -> ProjectRow:
    try:
        project = load_project(path)
    except LLMLabError as error:
        return ProjectRow(path, path.name, problem=error.lines[0])
    runs = list_runs(project)
    states = {run: run_state(run)["state"] for run in runs}
    done = tuple(s for s in STAGES if any(run_stage(r) == s and st == "completed" for r, st in states.items()))
    last = runs[-1] if runs else None
    return ProjectRow(
        path,
        project.name,
        model_size(project).parameters,
        done,
        last.name if last else "",
        states[last] if last else "",
    )


def create_project(directory: Path, name: str, template: str) -> Path:
    """A new project from a template (engine.project.new_project: its rules, its messages)."""
    return new_project(name, template, directory)


def duplicate_project(source: Path, name: str) -> Path:
    """A copy of `source` named `name` beside it, without its runs."""
    target = new_project(name, "blank", source.parent)  # checks the name; never overwrites
    shutil.rmtree(target)
    shutil.copytree(source, target, ignore=_NOT_COPIED)
    document = tomlkit.parse((target / PROJECT_FILE).read_text(encoding="utf-8"))
    document["name"] = name  # the rest of the file, comments included, as it was
    atomic_write_text(target / PROJECT_FILE, document.as_string())
    return target


def delete_project(path: Path) -> None:
    """Remove a project directory and everything in it (runs included)."""
    if not (path / PROJECT_FILE).is_file():
        raise LLMLabError(f"{path}: not a project (no {PROJECT_FILE}); nothing deleted")
    live = [(run, who) for run in list_runs(Project(root=path)) if (who := holder(run)) is not None]
    if live:
        run, who = live[0]
        raise LLMLabError(f"{path.name}: its run {run.name} is {describe(who)}; stop it first (nothing deleted)")
    shutil.rmtree(path)
