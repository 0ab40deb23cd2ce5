"""The rules of the sampling settings a person types (chat, `llmlab generate`): each one's range
and the line that says it, checked without torch so the app can refuse a bad value before asking
a worker (engine/generation.py applies them to transformers' GenerationConfig).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from engine.project.problems import Problem


def plain_name(key: str) -> str:
    """A sampling setting as the app's chat requests name it (`temperature`)."""
    return key


def flag_name(key: str) -> str:
    """A sampling setting as `llmlab generate` spells it (`--temperature`)."""
    return "--" + key.replace("_", "-")


def _finite(value: Any, integer: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        return False
    return integer or math.isfinite(value)


# each setting: (whole numbers only, the rule it must meet, the line that says so)
SAMPLING_RULES: dict[str, tuple[bool, Callable[[float], bool], str]] = {
    "max_new_tokens": (True, lambda v: v >= 1, "must be a whole number, at least 1"),
    "temperature": (False, lambda v: v >= 0, "must be >= 0 (0 is greedy), a finite number"),
    "top_k": (True, lambda v: v >= 0, "must be a whole number >= 0 (0 keeps every token)"),
    "top_p": (False, lambda v: 0 < v <= 1, "must be in (0, 1]"),
    "repetition_penalty": (False, lambda v: v > 0, "must be > 0 (1 is none), a finite number"),
}


def sampling_problems(settings: dict[str, Any], name: Callable[[str], str] = plain_name) -> list[Problem]:
    """A Problem for each setting that is not a finite number in its range (nan, inf, -1, "x")."""
    problems = []
    for key, value in settings.items():
        integer, allowed, rule = SAMPLING_RULES[key]
        if not (_finite(value, integer) and allowed(value)):
            problems.append(Problem(name(key), f"{rule}, got {value!r}"))
    return problems
