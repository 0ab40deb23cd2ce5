"""The TOML codec: parsed project.toml dicts → Project dataclasses (types and unknown keys
checked, every problem collected) and back to TOML-ready dicts.

Bad or missing values keep their defaults, so a file with problems still gives a Project that
the rules (rules.py) can check further; `BAD` marks a value that did not convert.
"""

from __future__ import annotations

import copy
import functools
import types
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from engine.project.problems import LLMLabError, Problem
from engine.project.schema import RENAMED, ModelConfig, OptimizerConfig, Project, SchedulerConfig

_TYPE_NAMES = {
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    str: "a string",
    list: "a list",
    dict: "a table",
}
BAD = object()


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def toml_fields(cls: type) -> list[str]:
    return [f.name for f in fields(cls) if f.name != "root"]


def join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def coerce(value: Any, hint: Any, where: str, problems: list[Problem]) -> Any:
    """`value` as type `hint`, or BAD after recording the problem."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (OptimizerConfig, SchedulerConfig):
        return _build_named(hint, value, where, problems)
    if is_dataclass(hint):
        return _build(hint, value, where, problems)
    if origin is list:
        if not isinstance(value, list):
            problems.append(Problem(where, f"expected a list, got {value!r}"))
            return BAD
        items = [coerce(item, args[0], join(where, i), problems) for i, item in enumerate(value)]
        return [item for item in items if item is not BAD]  # the good ones, still checked
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(Problem(where, f"expected a table, got {value!r}"))
            return BAD
        items = {k: coerce(v, args[1], join(where, k), problems) for k, v in value.items()}
        return BAD if BAD in items.values() else items
    if origin in (typing.Union, types.UnionType):
        if any(is_type(value, a) for a in args):
            return value
        problems.append(Problem(where, f"expected {type_name(hint)}, got {value!r}"))
        return BAD
    if is_type(value, hint):
        return float(value) if hint is float else value
    problems.append(Problem(where, f"expected {type_name(hint)}, got {value!r}"))
    return BAD


def is_type(value: Any, hint: Any) -> bool:
    base = typing.get_origin(hint) or hint
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, base)


def type_name(hint: Any) -> str:
    """A type in words, as the problems name it ("a whole number", "a string or a table")."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in typing.get_args(hint))
    return _TYPE_NAMES[typing.get_origin(hint) or hint]


def _build(cls: type, data: Any, where: str, problems: list[Problem]) -> Any:
    """An instance of dataclass `cls` from a TOML table; bad or missing values keep defaults."""
    if not isinstance(data, dict):
        problems.append(Problem(where, f"expected a table, got {data!r}"))
        data = {}
    known, declared = toml_fields(cls), field_types(cls)
    for key in data:
        if key not in known:
            at = join(where, key)
            renamed = f"renamed to {RENAMED[at]}" if at in RENAMED else None
            problems.append(Problem(at, renamed or f"unknown setting (known: {', '.join(known)})"))
    values = {}
    for name in known:
        if name in data:
            value = coerce(data[name], declared[name], join(where, name), problems)
            if value is not BAD:
                values[name] = value
    return cls(**values)


def _build_named(cls: type, data: Any, where: str, problems: list[Problem]) -> Any:
    """An OptimizerConfig / SchedulerConfig: `name`, then its settings over the defaults."""
    if not isinstance(data, dict):
        problems.append(Problem(where, f"expected a table, got {data!r}"))
        return cls()
    given = dict(data)
    name = given.pop("name", cls().name)
    if not isinstance(name, str):
        problems.append(Problem(f"{where}.name", f"expected a string, got {name!r}"))
        return cls()
    defaults = cls.REGISTRY.get(name)
    if defaults is None:
        return cls(name, given)  # validate_project names the choices
    options = copy.deepcopy(defaults)
    for key, value in given.items():
        if key in defaults:
            value = coerce(value, option_type(defaults[key]), join(where, key), problems)
            if value is not BAD:
                options[key] = value
        else:
            options[key] = value  # validate_project refuses it, listing the known settings
    return cls(name, options)


def option_type(default: Any) -> Any:
    return list[float] if isinstance(default, list) else type(default)


def _fill_kv_heads(data: dict) -> dict:
    """mqa and mha imply their kv-head count when the file leaves n_kv_heads out."""
    model = data.get("model")
    if not isinstance(model, dict) or "n_kv_heads" in model:
        return data
    attention, n_heads = model.get("attention"), model.get("n_heads", ModelConfig.n_heads)
    implied = {"mqa": 1, "mha": n_heads}.get(attention)
    if implied is None:
        return data
    return {**data, "model": {**model, "n_kv_heads": implied}}


def from_dict(data: Any, root: Path, problems: list[Problem]) -> Project:
    """The Project a parsed file means (bad values at their defaults), its problems added to `problems`."""
    if isinstance(data, dict):
        data = _fill_kv_heads(data)
    project = _build(Project, data, "", problems)
    project.root = Path(root)
    return project


def project_from_dict(data: dict, root: str | Path = ".") -> Project:
    """A Project from a parsed project.toml; raises LLMLabError listing type and key problems."""
    problems: list[Problem] = []
    project = from_dict(data, Path(root), problems)
    if problems:
        raise LLMLabError(problems)
    return project


def project_to_dict(project: Any) -> Any:
    """The TOML-ready dict of a Project (or of any part of one)."""
    if isinstance(project, (OptimizerConfig, SchedulerConfig)):
        return {"name": project.name, **copy.deepcopy(project.options)}
    if is_dataclass(project):
        return {name: project_to_dict(getattr(project, name)) for name in toml_fields(type(project))}
    if isinstance(project, list):
        return [project_to_dict(item) for item in project]
    if isinstance(project, dict):
        return {key: project_to_dict(value) for key, value in project.items()}
    return project
