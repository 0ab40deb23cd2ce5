"""The project.toml schema: dataclasses with defaults, validation, load/save and `--set` overrides.

One module turns the TOML file into typed objects and back (DESIGN.md, "The shape of
project.toml"). Field metadata carries each field's rule (a range or a list of choices), so the
validator and the app's forms read the same rules. No torch import: the app loads this instantly.
"""

from __future__ import annotations

import copy
import functools
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

import tomli_w

from engine.errors import LLMLabError
from engine.fileio import atomic_write_text

PROJECT_FILE = "project.toml"

STAGES = ("pretrain", "sft", "dpo", "ppo", "grpo")
POSITIONAL_ENCODINGS = ("sinusoidal", "rope", "alibi", "yarn")
NORMALIZATIONS = ("layernorm", "rmsnorm")
ATTENTIONS = ("mha", "mqa", "gqa")
ACTIVATIONS = ("relu", "gelu", "leaky_relu", "silu", "swiglu")
LORA_PRESETS = ("minimal", "attention_only", "ffn_only", "all", "custom")
DPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo")
GRPO_LOSS_TYPES = ("grpo", "dr_grpo", "dapo")
SCALE_REWARDS = ("group", "batch", "none")
REWARD_RULES = ("exact_match", "regex", "length")

# Each optimizer's own settings, flat in [stage.optimizer] beside `name`. engine/optim.py maps
# them onto torch / pytorch-optimizer; keep these names stable.
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "adamw": {"betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1},
    # torch.optim.Adafactor: eps2 is its eps[1]; eps[0] stays torch's default (dtype epsilon).
    "adafactor": {"beta2_decay": -0.8, "eps2": 1e-3, "d": 1.0, "weight_decay": 0.0},
    "lion": {"betas": [0.9, 0.99], "weight_decay": 0.0},
    "sophia": {"betas": [0.965, 0.99], "rho": 0.04, "weight_decay": 0.1, "hessian_update_period": 10},
    # Muon updates the 2-D hidden matrices at the stage lr ("match_rms_adamw" keeps AdamW-like lr
    # values meaningful); embeddings, head, norms and biases go to an AdamW group at adamw_lr.
    "muon": {
        "momentum": 0.95,
        "nesterov": True,
        "ns_steps": 5,
        "weight_decay": 0.0,
        "adjust_lr_fn": "match_rms_adamw",
        "adamw_lr": 3e-4,
        "adamw_betas": [0.9, 0.95],
        "adamw_weight_decay": 0.0,
    },
}
SCHEDULER_DEFAULTS: dict[str, dict[str, Any]] = {
    "none": {},
    "cosine": {"min_lr": 0.0},
    "linear": {"min_lr": 0.0},
    "polynomial": {"power": 1.0, "min_lr": 0.0},
}
OPTIMIZERS = tuple(OPTIMIZER_DEFAULTS)
SCHEDULERS = tuple(SCHEDULER_DEFAULTS)


@dataclass(frozen=True)
class Range:
    """A numeric rule: low/high bounds, each inclusive unless marked open."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def allows(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def describe(self) -> str:
        if self.high is None:
            return f"greater than {self.low}" if self.low_open else f"at least {self.low}"
        if self.low is None:
            return f"less than {self.high}" if self.high_open else f"at most {self.high}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low}, {self.high}{right}"


AT_LEAST_1 = Range(1)
POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
FRACTION = Range(0, 1, high_open=True)  # dropout-like: 0 allowed, 1 not
UNIT = Range(0, 1)

# Rules for optimizer / scheduler settings, by setting name (lists are checked element-wise).
OPTION_RULES: dict[str, Range] = {
    "betas": FRACTION, "adamw_betas": FRACTION, "eps": POSITIVE, "eps2": POSITIVE, "d": Range(1),
    "weight_decay": NON_NEGATIVE, "adamw_weight_decay": NON_NEGATIVE, "beta2_decay": Range(high=0),
    "rho": POSITIVE, "hessian_update_period": AT_LEAST_1, "momentum": FRACTION, "ns_steps": AT_LEAST_1,
    "adamw_lr": POSITIVE, "min_lr": NON_NEGATIVE, "power": POSITIVE,
}
OPTION_CHOICES: dict[str, tuple[str, ...]] = {"adjust_lr_fn": ("original", "match_rms_adamw")}


def setting(default: Any = None, *, rule: Range | None = None, choices: tuple[str, ...] | None = None,
            factory: Any = None) -> Any:
    """A dataclass field whose metadata holds its rule; `factory` for mutable defaults."""
    metadata = {"rule": rule, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TokenizerConfig:
    source: str = setting("bpe")  # "bytes" | "bpe" (trained into tokenizer/) | hub id | local path
    vocab_size: int = setting(4096, rule=Range(258))  # for "bpe": 256 bytes + 2 special tokens + merges
    trust_remote_code: bool = False
    train_text: list[str] = setting(factory=list)  # files for "bpe"; empty: the pretrain datasets


@dataclass
class ModelConfig:
    positional_encoding: str = setting("rope", choices=POSITIONAL_ENCODINGS)
    normalization: str = setting("rmsnorm", choices=NORMALIZATIONS)
    attention: str = setting("gqa", choices=ATTENTIONS)
    activation: str = setting("swiglu", choices=ACTIVATIONS)
    d_model: int = setting(256, rule=AT_LEAST_1)
    n_layers: int = setting(4, rule=AT_LEAST_1)
    n_heads: int = setting(8, rule=AT_LEAST_1)
    n_kv_heads: int = setting(2, rule=AT_LEAST_1)  # left out: 1 for mqa, n_heads for mha
    d_ff: int = setting(768, rule=AT_LEAST_1)
    max_seq_len: int = setting(512, rule=AT_LEAST_1)
    dropout: float = setting(0.0, rule=FRACTION)
    bias: bool = False
    tie_embeddings: bool = True
    rope_theta: float = setting(10000.0, rule=POSITIVE)
    yarn_factor: float = setting(4.0, rule=Range(1, low_open=True))
    yarn_original_max_seq_len: int = setting(128, rule=AT_LEAST_1)
    init_std: float = setting(0.02, rule=POSITIVE)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


@dataclass
class DatasetConfig:
    path: str = ""  # hub id, or a local file / folder (relative to the project)
    name: str = ""  # the hub config name; "" = none
    split: str = "train"
    eval_split: str = ""  # "" = hold out eval_fraction of the data
    eval_fraction: float = setting(0.05, rule=FRACTION)
    text_field: str = "text"
    columns: dict[str, str] = setting(factory=dict)  # rename columns: {source_name = "target_name"}
    weight: float = setting(1.0, rule=NON_NEGATIVE)
    streaming: bool = False


@dataclass
class OptimizerConfig:
    """`name` plus that optimizer's own settings (defaults filled in)."""

    name: str = "adamw"
    options: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(OPTIMIZER_DEFAULTS["adamw"]))
    REGISTRY: ClassVar[dict[str, dict[str, Any]]] = OPTIMIZER_DEFAULTS

    @classmethod
    def default(cls, name: str) -> "OptimizerConfig":
        return cls(name, copy.deepcopy(cls.REGISTRY[name]))


@dataclass
class SchedulerConfig:
    """`name` plus that scheduler's own settings (defaults filled in)."""

    name: str = "cosine"
    options: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(SCHEDULER_DEFAULTS["cosine"]))
    REGISTRY: ClassVar[dict[str, dict[str, Any]]] = SCHEDULER_DEFAULTS

    @classmethod
    def default(cls, name: str) -> "SchedulerConfig":
        return cls(name, copy.deepcopy(cls.REGISTRY[name]))


@dataclass
class LoraConfig:
    enabled: bool = False
    preset: str = setting("minimal", choices=LORA_PRESETS)
    r: int = setting(8, rule=AT_LEAST_1)
    alpha: float = setting(16.0, rule=POSITIVE)
    dropout: float = setting(0.05, rule=FRACTION)
    target_modules: list[str] = setting(factory=list)  # custom preset only


@dataclass
class StageConfig:
    """The training fields every stage has (pretrain uses exactly these)."""

    steps: int = setting(2000, rule=AT_LEAST_1)
    batch_size: int = setting(16, rule=AT_LEAST_1)
    grad_accum: int = setting(1, rule=AT_LEAST_1)
    seq_len: int = setting(256, rule=AT_LEAST_1)
    lr: float = setting(1e-3, rule=POSITIVE)
    warmup_steps: int = setting(100, rule=NON_NEGATIVE)
    grad_clip: float = setting(1.0, rule=NON_NEGATIVE)  # 0 = no clipping
    eval_every: int = setting(250, rule=NON_NEGATIVE)  # 0 = never
    eval_batches: int = setting(20, rule=AT_LEAST_1)
    sample_every: int = setting(250, rule=NON_NEGATIVE)  # 0 = never
    sample_prompt: str = ""
    save_every: int = setting(500, rule=NON_NEGATIVE)  # 0 = only final/
    keep_last: int = setting(3, rule=NON_NEGATIVE)  # 0 = keep every checkpoint
    compile: bool = False
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    datasets: list[DatasetConfig] = field(default_factory=list)


@dataclass
class SFTConfig(StageConfig):
    steps: int = setting(1000, rule=AT_LEAST_1)
    lr: float = setting(3e-4, rule=POSITIVE)
    init: str = "pretrain"  # a stage name (its newest finished run) or a model directory
    assistant_only: bool = True  # false: the loss covers every token
    packing: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class DPOConfig(StageConfig):
    steps: int = setting(500, rule=AT_LEAST_1)
    batch_size: int = setting(8, rule=AT_LEAST_1)
    lr: float = setting(5e-5, rule=POSITIVE)
    init: str = "sft"
    reference: str = ""  # blank: the starting policy, frozen
    beta: float = setting(0.1, rule=POSITIVE)
    loss_type: str = setting("sigmoid", choices=DPO_LOSS_TYPES)
    label_smoothing: float = setting(0.0, rule=Range(0, 0.5, high_open=True))
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class PPOConfig(StageConfig):
    steps: int = setting(200, rule=AT_LEAST_1)
    batch_size: int = setting(8, rule=AT_LEAST_1)
    lr: float = setting(1e-5, rule=POSITIVE)
    init: str = "sft"
    reward_model: str = ""  # hub id or local path; "" = rules only
    reward_trust_remote_code: bool = False
    reward_rules: list[str | dict] = field(default_factory=list)  # "exact_match" or {name, weight, ...}
    gamma: float = setting(1.0, rule=UNIT)
    lam: float = setting(0.95, rule=UNIT)
    kl_coef: float = setting(0.05, rule=NON_NEGATIVE)
    adaptive_kl: bool = False
    kl_target: float = setting(6.0, rule=POSITIVE)
    ppo_epochs: int = setting(4, rule=AT_LEAST_1)
    mini_batch_size: int = setting(4, rule=AT_LEAST_1)
    max_new_tokens: int = setting(64, rule=AT_LEAST_1)
    temperature: float = setting(1.0, rule=POSITIVE)
    cliprange: float = setting(0.2, rule=POSITIVE)
    cliprange_value: float = setting(0.2, rule=POSITIVE)
    vf_coef: float = setting(0.1, rule=NON_NEGATIVE)
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class GRPOConfig(StageConfig):
    steps: int = setting(200, rule=AT_LEAST_1)
    batch_size: int = setting(8, rule=AT_LEAST_1)
    lr: float = setting(1e-5, rule=POSITIVE)
    init: str = "sft"
    reward_model: str = ""
    reward_trust_remote_code: bool = False
    reward_rules: list[str | dict] = field(default_factory=list)
    group_size: int = setting(4, rule=Range(2))
    temperature: float = setting(1.0, rule=POSITIVE)
    beta: float = setting(0.0, rule=NON_NEGATIVE)  # KL weight to the reference
    max_new_tokens: int = setting(64, rule=AT_LEAST_1)
    epsilon: float = setting(0.2, rule=POSITIVE)
    epsilon_high: float = setting(0.0, rule=NON_NEGATIVE)  # 0 = off (symmetric clip); > 0: DAPO
    scale_rewards: str = setting("group", choices=SCALE_REWARDS)
    loss_type: str = setting("dapo", choices=GRPO_LOSS_TYPES)
    epochs: int = setting(1, rule=AT_LEAST_1)
    mini_batch_size: int = setting(4, rule=AT_LEAST_1)
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class Project:
    name: str = "untitled"
    seed: int = 1337
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: StageConfig = field(default_factory=StageConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    root: Path = field(default=Path("."), compare=False)  # the project directory; not in the file

    def stage(self, name: str) -> StageConfig:
        if name not in STAGES:
            raise LLMLabError(f"stage: must be one of {', '.join(STAGES)}, got {name!r}")
        return getattr(self, name)

    def resolve(self, path: str | Path) -> Path:
        """A path from project.toml: absolute as is, relative against the project directory."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.root / path

    def local_path(self, source: str) -> Path | None:
        """The resolved path when `source` names an existing file or folder, else None (a hub id)."""
        path = self.resolve(source)
        return path if source and path.exists() else None

    @property
    def file(self) -> Path:
        return self.root / PROJECT_FILE


# ---------------------------------------------------------------------------------------------
# dict → dataclasses (types and unknown keys)

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
               list: "a list", dict: "a table"}
_BAD = object()


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _toml_fields(cls: type) -> list[str]:
    return [f.name for f in fields(cls) if f.name != "root"]


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _coerce(value: Any, hint: Any, where: str, problems: list[str]) -> Any:
    """`value` as type `hint`, or _BAD after recording the problem."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (OptimizerConfig, SchedulerConfig):
        return _build_named(hint, value, where, problems)
    if is_dataclass(hint):
        return _build(hint, value, where, problems)
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list, got {value!r}")
            return _BAD
        items = [_coerce(item, args[0], _join(where, i), problems) for i, item in enumerate(value)]
        return [item for item in items if item is not _BAD]  # the good ones, still checked
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a table, got {value!r}")
            return _BAD
        items = {k: _coerce(v, args[1], _join(where, k), problems) for k, v in value.items()}
        return _BAD if _BAD in items.values() else items
    if origin in (typing.Union, types.UnionType):
        if any(_is_type(value, a) for a in args):
            return value
        problems.append(f"{where}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
        return _BAD
    if _is_type(value, hint):
        return float(value) if hint is float else value
    problems.append(f"{where}: expected {_TYPE_NAMES[hint]}, got {value!r}")
    return _BAD


def _is_type(value: Any, hint: Any) -> bool:
    base = typing.get_origin(hint) or hint
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, base)


def _type_name(hint: Any) -> str:
    return _TYPE_NAMES[typing.get_origin(hint) or hint]


def _build(cls: type, data: Any, where: str, problems: list[str]) -> Any:
    """An instance of dataclass `cls` from a TOML table; bad or missing values keep defaults."""
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a table, got {data!r}")
        data = {}
    known, hints = _toml_fields(cls), _hints(cls)
    for key in data:
        if key not in known:
            problems.append(f"{_join(where, key)}: unknown setting (known: {', '.join(known)})")
    values = {}
    for name in known:
        if name in data:
            value = _coerce(data[name], hints[name], _join(where, name), problems)
            if value is not _BAD:
                values[name] = value
    return cls(**values)


def _build_named(cls: type, data: Any, where: str, problems: list[str]) -> Any:
    """An OptimizerConfig / SchedulerConfig: `name`, then its settings over the defaults."""
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a table, got {data!r}")
        return cls()
    given = dict(data)
    name = given.pop("name", cls().name)
    if not isinstance(name, str):
        problems.append(f"{where}.name: expected a string, got {name!r}")
        return cls()
    defaults = cls.REGISTRY.get(name)
    if defaults is None:
        return cls(name, given)  # validate_project names the choices
    options = copy.deepcopy(defaults)
    for key, value in given.items():
        if key in defaults:
            value = _coerce(value, _option_type(defaults[key]), _join(where, key), problems)
            if value is not _BAD:
                options[key] = value
        else:
            options[key] = value  # validate_project refuses it, listing the known settings
    return cls(name, options)


def _option_type(default: Any) -> Any:
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


def _from_dict(data: Any, root: Path, problems: list[str]) -> Project:
    if isinstance(data, dict):
        data = _fill_kv_heads(data)
    project = _build(Project, data, "", problems)
    project.root = Path(root)
    return project


def project_from_dict(data: dict, root: str | Path = ".") -> Project:
    """A Project from a parsed project.toml; raises LLMLabError listing type and key problems."""
    problems: list[str] = []
    project = _from_dict(data, Path(root), problems)
    if problems:
        raise LLMLabError(problems)
    return project


def project_to_dict(project: Any) -> Any:
    """The TOML-ready dict of a Project (or of any part of one)."""
    if isinstance(project, (OptimizerConfig, SchedulerConfig)):
        return {"name": project.name, **copy.deepcopy(project.options)}
    if is_dataclass(project):
        return {name: project_to_dict(getattr(project, name)) for name in _toml_fields(type(project))}
    if isinstance(project, list):
        return [project_to_dict(item) for item in project]
    if isinstance(project, dict):
        return {key: project_to_dict(value) for key, value in project.items()}
    return project


# ---------------------------------------------------------------------------------------------
# validation (ranges, choices, and the rules that span fields)


def validate_project(project: Project) -> list[str]:
    """Every problem of a Project, one "field: rule" line each; [] when it is valid."""
    problems: list[str] = []
    _check_fields(project, "", problems)
    if not project.name:
        problems.append("name: must not be empty")
    if not project.tokenizer.source:
        problems.append('tokenizer.source: must be "bytes", "bpe", a hub id or a local path, got \'\'')
    problems += _model_problems(project.model)
    for name in STAGES:
        problems += _stage_problems(project, name)
    return problems


def _check_fields(obj: Any, where: str, problems: list[str]) -> None:
    hints = _hints(type(obj))
    for f in fields(obj):
        if f.name == "root":
            continue
        value, at = getattr(obj, f.name), _join(where, f.name)
        if isinstance(value, (OptimizerConfig, SchedulerConfig)):
            _check_named(value, at, problems)
        elif is_dataclass(value):
            _check_fields(value, at, problems)
        elif isinstance(value, list) and value and all(is_dataclass(item) for item in value):
            for i, item in enumerate(value):
                _check_fields(item, _join(at, i), problems)
        elif _coerce(value, hints[f.name], at, problems) is not _BAD:
            _check_value(value, f.metadata.get("rule"), f.metadata.get("choices"), at, problems)


def _check_value(value: Any, rule: Range | None, choices: tuple | None, at: str, problems: list[str]) -> None:
    if choices and value not in choices:
        problems.append(f"{at}: must be one of {', '.join(choices)}, got {value!r}")
    if rule is None:
        return
    for item in value if isinstance(value, list) else [value]:
        if not rule.allows(item):
            problems.append(f"{at}: must be {rule.describe()}, got {value!r}")
            return


def _check_named(config: OptimizerConfig | SchedulerConfig, where: str, problems: list[str]) -> None:
    defaults = config.REGISTRY.get(config.name)
    if defaults is None:
        problems.append(f"{where}.name: must be one of {', '.join(config.REGISTRY)}, got {config.name!r}")
        return
    for key, value in config.options.items():
        at = _join(where, key)
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            problems.append(f"{at}: not a setting of {config.name} (its settings: {known})")
        elif _coerce(value, _option_type(defaults[key]), at, problems) is not _BAD:
            if isinstance(value, list) and len(value) != len(defaults[key]):
                problems.append(f"{at}: must be a list of {len(defaults[key])} numbers, got {value!r}")
            _check_value(value, OPTION_RULES.get(key), OPTION_CHOICES.get(key), at, problems)


def _positive_ints(*values: Any) -> bool:
    return all(_is_type(v, int) and v > 0 for v in values)


def _model_problems(m: ModelConfig) -> list[str]:
    problems = []
    if _positive_ints(m.d_model, m.n_heads) and m.d_model % m.n_heads:
        problems.append(f"model.d_model: must be divisible by model.n_heads ({m.n_heads}), got {m.d_model}")
    elif _positive_ints(m.d_model, m.n_heads) and m.positional_encoding in ("rope", "yarn") and m.head_dim % 2:
        problems.append(f"model.d_model: {m.positional_encoding} needs an even head size "
                        f"(d_model / n_heads), got {m.d_model} / {m.n_heads} = {m.head_dim}")
    if _positive_ints(m.d_model) and m.positional_encoding == "sinusoidal" and m.d_model % 2:
        problems.append(f"model.d_model: sinusoidal positions need an even d_model, got {m.d_model}")
    if not _positive_ints(m.n_heads, m.n_kv_heads):
        return problems
    implied = {"mqa": 1, "mha": m.n_heads}.get(m.attention)
    if implied is not None and m.n_kv_heads != implied:
        problems.append(f'model.n_kv_heads: attention "{m.attention}" means n_kv_heads = {implied}, '
                        f"got {m.n_kv_heads} (set it to {implied}, or leave it out)")
    elif m.attention == "gqa" and m.n_heads % m.n_kv_heads:
        problems.append(f"model.n_heads: must be divisible by model.n_kv_heads ({m.n_kv_heads}) "
                        f"for gqa, got {m.n_heads}")
    return problems


def _stage_problems(project: Project, name: str) -> list[str]:
    stage, problems = project.stage(name), []
    max_len = project.model.max_seq_len
    if _positive_ints(stage.seq_len, max_len) and stage.seq_len > max_len:
        problems.append(f"{name}.seq_len: must not exceed model.max_seq_len ({max_len}), got {stage.seq_len}")
    min_lr = stage.scheduler.options.get("min_lr")
    if _is_type(min_lr, float) and _is_type(stage.lr, float) and 0 < stage.lr < min_lr:
        problems.append(f"{name}.scheduler.min_lr: must not exceed {name}.lr ({stage.lr}), got {min_lr}")
    for i, ds in enumerate(stage.datasets):
        if not ds.path:
            problems.append(f"{name}.datasets[{i}].path: required (a hub id, or a local file or folder)")
    weights = [ds.weight for ds in stage.datasets if _is_type(ds.weight, float)]
    if weights and not any(w > 0 for w in weights):
        problems.append(f"{name}.datasets: the weights must not all be 0")
    if hasattr(stage, "init") and not stage.init:
        problems.append(f"{name}.init: required: a stage name ({', '.join(STAGES)}) or a model directory")
    lora = getattr(stage, "lora", None)
    if lora is not None and lora.preset == "custom" and not lora.target_modules:
        problems.append(f"{name}.lora.target_modules: the custom preset needs at least one module "
                        "name, e.g. [\"q_proj\", \"v_proj\"]")
    for i, rule in enumerate(getattr(stage, "reward_rules", [])):
        problems += _reward_rule_problems(rule, f"{name}.reward_rules[{i}]")
    return problems


def _reward_rule_problems(rule: Any, at: str) -> list[str]:
    known = ", ".join(REWARD_RULES)
    spec = {"name": rule} if isinstance(rule, str) else rule
    if not isinstance(spec, dict):
        return [f"{at}: expected a rule name or a table {{name = ..., weight = ...}}, got {rule!r}"]
    rule_name = spec.get("name")
    if rule_name not in REWARD_RULES:
        return [f"{at}: must name one of {known}, got {rule_name!r}"]
    problems = []
    if "weight" in spec and not _is_type(spec["weight"], float):
        problems.append(f"{at}.weight: expected a number, got {spec['weight']!r}")
    if rule_name == "regex":
        pattern = spec.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            problems.append(f'{at}: the regex rule needs a pattern, e.g. {{ name = "regex", pattern = "\\\\d+" }}')
        else:
            try:
                re.compile(pattern)
            except re.error as error:
                problems.append(f"{at}.pattern: not a valid regular expression ({error})")
    return problems


# ---------------------------------------------------------------------------------------------
# files: load, save, overrides, new projects

TEMPLATES_DIR = Path(__file__).parent / "templates"
_NAME = re.compile(r"^\w[\w.-]{0,63}$")
_NAMED = {"optimizer": OptimizerConfig, "scheduler": SchedulerConfig}


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
            raise LLMLabError(f"{file}: line {where[1]}, column {where[2]}: {reason}") from None
        raise LLMLabError(f"{file}: {reason}") from None
    except UnicodeDecodeError:
        raise LLMLabError(f"{file}: not UTF-8 text") from None
    except OSError as error:
        raise LLMLabError(f"{file}: cannot read ({error.strerror})") from None


def load_project(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Project:
    """Read, override and validate a project; raises LLMLabError listing every problem. Never writes."""
    file = project_file(path)
    project, problems = _checked(apply_overrides(read_toml(file), list(overrides)), file.parent)
    if problems:
        raise LLMLabError(problems)
    return project


def project_problems(data: dict, root: str | Path = ".") -> list[str]:
    """Every problem of a parsed project.toml, as `llmlab validate` prints them; [] when valid."""
    return _checked(data, Path(root))[1]


def _checked(data: Any, root: Path) -> tuple[Project, list[str]]:
    """The Project (bad values left at defaults) and every problem: types and keys, then rules
    (a rule's line is left out when its field already has a type problem)."""
    problems: list[str] = []
    project = _from_dict(data, root, problems)
    reported = {line.split(": ", 1)[0] for line in problems}
    problems += [line for line in validate_project(project) if line.split(": ", 1)[0] not in reported]
    return project, problems


def save_project(project: Project, path: str | Path | None = None) -> Path:
    """Write project.toml atomically (to `path`, a file or directory, or the project's own file)."""
    target = project.file if path is None else Path(path)
    if target.is_dir():
        target = target / PROJECT_FILE
    atomic_write_text(target, tomli_w.dumps(project_to_dict(project)))
    return target


def apply_overrides(data: dict, sets: list[str]) -> dict:
    """A copy of `data` with each "dotted.path=value" applied (value parsed as TOML, else a string).

    Lists are indexed by number (`pretrain.datasets.0.weight` or `pretrain.datasets[0].weight`).
    Changing an optimizer's or scheduler's name resets its table to that one's defaults.
    """
    data, problems = copy.deepcopy(data), []
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        path = [int(s) if s.isdigit() else s for s in re.sub(r"\[(\d+)\]", r".\1", key).split(".")]
        problem = None if sep and key else "expected key=value, e.g. pretrain.steps=20"
        problem = problem or _override_path_problem(path) or _set(data, path, _parse_value(raw.strip()))
        if problem:
            problems.append(f"--set {key or item}: {problem}")
    if problems:
        raise LLMLabError(problems)
    return data


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


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
        elif is_dataclass(hint) and segment in _toml_fields(hint):
            hint = _hints(hint)[segment]
        else:
            known = ", ".join(_toml_fields(hint)) if is_dataclass(hint) else "none"
            return f"unknown setting (known{' in ' + where if where else ''}: {known})"
    return None


def _set(data: dict, path: list[str | int], value: Any) -> str | None:
    """Set `value` at `path` inside `data`, creating tables; a problem line or None."""
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
    elif last == "name" and len(path) >= 2 and path[-2] in _NAMED:
        if node.get("name", _NAMED[path[-2]]().name) != value:
            node.clear()  # another optimizer / scheduler: its own defaults, not the old settings
    node[last] = value
    return None


def new_project(name: str, template: str = "blank", directory: str | Path = "projects") -> Path:
    """Create `directory/name/project.toml` from a template; never overwrites. Returns the directory."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise LLMLabError(f"name: must be a plain directory name (letters, digits, '_', '-', '.'; "
                          f"not starting with '.' or '-', at most 64 characters), got {name!r}")
    source = TEMPLATES_DIR / f"{template}.toml"
    if not source.is_file():
        known = ", ".join(sorted(p.stem for p in TEMPLATES_DIR.glob("*.toml")))
        raise LLMLabError(f"template: no template {template!r} (available: {known})")
    root = Path(directory) / name
    text = _with_name(source.read_text(encoding="utf-8"), name)
    problems = project_problems(tomllib.loads(text), root)
    if problems:
        raise LLMLabError([f"template {template}: {line}" for line in problems])
    try:
        root.mkdir(parents=True)
    except FileExistsError:
        raise LLMLabError(f"{root}: already exists; a project is never overwritten "
                          "(pick another name, or delete it yourself)") from None
    atomic_write_text(root / PROJECT_FILE, text)
    return root


def _with_name(text: str, name: str) -> str:
    """The template text with its top-level `name = ...` line set to `name` (comments kept)."""
    head, sep, tail = text.partition("\n[")
    line = tomli_w.dumps({"name": name}).strip()
    head, count = re.subn(r"(?m)^name\s*=.*$", line, head, count=1)
    return (head if count else f"{line}\n{head}") + sep + tail
