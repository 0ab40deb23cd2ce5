"""Project files: find, read, load (overrides applied, every problem collected), save, create.

Saving edits an existing project.toml in place (tomlkit): the user's comments, key order and the
defaults they left out survive, and only the values that changed are written. A new file is
written whole. Every write is atomic.
"""

from __future__ import annotations

import re
import tomllib
import typing
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any

import tomli_w
import tomlkit
from tomlkit.exceptions import TOMLKitError

from engine.project.codec import field_types, from_dict, project_to_dict
from engine.project.fileio import atomic_write_text
from engine.project.layout import PROJECT_FILE
from engine.project.overrides import NAMED, apply_overrides
from engine.project.problems import LLMLabError, Problem
from engine.project.rules import validate_project
from engine.project.schema import OptimizerConfig, Project, SchedulerConfig

TEMPLATES_DIR = Path(__file__).parent / "templates"
_NAME = re.compile(r"^\w[\w.-]{0,63}$")


def project_file(path: str | Path) -> Path:
    """The project.toml of a project directory, or the file itself."""
    path = Path(path)
    file = path / PROJECT_FILE if path.is_dir() else path
    if not file.is_file():
        raise LLMLabError(f"{path}: no project here (expected a project directory or its {PROJECT_FILE})")
    return file


def read_toml(file: Path) -> dict:
    """A parsed TOML file; a syntax error names the file, the line and the reason."""
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        reason = str(error)
        where = re.search(r"\(at line (\d+), column (\d+)\)", reason)
        if where:
            reason = reason[: where.start()].strip()
            raise LLMLabError(Problem(str(file), f"line {where[1]}, column {where[2]}: {reason}")) from None
        raise LLMLabError(Problem(str(file), reason)) from None
    except UnicodeDecodeError:
        raise LLMLabError(Problem(str(file), "not UTF-8 text")) from None
    except OSError as error:
        raise LLMLabError(Problem(str(file), f"cannot read ({error.strerror})")) from None


def load_project(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Project:
    """Read, override and validate a project; raises LLMLabError listing every problem. Never writes."""
    file = project_file(path)
    project, problems = checked(apply_overrides(read_toml(file), list(overrides)), file.parent)
    if problems:
        raise LLMLabError(problems)
    return project


def project_problems(data: dict, root: str | Path = ".") -> list[Problem]:
    """Every problem of a parsed project.toml, as `llmlab validate` prints them; [] when valid."""
    return checked(data, Path(root))[1]


def checked(data: Any, root: Path) -> tuple[Project, list[Problem]]:
    """The Project (bad values left at defaults) and every problem: types and keys, then rules
    (a rule's problem is left out when its field already has a type problem)."""
    problems: list[Problem] = []
    project = from_dict(data, root, problems)
    reported = {problem.field for problem in problems}
    problems += [problem for problem in validate_project(project) if problem.field not in reported]
    return project, problems


def save_project(project: Project, path: str | Path | None = None) -> Path:
    """Write project.toml atomically (to `path`, a file or directory, or the project's own file).

    An existing file is edited in place: only the changed values are written (see `edited_text`).
    """
    target = project.file if path is None else Path(path)
    if target.is_dir():
        target = target / PROJECT_FILE
    data = project_to_dict(project)
    text = edited_text(target, data) if target.is_file() else None
    atomic_write_text(target, text if text is not None else tomli_w.dumps(data))
    return target


def edited_text(file: Path, data: dict) -> str | None:
    """The text of `file` edited so that it means `data`; None when the file cannot be parsed.

    A value is written only where it differs from what the file means now (its own value or
    the default it leaves out): comments, order and omitted defaults stay as they are.
    """
    try:
        text = file.read_text(encoding="utf-8")
        doc, current = tomlkit.parse(text), tomllib.loads(text)
    except (OSError, UnicodeDecodeError, TOMLKitError, tomllib.TOMLDecodeError):
        return None
    meant = project_to_dict(from_dict(current, file.parent, []))
    _edit_table(doc, meant, data)
    return doc.as_string()


def _edit_table(table: Any, meant: dict, new: dict, cls: type | None = Project) -> None:
    """Edit a tomlkit table that means `meant` (every field, defaults filled in) into `new`.

    `cls` is the table's dataclass (None for a plain table): a list of its tables that grows
    gets new items written with only what differs from that item type's defaults.
    """
    for key in [key for key in table if key not in new]:
        del table[key]  # a setting the new project no longer has (another optimizer's, say)
    for key, value in new.items():
        old = meant.get(key)
        if key in NAMED and isinstance(old, dict) and isinstance(value, dict) and old.get("name") != value.get("name"):
            old = {"name": old.get("name"), **NAMED[key].REGISTRY.get(value.get("name"), {})}
        part = _part_type(cls, key)
        if key not in table:
            if value != old:
                table[key] = _written(value, old, key in NAMED)
        elif isinstance(value, dict) and isinstance(table[key], dict):
            _edit_table(table[key], old if isinstance(old, dict) else {}, value, part)
        elif _same_tables(table[key], value):
            _edit_list(table[key], old if isinstance(old, list) else [], value, part)
        elif _plain(table[key]) != value:
            table[key] = value


def _part_type(cls: type | None, key: str) -> type | None:
    """The dataclass of a field's table, or of its list's items; None for plain values."""
    hint = field_types(cls).get(key) if cls is not None and is_dataclass(cls) else None
    hint = typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint
    return hint if is_dataclass(hint) and hint not in (OptimizerConfig, SchedulerConfig) else None


def _plain(item: Any) -> Any:
    """A tomlkit value as plain Python (booleans already come plain)."""
    return item.unwrap() if hasattr(item, "unwrap") else item


def _same_tables(items: Any, value: Any) -> bool:
    """Whether a list in the file and its new value are lists of tables (edited item by item)."""
    return isinstance(value, list) and isinstance(items, list) and all(isinstance(v, dict) for v in [*items, *value])


def _edit_list(items: Any, meant: list, new: list, cls: type | None) -> None:
    while len(items) > len(new):
        del items[len(items) - 1]
    for i, value in enumerate(new):
        if i < len(items):
            _edit_table(items[i], meant[i] if i < len(meant) else {}, value, cls)
        else:
            items.append(_written(value, project_to_dict(cls()) if cls is not None else None))


def _written(value: Any, meant: Any, named: bool = False) -> Any:
    """A new table written with only the settings that differ from what was meant (or all);
    an optimizer's or scheduler's table (`named`) always says its name."""
    if isinstance(value, dict) and isinstance(meant, dict):
        kept = {k: v for k, v in value.items() if v != meant.get(k) or (named and k == "name")}
        return {k: _written(v, meant.get(k), k in NAMED) for k, v in kept.items()}
    return value


def new_project(name: str, template: str = "blank", directory: str | Path = "projects") -> Path:
    """Create `directory/name/project.toml` from a template; never overwrites. Returns the directory."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise LLMLabError(
            Problem(
                "name",
                "must be a plain directory name (letters, digits, '_', '-', '.'; "
                f"not starting with '.' or '-', at most 64 characters), got {name!r}",
            )
        )
    source = TEMPLATES_DIR / f"{template}.toml"
    if not source.is_file():
        known = ", ".join(sorted(p.stem for p in TEMPLATES_DIR.glob("*.toml")))
        raise LLMLabError(Problem("template", f"no template {template!r} (available: {known})"))
    root = Path(directory) / name
    text = _with_name(source.read_text(encoding="utf-8"), name)
    problems = project_problems(tomllib.loads(text), root)
    if problems:
        raise LLMLabError([Problem(f"template {template}", str(problem)) for problem in problems])
    try:
        root.mkdir(parents=True)
    except FileExistsError:
        raise LLMLabError(
            f"{root}: already exists; a project is never overwritten (pick another name, or delete it yourself)"
        ) from None
    atomic_write_text(root / PROJECT_FILE, text)
    return root


def _with_name(text: str, name: str) -> str:
    """The template text with its top-level `name = ...` line set to `name` (comments kept)."""
    head, sep, tail = text.partition("\n[")
    line = tomli_w.dumps({"name": name}).strip()
    head, count = re.subn(r"(?m)^name\s*=.*$", line, head, count=1)
    return (head if count else f"{line}\n{head}") + sep + tail
