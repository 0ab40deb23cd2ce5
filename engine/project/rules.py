"""The rules of a project: each field's range or choices (from the schema's metadata), each
optimizer's and scheduler's own settings, and the rules that span fields (d_model divisible by
n_heads, seq_len within max_seq_len, ...). `validate_project` gives every problem at once.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import fields, is_dataclass, replace
from typing import Any

from engine.project import sizing
from engine.project.codec import BAD, coerce, field_types, is_type, join, option_type
from engine.project.problems import Problem
from engine.project.schema import (
    MAX_SEQ_LEN,
    OPTION_CHOICES,
    OPTION_RULES,
    REWARD_RULE_OPTIONS,
    REWARD_RULES,
    STAGES,
    FineTuneConfig,
    ModelConfig,
    OptimizerConfig,
    PolicyConfig,
    Project,
    Range,
    SchedulerConfig,
)


def validate_project(project: Project) -> list[Problem]:
    """Every problem of a Project, one "field: rule" line each; [] when it is valid."""
    problems: list[Problem] = []
    _check_fields(project, "", problems)
    if not project.name:
        problems.append(Problem("name", "must not be empty"))
    if not project.tokenizer.source:
        problems.append(Problem("tokenizer.source", 'must be "bytes", "bpe", a hub id or a local path, got \'\''))
    problems += _model_problems(project.model)
    problems += _size_problems(project)
    for name in STAGES:
        problems += _stage_problems(project, name)
        problems += _decay_problems(project.stage(name), name)
    problems += _label_smoothing_problems(project.dpo)
    return problems


def _check_fields(obj: Any, where: str, problems: list[Problem]) -> None:
    declared = field_types(type(obj))
    for f in fields(obj):
        if f.name == "root":
            continue
        value, at = getattr(obj, f.name), join(where, f.name)
        if isinstance(value, (OptimizerConfig, SchedulerConfig)):
            _check_named(value, at, problems)
        elif is_dataclass(value):
            _check_fields(value, at, problems)
        elif isinstance(value, list) and value and all(is_dataclass(item) for item in value):
            for i, item in enumerate(value):
                _check_fields(item, join(at, i), problems)
        elif coerce(value, declared[f.name], at, problems) is not BAD:
            _check_value(value, f.metadata.get("rule"), f.metadata.get("choices"), at, problems)


def _check_value(value: Any, rule: Range | None, choices: tuple | None, at: str, problems: list[Problem]) -> None:
    if choices and isinstance(value, list):
        allowed = ", ".join(choices)  # a list field's choices apply to each item
        problems += [Problem(at, f"each must be one of {allowed}, got {v!r}") for v in value if v not in choices]
    elif choices and value not in choices:
        problems.append(Problem(at, f"must be one of {', '.join(choices)}, got {value!r}"))
    if rule is None:
        return
    for item in value if isinstance(value, list) else [value]:
        if not rule.allows(item):
            problems.append(Problem(at, f"must be {rule.describe()}, got {value!r}"))
            return


def _check_named(config: OptimizerConfig | SchedulerConfig, where: str, problems: list[Problem]) -> None:
    defaults = config.REGISTRY.get(config.name)
    if defaults is None:
        problems.append(Problem(f"{where}.name", f"must be one of {', '.join(config.REGISTRY)}, got {config.name!r}"))
        return
    for key, value in config.options.items():
        at = join(where, key)
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            problems.append(Problem(at, f"not a setting of {config.name} (its settings: {known})"))
        elif coerce(value, option_type(defaults[key]), at, problems) is not BAD:
            if isinstance(value, list) and len(value) != len(defaults[key]):
                problems.append(Problem(at, f"must be a list of {len(defaults[key])} numbers, got {value!r}"))
            _check_value(value, OPTION_RULES.get(key), OPTION_CHOICES.get(key), at, problems)


def _positive_ints(*values: Any) -> bool:
    return all(is_type(v, int) and v > 0 for v in values)


def _model_problems(m: ModelConfig) -> list[Problem]:
    problems = []
    if _positive_ints(m.d_model, m.n_heads) and m.d_model % m.n_heads:
        problems.append(
            Problem(
                "model.d_model",
                f"must be divisible by model.n_heads ({m.n_heads}), got {m.d_model}",
                ("model.n_heads",),
            )
        )
    elif _positive_ints(m.d_model, m.n_heads) and m.positional_encoding in ("rope", "yarn") and m.head_dim % 2:
        problems.append(
            Problem(
                "model.d_model",
                f"{m.positional_encoding} needs an even head size "
                f"(d_model / n_heads), got {m.d_model} / {m.n_heads} = {m.head_dim}",
                ("model.n_heads", "model.positional_encoding"),
            )
        )
    if _positive_ints(m.d_model) and m.positional_encoding == "sinusoidal" and m.d_model % 2:
        problems.append(Problem("model.d_model", f"sinusoidal positions need an even d_model, got {m.d_model}"))
    if not _positive_ints(m.n_heads, m.n_kv_heads):
        return problems
    implied = {"mqa": 1, "mha": m.n_heads}.get(m.attention)
    if implied is not None and m.n_kv_heads != implied:
        problems.append(
            Problem(
                "model.n_kv_heads",
                f'attention "{m.attention}" means n_kv_heads = {implied}, '
                f"got {m.n_kv_heads} (set it to {implied}, or leave it out)",
                ("model.attention",),
            )
        )
    elif m.attention == "gqa" and m.n_heads % m.n_kv_heads:
        problems.append(
            Problem(
                "model.n_heads",
                f"must be divisible by model.n_kv_heads ({m.n_kv_heads}) for gqa, got {m.n_heads}",
                ("model.n_kv_heads",),
            )
        )
    return problems


def _stage_problems(project: Project, name: str) -> list[Problem]:
    stage, problems = project.stage(name), []
    max_len = project.model.max_seq_len
    if _positive_ints(stage.seq_len, max_len) and stage.seq_len > max_len:
        problems.append(
            Problem(
                f"{name}.seq_len",
                f"must not exceed model.max_seq_len ({max_len}), got {stage.seq_len}",
                ("model.max_seq_len",),
            )
        )
    min_lr = stage.scheduler.options.get("min_lr")
    if is_type(min_lr, float) and is_type(stage.lr, float) and 0 < stage.lr < min_lr:
        rule = f"must not exceed {name}.lr ({stage.lr}), got {min_lr}"
        problems.append(Problem(f"{name}.scheduler.min_lr", rule, (f"{name}.lr",)))
    for i, ds in enumerate(stage.datasets):
        if not ds.path:
            problems.append(Problem(f"{name}.datasets[{i}].path", "required (a hub id, or a local file or folder)"))
    weights = [ds.weight for ds in stage.datasets if is_type(ds.weight, float)]
    if weights and not any(w > 0 for w in weights):
        problems.append(Problem(f"{name}.datasets", "the weights must not all be 0"))
    if isinstance(stage, FineTuneConfig):
        problems += _fine_tune_problems(stage, name)
    if stage.parallel == "fsdp":
        problems += _fsdp_problems(stage, name)
    if isinstance(stage, PolicyConfig):
        for i, rule in enumerate(stage.reward_rules):
            problems += _reward_rule_problems(rule, f"{name}.reward_rules[{i}]")
    return problems


def _label_smoothing_problems(dpo: Any) -> list[Problem]:
    """Label smoothing is cDPO's, a term of the sigmoid loss: hinge and ipo would ignore it."""
    smoothing = dpo.label_smoothing
    if dpo.loss_type in ("hinge", "ipo") and is_type(smoothing, float) and smoothing != 0:
        rule = f"only the sigmoid loss uses it; set it to 0 for {dpo.loss_type}, got {smoothing!r}"
        return [Problem("dpo.label_smoothing", rule, ("dpo.loss_type",))]
    return []


def _fine_tune_problems(stage: FineTuneConfig, name: str) -> list[Problem]:
    problems = []
    if not stage.init:
        problems.append(Problem(f"{name}.init", f"required: a stage name ({', '.join(STAGES)}) or a model directory"))
    if stage.lora.preset == "custom" and not stage.lora.target_modules:
        problems.append(
            Problem(
                f"{name}.lora.target_modules",
                'the custom preset needs at least one module name, e.g. ["q_proj", "v_proj"]',
            )
        )
    return problems


# What FSDP (engine/sharding.py) does not shard, and why; measured with 2 gloo ranks on torch 2.13.
FSDP_STAGES = ("pretrain", "sft")  # dpo keeps a whole frozen reference; ppo/grpo roll out per rank
FSDP_REFUSED_OPTIMIZERS = {
    "adafactor": "torch's Adafactor updates its factored statistics in place, which sharded (DTensor) "
    "parameters do not support",
    "sophia": "its Hessian estimate takes its own gradients of the sharded parameters, which FSDP does not reduce",
    "muon": "its Newton-Schulz step needs each whole matrix; on shards it adds partial bf16 products "
    "(measured 4% off the whole-matrix result)",
}


def _fsdp_problems(stage: Any, name: str) -> list[Problem]:
    """The stages, optimizers and LoRA that parallel = "fsdp" cannot train; "ddp" trains them all."""
    problems, use_ddp = [], 'or set parallel = "ddp"'
    if name not in FSDP_STAGES:
        rule = f'fsdp trains {" and ".join(FSDP_STAGES)} only, not {name}; set parallel = "ddp"'
        problems.append(Problem(f"{name}.parallel", rule))
    optimizer = stage.optimizer.name
    if optimizer in FSDP_REFUSED_OPTIMIZERS:
        rule = f"fsdp cannot shard {optimizer}: {FSDP_REFUSED_OPTIMIZERS[optimizer]}; use adamw or lion {use_ddp}"
        problems.append(Problem(f"{name}.optimizer.name", rule))
    if isinstance(stage, FineTuneConfig) and stage.lora.enabled:
        rule = f"fsdp does not train LoRA adapters (peft's wrapped layers are not sharded); disable lora {use_ddp}"
        problems.append(Problem(f"{name}.lora.enabled", rule))
    return problems


def _reward_rule_problems(rule: Any, at: str) -> list[Problem]:
    known = ", ".join(REWARD_RULES)
    spec = {"name": rule} if isinstance(rule, str) else rule
    if not isinstance(spec, dict):
        return [Problem(at, f"expected a rule name or a table {{name = ..., weight = ...}}, got {rule!r}")]
    rule_name = spec.get("name")
    if rule_name not in REWARD_RULES:
        return [Problem(at, f"must name one of {known}, got {rule_name!r}")]
    problems = []
    accepted = ("name", "weight", *REWARD_RULE_OPTIONS[rule_name])
    for key in spec:
        if key not in accepted:
            settings = ", ".join(accepted)
            problems.append(Problem(f"{at}.{key}", f"not a setting of the {rule_name} rule (its settings: {settings})"))
    if "weight" in spec:
        weight = spec["weight"]
        if not is_type(weight, float):
            problems.append(Problem(f"{at}.weight", f"expected a number, got {weight!r}"))
        elif not (math.isfinite(weight) and weight >= 0):
            problems.append(Problem(f"{at}.weight", f"must be a finite number of at least 0, got {weight!r}"))
    if rule_name == "length" and "target" in spec:
        target = spec["target"]
        if not (is_type(target, int) and target >= 1):
            problems.append(Problem(f"{at}.target", f"must be a whole number of words, at least 1, got {target!r}"))
    if rule_name == "regex":
        pattern = spec.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            problems.append(Problem(at, 'the regex rule needs a pattern, e.g. { name = "regex", pattern = "\\\\d+" }'))
        else:
            try:
                re.compile(pattern)
            except re.error as error:
                problems.append(Problem(f"{at}.pattern", f"not a valid regular expression ({error})"))
    return problems


def _decay_problems(stage: Any, name: str) -> list[Problem]:
    """Decoupled weight decay multiplies the weights by (1 - lr x weight_decay) each step: at 1 or
    more it zeroes or flips them (and the loss goes nan)."""
    problems = []
    decays = {"weight_decay": stage.lr, "adamw_weight_decay": stage.optimizer.options.get("adamw_lr")}
    for key, lr in decays.items():
        decay = stage.optimizer.options.get(key)
        if not (is_type(decay, float) and OPTION_RULES[key].allows(decay) and is_type(lr, float) and lr > 0):
            continue
        if lr * decay >= 1:
            lr_name = f"{name}.optimizer.adamw_lr" if key == "adamw_weight_decay" else f"{name}.lr"
            problems.append(
                Problem(
                    f"{name}.optimizer.{key}",
                    f"times {lr_name} ({lr}) must stay below 1 (each step scales the weights by 1 - lr x decay), "
                    f"got {decay}",
                    (lr_name,),
                )
            )
    return problems


def _system_memory() -> int | None:
    """Total system RAM in bytes (os.sysconf, else /proc/meminfo), or None when unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def _position_table_bytes(m: ModelConfig) -> int:
    """The fp32 tables the model builds max_seq_len long: sinusoids (d_model), RoPE's cos and sin."""
    if not (_positive_ints(m.max_seq_len) and m.max_seq_len <= MAX_SEQ_LEN):
        return 0  # the range rule says so
    if m.positional_encoding == "sinusoidal":
        return 4 * m.max_seq_len * m.d_model
    if m.positional_encoding in ("rope", "yarn"):
        return 4 * 2 * m.max_seq_len * m.head_dim
    return 0


def _size_problems(project: Project, memory: int | None = None) -> list[Problem]:
    """A model whose fp32 weights alone exceed this machine's system memory cannot be built (it is
    built in system memory before it moves to a GPU). GPU memory cannot be known without torch, so
    this is the one size check validate makes: it refuses only what can never fit; `llmlab info`
    shows the whole training estimate to compare with an accelerator."""
    m = project.model
    sizes = (m.d_model, m.n_layers, m.n_heads, m.n_kv_heads, m.d_ff)
    if not _positive_ints(*sizes) or m.d_model % m.n_heads or not isinstance(m.tie_embeddings, bool):
        return []
    vocab = sizing.tokenizer_vocab_size(project.tokenizer)
    vocab = sizing.padded_vocab_size(vocab) if _positive_ints(vocab) else 0
    params = sizing.parameter_count(replace(m, n_layers=0), vocab)
    params += m.n_layers * (sizing.parameter_count(replace(m, n_layers=1), vocab) - params)
    memory = _system_memory() if memory is None else memory
    weights = 4 * params
    if memory is None or weights + _position_table_bytes(m) <= memory:
        return []
    if weights <= memory:
        return [
            Problem(
                "model.max_seq_len",
                f"{m.max_seq_len} makes the {m.positional_encoding} position tables "
                f"{_gib(_position_table_bytes(m))}, more than this machine's {_gib(memory)} of system memory "
                "with the weights; make it smaller",
            )
        ]
    state = weights * 2  # gradients + at least one optimizer moment, before activations
    return [
        Problem(
            "model.d_model",
            f"{m.d_model} with model.n_layers {m.n_layers} is {params:,} parameters, {_gib(weights)} of fp32 "
            f"weights (training needs at least {_gib(weights + state)}): more than this machine's "
            f"{_gib(memory)} of system memory; make model.d_model, model.d_ff or model.n_layers smaller",
        )
    ]
