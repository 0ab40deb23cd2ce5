"""What each field of project.toml means and allows, in words, from the schema alone.

`field_help("model.d_model")` gives the field's meaning and unit (its `help` in schema.py, or
OPTION_HELP for an optimizer's / scheduler's own settings) and its rule, written from the same
type names (codec.py) and `Range` / choices that validation reports. The app shows it for the
focused field; `llmlab validate` prints it under the problems.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any

from engine.project.codec import field_types, toml_fields, type_name
from engine.project.schema import (
    OPTIMIZER_HELP,
    OPTION_CHOICES,
    OPTION_HELP,
    OPTION_RULES,
    SCHEDULER_HELP,
    OptimizerConfig,
    Project,
    Range,
    SchedulerConfig,
)

NAMED_HELP = {OptimizerConfig: OPTIMIZER_HELP, SchedulerConfig: SCHEDULER_HELP}


def field_help(path: str) -> str | None:
    """ "meaning — rule" for a dotted path (`sft.lora.r`, `pretrain.datasets[0].weight`,
    `pretrain.optimizer.betas`); None when the path names no field."""
    segments = [s for s in re.sub(r"\[\d+\]", "", path).split(".") if s]
    cls: Any = Project
    for depth, segment in enumerate(segments):
        last = depth == len(segments) - 1
        if cls in NAMED_HELP:
            return _named_help(cls, segment) if last else None
        if not is_dataclass(cls) or segment not in toml_fields(cls):
            return None
        hint = field_types(cls)[segment]
        nested = is_dataclass(hint) or any(is_dataclass(arg) for arg in typing.get_args(hint))
        if last and not nested:
            meaning, rule, choices = _metadata(cls, segment)
            return _sentence(meaning, _rule_text(hint, rule, choices))
        if last:
            return None  # a table, not a field
        cls = typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint
    return None


def _metadata(cls: type, name: str) -> tuple[str, Range | None, tuple | None]:
    """The field's help (from the nearest class in the MRO that gives one), rule and choices."""
    own = {f.name: f for f in fields(cls)}[name]
    meaning = ""
    for base in cls.__mro__:
        if is_dataclass(base):
            declared = {f.name: f for f in fields(base)}.get(name)
            if declared is not None and declared.metadata.get("help"):
                meaning = declared.metadata["help"]
                break
    return meaning, own.metadata.get("rule"), own.metadata.get("choices")


def _named_help(cls: type, key: str) -> str | None:
    if key == "name":
        return _sentence(NAMED_HELP[cls], _rule_text(str, None, tuple(cls.REGISTRY)))
    defaults = [options[key] for options in cls.REGISTRY.values() if key in options]
    if not defaults:
        return None
    hint = list[float] if isinstance(defaults[0], list) else type(defaults[0])
    return _sentence(OPTION_HELP.get(key, ""), _rule_text(hint, OPTION_RULES.get(key), OPTION_CHOICES.get(key)))


def _rule_text(hint: Any, rule: Range | None, choices: tuple | None) -> str:
    if choices:
        return "one of " + ", ".join(str(c) or '""' for c in choices)
    if typing.get_origin(hint) is list:
        item = typing.get_args(hint)[0]
        kind = "a list" if item is Any else f"a list of {_plural(item)}"
        return kind + (f", each {rule.describe()}" if rule else "")
    kind = type_name(hint)
    return f"{kind}, {rule.describe()}" if rule else kind


def _plural(hint: Any) -> str:
    names = {int: "whole numbers", float: "numbers", str: "strings", bool: "true / false"}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(type_name(arg).split(" ", 1)[1] + "s" for arg in typing.get_args(hint))
    return names.get(hint, "values")


def _sentence(meaning: str, rule: str) -> str:
    return f"{meaning} — {rule}" if meaning else rule
