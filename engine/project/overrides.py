"""`--set` overrides both ways: apply `dotted.path=value` lines to a parsed project.toml, and find
the lines that turn one parsed project into another (what the app shows as the `llmlab run` line).

Lists are indexed by number (`pretrain.datasets.0.weight` or `pretrain.datasets[0].weight`).
Setting an optimizer's or scheduler's `name` to another one resets its table to that one's
defaults, in both directions.
"""

from __future__ import annotations

import copy
import re
import tomllib
import typing
from dataclasses import is_dataclass
from typing import Any

import tomli_w

from engine.project.codec import field_types, toml_fields
from engine.project.problems import LLMLabError, Problem
from engine.project.schema import RENAMED, OptimizerConfig, Project, SchedulerConfig

# Tables whose settings depend on their `name`, by key.
NAMED = {"optimizer": OptimizerConfig, "scheduler": SchedulerConfig}


def parse_value(text: str) -> Any:
    """A TOML value written inline (`1e-3`, `[0.9, 0.95]`, `{a = "b"}`); ValueError if it is not one."""
    if not text.strip():
        raise ValueError("a value is required")
    try:
        return tomllib.loads(f"value = {text.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        raise ValueError(f"not a TOML value: {text.strip()!r}") from None


def override_value(text: str) -> Any:
    """What `--set key=text` sets: the TOML value, or else the text itself as a string."""
    try:
        return parse_value(text)
    except ValueError:
        return text.strip()


def format_value(value: Any) -> str:
    """`value` as an inline TOML value (the inverse of parse_value)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value})[4:].strip()


def override_text(value: Any) -> str:
    """`value` as `--set` takes it: a plain word stays bare (override_value reads it back as a
    string), anything else is written as TOML."""
    if isinstance(value, str) and value and value == value.strip():
        try:
            parse_value(value)
        except ValueError:
            return value
    return format_value(value)


def _key(key: str) -> str:
    return tomli_w.dumps({key: 0}).split(" = ")[0]


def apply_overrides(data: dict, sets: list[str]) -> dict:
    """A copy of `data` with each "dotted.path=value" applied; LLMLabError lists every bad line."""
    data, problems = copy.deepcopy(data), []
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        path = [int(s) if s.isdigit() else s for s in re.sub(r"\[(\d+)\]", r".\1", key).split(".")]
        problem = None if sep and key else "expected key=value, e.g. pretrain.steps=20"
        problem = problem or _override_path_problem(path) or _set(data, path, override_value(raw))
        if problem:
            problems.append(Problem(f"--set {key or item}", problem))
    if problems:
        raise LLMLabError(problems)
    return data


def set_overrides(saved: Any, edited: Any, path: str) -> list[str]:
    """The `path=value` lines that turn `saved` into `edited` through apply_overrides."""
    if saved == edited:
        return []
    if isinstance(saved, dict) and isinstance(edited, dict):
        tail = path.rsplit(".", 1)[-1]
        if tail in NAMED and saved.get("name") != edited.get("name") and "name" in edited:
            lines = [f"{path}.name={override_text(edited['name'])}"]
            defaults = {"name": edited["name"], **NAMED[tail].REGISTRY.get(edited["name"], {})}
            return lines + set_overrides(defaults, edited, path)
        if saved.keys() == edited.keys():
            return [line for key in edited for line in set_overrides(saved[key], edited[key], f"{path}.{key}")]
    if isinstance(saved, list) and isinstance(edited, list) and len(saved) == len(edited):
        if all(isinstance(item, dict) for item in saved + edited):
            pairs = enumerate(zip(saved, edited))
            return [line for i, (a, b) in pairs for line in set_overrides(a, b, f"{path}[{i}]")]
    return [f"{path}={override_text(edited)}"]


def _override_path_problem(path: list[str | int]) -> str | None:
    hint: Any = Project
    for depth, segment in enumerate(path):
        last, where = depth == len(path) - 1, ".".join(map(str, path[:depth]))
        if hint in (OptimizerConfig, SchedulerConfig) or typing.get_origin(hint) is dict:
            return None if last and isinstance(segment, str) else f"{where} holds plain settings only"
        if typing.get_origin(hint) is list:
            if not isinstance(segment, int):
                return f"{where} is a list: index it with a number, e.g. {where}.0"
            hint = typing.get_args(hint)[0]
        elif is_dataclass(hint) and segment in toml_fields(hint):
            hint = field_types(hint)[segment]
        elif (full := ".".join(map(str, path[: depth + 1]))) in RENAMED:
            return f"renamed to {RENAMED[full]}"
        else:
            known = ", ".join(toml_fields(hint)) if is_dataclass(hint) else "none"
            return f"unknown setting (known{' in ' + where if where else ''}: {known})"
    return None


def _set(data: dict, path: list[str | int], value: Any) -> str | None:
    """Set `value` at `path` inside `data`, creating tables; a problem or None."""
    node: Any = data
    for depth, segment in enumerate(path[:-1]):
        where = ".".join(map(str, path[: depth + 1]))
        if isinstance(segment, int):
            if not isinstance(node, list) or segment >= len(node):
                return f"{where}: no such entry ({len(node) if isinstance(node, list) else 0} in the list)"
            node = node[segment]
        else:
            node = node.setdefault(segment, {})
            if not isinstance(node, (dict, list)):
                return f"{where} is {node!r}, not a table"
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            return f"no such entry ({len(node) if isinstance(node, list) else 0} in the list)"
    elif last == "name" and len(path) >= 2 and path[-2] in NAMED:
        if node.get("name", NAMED[path[-2]]().name) != value:
            node.clear()  # another optimizer / scheduler: its own defaults, not the old settings
    node[last] = value
    return None
