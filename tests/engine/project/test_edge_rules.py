"""Configs that used to validate and then crash or go nan: each is now one line naming the field."""

from __future__ import annotations

import pytest

from engine import rewards
from engine.project import Project
from engine.project.rules import _size_problems, _system_memory, validate_project
from engine.project.schema import REWARD_RULE_OPTIONS, REWARD_RULES, OptimizerConfig


def lines(project: Project) -> list[str]:
    return [str(p) for p in validate_project(project)]


def with_(**changes) -> Project:
    project = Project()
    for path, value in changes.items():
        *parents, key = path.split("__")
        target = project
        for name in parents:
            target = getattr(target, name)
        setattr(target, key, value)
    return project


@pytest.mark.parametrize(
    "project, line",
    [
        (with_(seed=-1), "seed: must be in [0, 4294967295], got -1"),
        (with_(seed=2**32), "seed: must be in [0, 4294967295], got 4294967296"),
        (with_(model__max_seq_len=2**63 - 1), "model.max_seq_len: must be in [1, 1048576], got 9223372036854775807"),
        (with_(model__rope_theta=1e-300), "model.rope_theta: must be in [1, 1000000000000.0], got 1e-300"),
        (with_(model__init_std=1e30), "model.init_std: must be in (0, 1], got 1e+30"),
    ],
)
def test_out_of_range_model_and_seed_values_are_refused(project, line):
    assert lines(project) == [line]


def test_muon_ns_steps_stops_below_torchs_limit():
    project = Project()
    project.pretrain.optimizer = OptimizerConfig.default("muon")
    project.pretrain.optimizer.options["ns_steps"] = 1000
    assert lines(project) == ["pretrain.optimizer.ns_steps: must be in [1, 100), got 1000"]
    project.pretrain.optimizer.options["ns_steps"] = 99
    assert lines(project) == []


def test_weight_decay_is_bounded_and_lr_times_decay_stays_below_1():
    project = Project()
    project.pretrain.optimizer = OptimizerConfig.default("lion")
    project.pretrain.optimizer.options["weight_decay"] = 1e300
    assert lines(project) == ["pretrain.optimizer.weight_decay: must be in [0, 10], got 1e+300"]
    project.pretrain.optimizer.options["weight_decay"] = 5.0
    project.pretrain.lr = 0.5
    assert lines(project) == [
        "pretrain.optimizer.weight_decay: times pretrain.lr (0.5) must stay below 1 "
        "(each step scales the weights by 1 - lr x decay), got 5.0"
    ]
    project.pretrain.lr = 0.1
    assert lines(project) == []


def test_reward_rules_refuse_unknown_keys_and_negative_weights():
    project = Project()
    project.grpo.reward_rules = [
        {"name": "exact_match", "wieght": 1.0},
        {"name": "regex", "pattern": "x", "weight": -1},
        {"name": "length", "target": 0},
        {"name": "length", "target": 10, "weight": float("inf")},
    ]
    assert lines(project) == [
        "grpo.reward_rules[0].wieght: not a setting of the exact_match rule (its settings: name, weight)",
        "grpo.reward_rules[1].weight: must be a finite number of at least 0, got -1",
        "grpo.reward_rules[2].target: must be a whole number of words, at least 1, got 0",
        "grpo.reward_rules[3].weight: must be a finite number of at least 0, got inf",
    ]
    project.grpo.reward_rules = ["exact_match", {"name": "regex", "pattern": "\\d", "weight": 0.5}]
    assert lines(project) == []


def test_the_schemas_reward_rule_settings_are_what_the_rewards_accept():
    assert set(REWARD_RULES) == set(rewards.RULES)
    assert {name: set(keys) for name, keys in REWARD_RULE_OPTIONS.items()} == rewards.RULE_OPTIONS


def test_a_model_that_cannot_fit_in_system_memory_is_refused_by_size():
    assert _system_memory() and _system_memory() > 2**20
    assert _size_problems(Project()) == []
    huge = with_(model__d_model=2**30)
    [problem] = _size_problems(huge, memory=64 * 2**30)
    assert problem.field == "model.d_model"
    assert problem.message.startswith("1073741824 with model.n_layers 4 is ")
    assert "of system memory" in problem.message and "64.0 GiB" in problem.message
    deep = with_(model__n_layers=100_000)
    [problem] = _size_problems(deep, memory=64 * 2**30)
    assert "model.n_layers 100000 is 75,418,648,832 parameters" in problem.message
    assert lines(deep)[0].startswith("model.d_model: 256 with model.n_layers 100000")


def test_the_closed_form_parameter_count_matches_sizing():
    from engine.project import sizing

    project = with_(model__n_layers=3)
    [problem] = _size_problems(project, memory=1)
    count = sizing.parameter_count(project.model, sizing.padded_vocab_size(project.tokenizer.vocab_size))
    assert f"is {count:,} parameters" in problem.message


def test_position_tables_past_system_memory_are_refused_by_max_seq_len():
    project = with_(
        model__positional_encoding="sinusoidal", model__max_seq_len=2**20, model__d_model=4096, model__n_heads=8
    )
    weights = [p for p in _size_problems(project, memory=2**60)]
    assert weights == []
    [problem] = _size_problems(project, memory=14 * 2**30)  # the table alone: 2^20 x 4096 x 4 bytes = 16 GiB
    assert problem.field == "model.max_seq_len" and "16.0 GiB" in problem.message


def test_the_memory_settings_are_checked_by_name():
    assert lines(with_(dpo__fused_loss="fast")) == ["dpo.fused_loss: must be one of auto, chunked, plain, got 'fast'"]
    assert lines(with_(grpo__fused_loss="chunked", grpo__activation_checkpointing=True)) == []
