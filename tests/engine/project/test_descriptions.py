"""Each field's help comes from the schema: every field of project.toml has a meaning, and its
rule is written with the words validation uses; a rule across fields names all of them."""

from __future__ import annotations

import typing
from dataclasses import fields, is_dataclass

import pytest

from engine.project import OPTIMIZER_DEFAULTS, SCHEDULER_DEFAULTS, Project, project_problems
from engine.project.codec import field_types
from engine.project.descriptions import field_help


def _paths(cls: type, prefix: str = "") -> list[str]:
    """Every plain field of project.toml under `cls`, as a dotted path (lists of tables at [0])."""
    paths = []
    for f in fields(cls):
        hint, path = field_types(cls)[f.name], f"{prefix}{f.name}"
        args = typing.get_args(hint)
        if f.name == "root" or f.name in ("optimizer", "scheduler"):
            continue
        if is_dataclass(hint):
            paths += _paths(hint, f"{path}.")
        elif args and is_dataclass(args[0]):
            paths += _paths(args[0], f"{path}[0].")
        else:
            paths.append(path)
    return paths


@pytest.mark.parametrize("path", _paths(Project))
def test_every_field_has_a_meaning_and_a_rule(path):
    text = field_help(path)
    meaning, _, rule = text.partition(" — ")
    assert meaning and rule, path


@pytest.mark.parametrize(
    "table, key",
    [
        (t, k)
        for t, registry in (("optimizer", OPTIMIZER_DEFAULTS), ("scheduler", SCHEDULER_DEFAULTS))
        for o in registry.values()
        for k in ["name", *o]
    ],
)
def test_every_optimizer_and_scheduler_setting_has_a_meaning(table, key):
    meaning, _, rule = field_help(f"sft.{table}.{key}").partition(" — ")
    assert meaning and rule


def test_help_states_the_rule_validation_applies():
    assert field_help("model.d_model") == "the width of each token's vector (features) — a whole number, at least 1"
    assert field_help("dpo.steps").startswith("optimizer steps to train — ")  # inherited from StageConfig
    assert field_help("pretrain.optimizer.betas").endswith("a list of numbers, each in [0, 1)")
    assert field_help("model.attention").endswith("one of mha, mqa, gqa")
    assert field_help("pretrain.datasets") is None and field_help("model.nope") is None


def test_letters_in_a_number_field_are_named_in_words():
    problems = project_problems({"model": {"d_model": "ab"}}, ".")
    assert [str(p) for p in problems] == ["model.d_model: expected a whole number, got 'ab'"]


def test_a_rule_across_fields_names_every_field():
    problems = project_problems({"model": {"n_heads": 8, "n_kv_heads": 3, "attention": "gqa"}}, ".")
    assert [(p.field, p.also) for p in problems] == [("model.n_heads", ("model.n_kv_heads",))]
