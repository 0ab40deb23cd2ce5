"""Editing project.toml from the app: TOML values as text, checks, saving a section, `--set` lines.

Plain functions, no Textual: the screens call them and tests import them directly. Every rule
comes from engine.project (project_from_dict + validate_project), so the app and `llmlab validate`
always agree.
"""

from __future__ import annotations

import copy
import os
import shlex
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from engine.errors import LLMLabError
from engine.project import (
    OPTIMIZER_DEFAULTS,
    SCHEDULER_DEFAULTS,
    Project,
    project_file,
    project_from_dict,
    project_problems,
    read_toml,
    save_project,
)

# Tables whose keys depend on their `name`; `--set X.name=...` resets X to that one's defaults.
NAMED_DEFAULTS = {"optimizer": OPTIMIZER_DEFAULTS, "scheduler": SCHEDULER_DEFAULTS}


def parse_value(text: str) -> Any:
    """A TOML value written inline (`1e-3`, `[0.9, 0.95]`, `{a = "b"}`); ValueError if it is not one."""
    if not text.strip():
        raise ValueError("a value is required")
    try:
        return tomllib.loads(f"value = {text.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        raise ValueError(f"not a TOML value: {text.strip()!r}") from None


def format_value(value: Any) -> str:
    """`value` as an inline TOML value (the inverse of parse_value)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value})[4:].strip()


def override_text(value: Any) -> str:
    """`value` as `--set` takes it: a plain word stays bare (the engine reads what is not TOML as
    a string), anything else is written as TOML."""
    if isinstance(value, str) and value and value == value.strip():
        try:
            parse_value(value)
        except ValueError:
            return value
    return format_value(value)


def _key(key: str) -> str:
    return tomli_w.dumps({key: 0}).split(" = ")[0]


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


def set_overrides(saved: Any, edited: Any, path: str) -> list[str]:
    """The `path=value` lines that turn `saved` into `edited` through engine.project.apply_overrides."""
    if saved == edited:
        return []
    if isinstance(saved, dict) and isinstance(edited, dict):
        tail = path.rsplit(".", 1)[-1]
        if tail in NAMED_DEFAULTS and saved.get("name") != edited.get("name") and "name" in edited:
            lines = [f"{path}.name={override_text(edited['name'])}"]
            defaults = {"name": edited["name"], **NAMED_DEFAULTS[tail].get(edited["name"], {})}
            return lines + set_overrides(defaults, edited, path)
        if saved.keys() == edited.keys():
            return [line for key in edited for line in set_overrides(saved[key], edited[key], f"{path}.{key}")]
    if isinstance(saved, list) and isinstance(edited, list) and len(saved) == len(edited):
        if all(isinstance(item, dict) for item in saved + edited):
            return [line for i, (a, b) in enumerate(zip(saved, edited)) for line in set_overrides(a, b, f"{path}[{i}]")]
    return [f"{path}={override_text(edited)}"]


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

