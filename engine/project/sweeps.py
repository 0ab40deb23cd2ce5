"""Sweeps: a grid of settings, each combination a normal run tagged with its sweep. Torch-free.

A grid is `KEY=V1,V2,...` options (`--set` values, TOML or bare words; commas inside [] or {}
belong to the value). Its id is the stage and a hash of the grid and the base overrides, so the
same sweep run again finds its members: `<project>/sweeps/<id>/sweep.json` records the sweep, and
each member's run folder holds a `sweep.json` with the sweep's id and that member's overrides.
On a rerun a member's newest run decides: completed, diverged or running → skipped; stopped, died
or failed with a checkpoint → resumed; otherwise a new run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from engine.project.fileio import atomic_write_text
from engine.project.overrides import override_value
from engine.project.problems import LLMLabError, Problem
from engine.project.runs import list_runs, run_state
from engine.project.schema import Project

SWEEPS_DIR = "sweeps"
SWEEP_FILE = "sweep.json"
_SKIPPED = ("completed", "diverged", "running")


def parse_grid(options: list[str]) -> list[tuple[str, list[str]]]:
    """`["pretrain.lr=1e-3,3e-3"]` → `[("pretrain.lr", ["1e-3", "3e-3"])]`, refusing malformed options."""
    grid, problems = [], []
    for option in options:
        key, sep, values = option.partition("=")
        key = key.strip()
        found = [value.strip() for value in _split_values(values)]
        if not sep or not key or not all(found):
            problems.append(Problem("--grid", f"{option!r}: expected KEY=VALUE,VALUE,... (no empty value)"))
        elif key in (k for k, _ in grid):
            problems.append(Problem("--grid", f"{key} is given twice; list all its values in one --grid"))
        elif len(set(map(str, map(override_value, found)))) != len(found):
            problems.append(Problem("--grid", f"{key}: a value is listed twice"))
        else:
            grid.append((key, found))
    if not options:
        problems.append(Problem("--grid", "a sweep needs at least one --grid KEY=VALUE,VALUE,..."))
    if problems:
        raise LLMLabError(problems)
    return grid


def _split_values(text: str) -> list[str]:
    """Split on the commas outside brackets, braces and quotes."""
    parts, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    return parts + [current]


def combinations(grid: list[tuple[str, list[str]]]) -> list[list[str]]:
    """Every combination of the grid as `--set` overrides, the last key varying fastest."""
    keys = [key for key, _ in grid]
    return [[f"{k}={v}" for k, v in zip(keys, values)] for values in itertools.product(*(v for _, v in grid))]


def check_members(project_path: str | Path, grid: list[tuple[str, list[str]]], sets: list[str] = ()) -> None:
    """Load the project as every member of the sweep would train it: LLMLabError for the first bad one."""
    from engine.project import load_project

    for overrides in combinations(grid):
        load_project(project_path, [*sets, *overrides])


def sweep_id(stage: str, grid: list[tuple[str, list[str]]], sets: list[str]) -> str:
    """`<stage>-<8 hex>`: the same stage, grid and base overrides give the same id."""
    text = json.dumps({"stage": stage, "grid": grid, "sets": list(sets)}, sort_keys=True)
    return f"{stage}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


@dataclass
class Member:
    """One combination of a sweep and what a (re)run does with it: new, resume or skip (and why)."""

    overrides: list[str]
    action: str
    run_dir: Path | None = None
    state: str | None = None


class Sweep:
    """A sweep of a project's stage: its id, folder, members, and the tags in its run folders."""

    def __init__(self, project: Project, stage: str, grid: list[tuple[str, list[str]]], sets: list[str] = ()):
        project.stage(stage)  # refuses unknown stage names
        self.project, self.stage, self.grid, self.sets = project, stage, grid, list(sets)
        self.id = sweep_id(stage, grid, self.sets)
        self.folder = project.root / SWEEPS_DIR / self.id

    def record(self) -> None:
        """Write `sweeps/<id>/sweep.json`: the stage, grid, base overrides and members."""
        data = {
            "id": self.id,
            "stage": self.stage,
            "grid": [[key, values] for key, values in self.grid],
            "sets": self.sets,
            "members": combinations(self.grid),
        }
        atomic_write_text(self.folder / SWEEP_FILE, json.dumps(data, indent=2) + "\n")

    def tag(self, run_dir: str | Path, overrides: list[str]) -> None:
        """Mark a run folder as this sweep's member with `overrides` (once)."""
        path = Path(run_dir) / SWEEP_FILE
        if not path.is_file():
            atomic_write_text(path, json.dumps({"sweep": self.id, "overrides": overrides}, indent=2) + "\n")

    def plan(self) -> list[Member]:
        """Each combination with what running the sweep now does with it (module docstring)."""
        tagged = member_runs(self.project, self.id)
        members = []
        for overrides in combinations(self.grid):
            runs = tagged.get(tuple(overrides), [])
            if not runs:
                members.append(Member(overrides, "new"))
                continue
            state = run_state(runs[-1])
            if state["state"] in _SKIPPED:
                action = "skip"
            else:
                action = "resume" if state["checkpoint"] is not None else "new"
            members.append(Member(overrides, action, runs[-1], state["state"]))
        return members


def member_runs(project: Project, sweep: str) -> dict[tuple[str, ...], list[Path]]:
    """{overrides: the run folders tagged with them, oldest first} for a sweep's id."""
    found: dict[tuple[str, ...], list[Path]] = {}
    for run_dir in list_runs(project):
        tag = read_tag(run_dir)
        if tag is not None and tag.get("sweep") == sweep:
            found.setdefault(tuple(tag.get("overrides", ())), []).append(run_dir)
    return found


def read_tag(run_dir: Path) -> dict | None:
    """A run folder's sweep.json, or None when the run belongs to no sweep (or the file is unreadable)."""
    try:
        tag = json.loads((Path(run_dir) / SWEEP_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return tag if isinstance(tag, dict) else None


def project_sweeps(project: Project) -> list[Path]:
    """The project's sweep folders (those with a sweep.json), the newest recorded first."""
    folder = project.root / SWEEPS_DIR
    found = [f for f in folder.iterdir() if (f / SWEEP_FILE).is_file()] if folder.is_dir() else []
    return sorted(found, key=lambda f: (f / SWEEP_FILE).stat().st_mtime, reverse=True)


def sweep_runs(folder: str | Path, project: Project | None = None) -> list[Path]:
    """The newest run folder of each member of the sweep in `folder` (PROJECT/sweeps/<id>), in grid
    order; `project`: that project, when the caller has it loaded already."""
    from engine.project import load_project

    folder = Path(folder)
    try:
        data = json.loads((folder / SWEEP_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise LLMLabError(Problem("--sweep", f"{folder}: not a sweep folder (no readable {SWEEP_FILE})")) from None
    tagged = member_runs(project or load_project(folder.parent.parent), data["id"])
    runs = [tagged[tuple(overrides)][-1] for overrides in data["members"] if tuple(overrides) in tagged]
    if not runs:
        raise LLMLabError(Problem("--sweep", f"sweep {data['id']} has no runs yet"))
    return runs
