"""The project.toml schema: defaults, round trips, validation messages, overrides, atomic saves."""

from __future__ import annotations

import copy
import os
import tomllib
from pathlib import Path

import pytest

from engine.project import (
    OPTIMIZER_DEFAULTS,
    SCHEDULER_DEFAULTS,
    TEMPLATES_DIR,
    OptimizerConfig,
    Project,
    SchedulerConfig,
    apply_overrides,
    fileio,
    load_project,
    new_project,
    project_from_dict,
    project_problems,
    project_to_dict,
    save_project,
    validate_project,
)
from engine.project.problems import LLMLabError


def write(tmp_path, text: str):
    (tmp_path / "project.toml").write_text(text, encoding="utf-8")
    return tmp_path


def problems_of(data: dict) -> list[str]:
    try:
        return [str(p) for p in validate_project(project_from_dict(data))]
    except LLMLabError as error:
        return error.lines


def test_blank_project_is_valid_and_round_trips(tmp_path):
    project = Project(root=tmp_path)
    assert validate_project(project) == []
    data = project_to_dict(project)
    assert "root" not in data
    assert project_from_dict(data, tmp_path) == project
    save_project(project)
    assert load_project(tmp_path) == project
    assert load_project(tmp_path / "project.toml").root == tmp_path


def test_empty_file_is_the_defaults(tmp_path):
    assert load_project(write(tmp_path, "")) == Project(root=tmp_path)


def test_blank_template_is_valid_and_read_as_written():
    data = tomllib.loads((TEMPLATES_DIR / "blank.toml").read_text())
    project = project_from_dict(data)
    assert validate_project(project) == []
    assert project.pretrain.datasets[0].path == data["pretrain"]["datasets"][0]["path"]
    assert project.sft.init == "pretrain" and project.dpo.init == "sft"


def test_stage_defaults():
    project = Project()
    assert project.sft.lr < project.pretrain.lr
    assert project.sft.assistant_only is True and project.sft.packing is False
    assert (project.dpo.beta, project.dpo.loss_type, project.dpo.reference) == (0.1, "sigmoid", "")
    assert (project.grpo.loss_type, project.grpo.scale_rewards, project.grpo.clip_range_high) == ("dapo", "group", 0.0)
    assert project.pretrain.optimizer == OptimizerConfig(
        "adamw", {"betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1}
    )
    assert project.stage("ppo") is project.ppo
    with pytest.raises(LLMLabError, match=r"stage: must be one of pretrain, sft, dpo, ppo, grpo, got 'rl'"):
        project.stage("rl")


@pytest.mark.parametrize("name", sorted(OPTIMIZER_DEFAULTS))
def test_every_optimizer_default_is_valid_and_round_trips(name):
    data = {"pretrain": {"optimizer": {"name": name}}}
    project = project_from_dict(data)
    assert project.pretrain.optimizer == OptimizerConfig.default(name)
    assert validate_project(project) == []
    assert project_from_dict(project_to_dict(project)) == project


@pytest.mark.parametrize("name", sorted(SCHEDULER_DEFAULTS))
def test_every_scheduler_default_is_valid(name):
    project = project_from_dict({"sft": {"scheduler": {"name": name}}})
    assert project.sft.scheduler == SchedulerConfig.default(name)
    assert validate_project(project) == []


def test_optimizer_settings_fill_over_defaults():
    project = project_from_dict({"pretrain": {"optimizer": {"name": "lion", "weight_decay": 1}}})
    assert project.pretrain.optimizer.options == {"betas": [0.9, 0.99], "weight_decay": 1.0}


BROKEN = [
    ({"model": {"d_model": 100, "n_heads": 8}}, "model.d_model: must be divisible by model.n_heads (8), got 100"),
    (
        {"model": {"n_heads": 8, "n_kv_heads": 3}},
        "model.n_heads: must be divisible by model.n_kv_heads (3) for gqa, got 8",
    ),
    (
        {"model": {"attention": "mqa", "n_kv_heads": 2}},
        'model.n_kv_heads: attention "mqa" means n_kv_heads = 1, got 2 (set it to 1, or leave it out)',
    ),
    (
        {"model": {"attention": "mha", "n_heads": 8, "n_kv_heads": 2}},
        'model.n_kv_heads: attention "mha" means n_kv_heads = 8, got 2 (set it to 8, or leave it out)',
    ),
    (
        {"model": {"d_model": 36, "n_heads": 4, "positional_encoding": "rope"}},
        "model.d_model: rope needs an even head size (d_model / n_heads), got 36 / 4 = 9",
    ),
    (
        {"model": {"d_model": 36, "n_heads": 4, "positional_encoding": "yarn"}},
        "model.d_model: yarn needs an even head size (d_model / n_heads), got 36 / 4 = 9",
    ),
    ({"model": {"n_layers": 0}}, "model.n_layers: must be at least 1, got 0"),
    ({"model": {"d_ff": -5}}, "model.d_ff: must be at least 1, got -5"),
    ({"model": {"attention": "flash"}}, "model.attention: must be one of mha, mqa, gqa, got 'flash'"),
    (
        {"model": {"positional_encoding": "learned"}},
        "model.positional_encoding: must be one of sinusoidal, rope, alibi, yarn, got 'learned'",
    ),
    (
        {"model": {"normalization": "batchnorm"}},
        "model.normalization: must be one of layernorm, rmsnorm, got 'batchnorm'",
    ),
    (
        {"model": {"activation": "tanh"}},
        "model.activation: must be one of relu, gelu, leaky_relu, silu, swiglu, got 'tanh'",
    ),
    ({"model": {"yarn_factor": 1.0}}, "model.yarn_factor: must be greater than 1, got 1.0"),
    ({"model": {"dropout": 1.0}}, "model.dropout: must be in [0, 1), got 1.0"),
    ({"model": {"d_model": "abc"}}, "model.d_model: expected a whole number, got 'abc'"),
    ({"model": {"bias": "no"}}, "model.bias: expected true or false, got 'no'"),
    ({"model": {"d_model": 2.5}}, "model.d_model: expected a whole number, got 2.5"),
    ({"pretrain": {"lr": 0}}, "pretrain.lr: must be greater than 0, got 0.0"),
    ({"sft": {"lr": -1e-3}}, "sft.lr: must be greater than 0, got -0.001"),
    ({"pretrain": {"steps": 0}}, "pretrain.steps: must be at least 1, got 0"),
    ({"pretrain": {"seq_len": 1024}}, "pretrain.seq_len: must not exceed model.max_seq_len (512), got 1024"),
    (
        {"pretrain": {"datasets": [{"path": "a", "weight": -1}]}},
        "pretrain.datasets[0].weight: must be at least 0, got -1.0",
    ),
    (
        {"pretrain": {"datasets": [{"path": "a", "weight": 0}, {"path": "b", "weight": 0.0}]}},
        "pretrain.datasets: the weights must not all be 0",
    ),
    (
        {"sft": {"datasets": [{"split": "train"}]}},
        "sft.datasets[0].path: required (a hub id, or a local file or folder)",
    ),
    ({"sft": {"lora": {"r": 0}}}, "sft.lora.r: must be at least 1, got 0"),
    (
        {"dpo": {"lora": {"preset": "custom"}}},
        'dpo.lora.target_modules: the custom preset needs at least one module name, e.g. ["q_proj", "v_proj"]',
    ),
    (
        {"dpo": {"lora": {"preset": "most"}}},
        "dpo.lora.preset: must be one of minimal, attention_only, ffn_only, all, custom, got 'most'",
    ),
    ({"dpo": {"loss_type": "kto"}}, "dpo.loss_type: must be one of sigmoid, hinge, ipo, got 'kto'"),
    (
        {"dpo": {"loss_type": "hinge", "label_smoothing": 0.1}},
        "dpo.label_smoothing: only the sigmoid loss uses it; set it to 0 for hinge, got 0.1",
    ),
    (
        {"dpo": {"loss_type": "ipo", "label_smoothing": 0.2}},
        "dpo.label_smoothing: only the sigmoid loss uses it; set it to 0 for ipo, got 0.2",
    ),
    ({"grpo": {"loss_type": "ppo"}}, "grpo.loss_type: must be one of grpo, dr_grpo, dapo, got 'ppo'"),
    ({"grpo": {"scale_rewards": "all"}}, "grpo.scale_rewards: must be one of group, batch, none, got 'all'"),
    ({"grpo": {"group_size": 1}}, "grpo.group_size: must be at least 2, got 1"),
    ({"ppo": {"gamma": 1.5}}, "ppo.gamma: must be in [0, 1], got 1.5"),
    (
        {"ppo": {"reward_rules": ["exact"]}},
        "ppo.reward_rules[0]: must name one of exact_match, regex, length, got 'exact'",
    ),
    (
        {"grpo": {"reward_rules": [{"name": "regex", "pattern": "("}]}},
        "grpo.reward_rules[0].pattern: not a valid regular expression "
        "(missing ), unterminated subpattern at position 0)",
    ),
    ({"grpo": {"reward_rules": [3]}}, "grpo.reward_rules[0]: expected a string or a table, got 3"),
    (
        {"pretrain": {"optimizer": {"name": "adamw", "momentum": 0.9}}},
        "pretrain.optimizer.momentum: not a setting of adamw (its settings: betas, eps, weight_decay)",
    ),
    (
        {"pretrain": {"optimizer": {"name": "sgd"}}},
        "pretrain.optimizer.name: must be one of adamw, adafactor, lion, sophia, muon, got 'sgd'",
    ),
    ({"pretrain": {"optimizer": {"betas": [0.9, 1.0]}}}, "pretrain.optimizer.betas: must be in [0, 1), got [0.9, 1.0]"),
    ({"pretrain": {"optimizer": {"betas": [0.9]}}}, "pretrain.optimizer.betas: must be a list of 2 numbers, got [0.9]"),
    ({"pretrain": {"optimizer": {"eps": "small"}}}, "pretrain.optimizer.eps: expected a number, got 'small'"),
    (
        {"pretrain": {"optimizer": {"name": "adafactor", "beta2_decay": 0.5}}},
        "pretrain.optimizer.beta2_decay: must be at most 0, got 0.5",
    ),
    (
        {"sft": {"optimizer": {"name": "muon", "adjust_lr_fn": "x"}}},
        "sft.optimizer.adjust_lr_fn: must be one of original, match_rms_adamw, got 'x'",
    ),
    ({"sft": {"optimizer": {"name": "muon", "nesterov": 1}}}, "sft.optimizer.nesterov: expected true or false, got 1"),
    (
        {"pretrain": {"scheduler": {"name": "none", "min_lr": 0.1}}},
        "pretrain.scheduler.min_lr: not a setting of none (its settings: none)",
    ),
    (
        {"pretrain": {"scheduler": {"name": "cosine", "min_lr": 0.1}}},
        "pretrain.scheduler.min_lr: must not exceed pretrain.lr (0.001), got 0.1",
    ),
    ({"tokenizer": {"source": ""}}, 'tokenizer.source: must be "bytes", "bpe", a hub id or a local path, got \'\''),
    ({"tokenizer": {"vocab_size": 100}}, "tokenizer.vocab_size: must be at least 258, got 100"),
    (
        {"model": {"heads": 4}},
        "model.heads: unknown setting (known: positional_encoding, normalization, attention, "
        "activation, d_model, n_layers, n_heads, n_kv_heads, d_ff, max_seq_len, dropout, bias, tie_embeddings, "
        "rope_theta, yarn_factor, yarn_original_max_seq_len, init_std)",
    ),
    (
        {"rlhf": {}},
        "rlhf: unknown setting (known: name, seed, tokenizer, model, pretrain, sft, dpo, ppo, grpo, tracking)",
    ),
    ({"model": 5}, "model: expected a table, got 5"),
    ({"sft": {"datasets": {"path": "x"}}}, "sft.datasets: expected a list, got {'path': 'x'}"),
]


@pytest.mark.parametrize("data,line", BROKEN, ids=[line.split(":")[0] for _, line in BROKEN])
def test_each_broken_input_names_the_field_and_the_rule(data, line):
    assert line in problems_of(data)


def test_label_smoothing_is_allowed_with_the_sigmoid_loss():
    assert problems_of({"dpo": {"loss_type": "sigmoid", "label_smoothing": 0.1}}) == []


def test_kv_heads_follow_mqa_and_mha_when_left_out():
    assert project_from_dict({"model": {"attention": "mqa"}}).model.n_kv_heads == 1
    assert project_from_dict({"model": {"attention": "mha", "n_heads": 6, "d_model": 96}}).model.n_kv_heads == 6
    assert problems_of({"model": {"attention": "mha", "n_heads": 6, "d_model": 96}}) == []


def test_every_problem_is_reported_at_once(tmp_path):
    write(tmp_path, '[model]\nd_model = "abc"\nn_layers = 0\n[pretrain]\nlr = 0\n')
    with pytest.raises(LLMLabError) as error:
        load_project(tmp_path)
    assert error.value.lines == [
        "model.d_model: expected a whole number, got 'abc'",
        "model.n_layers: must be at least 1, got 0",
        "pretrain.lr: must be greater than 0, got 0.0",
    ]


def test_toml_syntax_error_names_file_line_and_reason(tmp_path):
    write(tmp_path, 'name = "x"\n[model]\nd_model = = 3\n')
    with pytest.raises(LLMLabError) as error:
        load_project(tmp_path)
    assert error.value.lines == [f"{tmp_path / 'project.toml'}: line 3, column 11: Invalid value"]


def test_missing_project_is_a_clear_error(tmp_path):
    with pytest.raises(LLMLabError, match="no project here"):
        load_project(tmp_path / "nope")


def test_loading_never_writes(tmp_path):
    text = "# my comment\n[pretrain]\nsteps = 5\n"
    write(tmp_path, text)
    load_project(tmp_path, ["pretrain.steps=7"])
    with pytest.raises(LLMLabError):
        load_project(tmp_path, ["pretrain.steps=-7"])
    assert (tmp_path / "project.toml").read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project.toml"]


def test_overrides_parse_toml_values_and_fall_back_to_strings():
    data = {"pretrain": {"datasets": [{"path": "a"}, {"path": "b"}]}}
    out = apply_overrides(
        data,
        [
            "pretrain.steps=20",
            "model.attention=mqa",
            'sft.sample_prompt="Once upon"',
            "sft.sample_prompt=Once upon",
            "pretrain.lr=3e-4",
            "pretrain.optimizer.betas=[0.8, 0.9]",
            "pretrain.datasets[1].weight=0.5",
            "pretrain.datasets.0.streaming=true",
            "model.bias = false",
        ],
    )
    assert out["pretrain"]["steps"] == 20 and out["pretrain"]["lr"] == 3e-4
    assert out["model"] == {"attention": "mqa", "bias": False}
    assert out["sft"]["sample_prompt"] == "Once upon"
    assert out["pretrain"]["optimizer"] == {"betas": [0.8, 0.9]}
    assert out["pretrain"]["datasets"] == [{"path": "a", "streaming": True}, {"path": "b", "weight": 0.5}]
    assert data == {"pretrain": {"datasets": [{"path": "a"}, {"path": "b"}]}}  # the input is left alone


def test_changing_the_optimizer_name_resets_its_settings():
    data = {"pretrain": {"optimizer": {"name": "adamw", "eps": 1e-6}, "scheduler": {"min_lr": 1e-5}}}
    out = apply_overrides(data, ["pretrain.optimizer.name=lion", "pretrain.scheduler.name=cosine"])
    assert out["pretrain"]["optimizer"] == {"name": "lion"}
    assert out["pretrain"]["scheduler"] == {"min_lr": 1e-5, "name": "cosine"}  # same name: kept
    assert validate_project(project_from_dict(out)) == []


def test_bad_overrides_are_refused_with_the_known_names():
    with pytest.raises(LLMLabError) as error:
        apply_overrides(
            {}, ["pretrain.stepz=1", "steps", "model.n_heads.x=1", "sft.datasets.0.path=x", "pretrain.datasets.path=x"]
        )
    assert error.value.lines[0].startswith("--set pretrain.stepz: unknown setting (known in pretrain: steps, ")
    assert error.value.lines[1:] == [
        "--set steps: expected key=value, e.g. pretrain.steps=20",
        "--set model.n_heads.x: unknown setting (known in model.n_heads: none)",
        "--set sft.datasets.0.path: sft.datasets.0: no such entry (0 in the list)",
        "--set pretrain.datasets.path: pretrain.datasets is a list: index it with a number, e.g. pretrain.datasets.0",
    ]


def test_save_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    project = Project(root=tmp_path)
    save_project(project)
    before = (tmp_path / "project.toml").read_bytes()
    project.pretrain.steps = 7

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", fail)
    with pytest.raises(OSError):
        save_project(project)
    assert (tmp_path / "project.toml").read_bytes() == before
    assert os.listdir(tmp_path) == ["project.toml"]


def test_resolve_paths_against_the_project(tmp_path):
    project = Project(root=tmp_path)
    (tmp_path / "data.txt").write_text("hi")
    assert project.resolve("data.txt") == tmp_path / "data.txt"
    assert project.resolve("/abs/x") == Path("/abs/x")
    assert project.local_path("data.txt") == tmp_path / "data.txt"
    assert project.local_path("roneneldan/TinyStories") is None


@pytest.mark.parametrize("name", ["", "a/b", "..", ".", ".hidden", "a b", "x\\y", "-x", "a" * 65, "../up"])
def test_new_refuses_names_that_are_not_plain_directory_names(tmp_path, name):
    with pytest.raises(LLMLabError, match="name: must be a plain directory name"):
        new_project(name, "blank", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_new_never_overwrites_and_sets_the_name(tmp_path):
    root = new_project("tiny_1", "blank", tmp_path)
    text = (root / "project.toml").read_text()
    assert text.startswith("# An LLM-Lab project")  # the template's comments are kept
    assert load_project(root).name == "tiny_1"
    (root / "project.toml").write_text(text + "\n# mine\n")
    with pytest.raises(LLMLabError, match="already exists; a project is never overwritten"):
        new_project("tiny_1", "blank", tmp_path)
    assert (root / "project.toml").read_text().endswith("# mine\n")


def test_new_with_a_missing_template_lists_the_available_ones(tmp_path):
    with pytest.raises(LLMLabError, match=r"template: no template 'nope' \(available: .*blank"):
        new_project("x", "nope", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_project_copied_then_edited_stays_independent():
    project = Project()
    twin = copy.deepcopy(project)
    twin.pretrain.optimizer.options["betas"][0] = 0.5
    assert project.pretrain.optimizer.options["betas"][0] == 0.9
    assert Project().pretrain.optimizer.options["betas"][0] == 0.9  # defaults are never shared


def test_project_problems_matches_what_load_reports(tmp_path):
    data = {"model": {"d_model": "abc", "n_heads": 3}, "pretrain": {"lr": 0}}
    write(tmp_path, __import__("tomli_w").dumps(data))
    with pytest.raises(LLMLabError) as error:
        load_project(tmp_path)
    assert (
        [str(p) for p in project_problems(data, tmp_path)]
        == error.value.lines
        == [
            "model.d_model: expected a whole number, got 'abc'",
            "pretrain.lr: must be greater than 0, got 0.0",
            "model.n_heads: must be divisible by model.n_kv_heads (2) for gqa, got 3",
        ]
    )
    assert project_problems({}) == []
