"""The project.toml schema: every table as a dataclass with defaults, each field's rule in its metadata.

The choice tuples and the optimizer / scheduler registries are the option lists the app offers;
`setting(...)` puts a field's rule (a `Range` or `choices`) in its metadata so the validator
(rules.py) and the app's forms read the same rules. Stage tables share bases: every stage has
the training fields (`StageConfig`), the stages after pretraining start from other weights
(`FineTuneConfig`: init + lora), the RL stages sample and score (`PolicyConfig`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from engine.project.layout import PROJECT_FILE
from engine.project.problems import LLMLabError

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
TRACKERS = ("tensorboard", "trackio", "wandb")  # engine/tracking's tools
# What each reward rule's table accepts beside `name` and `weight` (engine/rewards.py's RULE_OPTIONS).
REWARD_RULE_OPTIONS: dict[str, tuple[str, ...]] = {"exact_match": (), "regex": ("pattern",), "length": ("target",)}
SEED_RANGE = (0, 2**32 - 1)  # numpy's seeding takes 32 bits
MAX_SEQ_LEN = 2**20  # the position tables are built this long: beyond, a size to refuse up front

# Each optimizer's own settings, flat in [stage.optimizer] beside `name`. engine/optim.py maps
# them onto torch / pytorch-optimizer; keep these names stable.
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "adamw": {"betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1},
    # torch.optim.Adafactor: eps2 is its eps[1]; eps[0] stays torch's default (dtype epsilon).
    # torch scales each step by max(eps2, RMS(param)) * min(lr, 1/sqrt(step)): with its eps2 1e-3
    # and weights at RMS ~0.02 a stage lr of 1e-3 barely moves them (4.36 held-out on the 300-step
    # Shakespeare recipe where AdamW reaches 2.08). eps2 = 1 floors the scale at 1, so the step is
    # the stage lr times the normalised update, as with AdamW (HF's scale_parameter=False): 2.13.
    "adafactor": {"beta2_decay": -0.8, "eps2": 1.0, "d": 1.0, "weight_decay": 0.0},
    "lion": {"betas": [0.9, 0.99], "weight_decay": 0.0},
    # Sophia's paper uses betas (0.965, 0.99); beta1 0.9 measured 2.05 where 0.965 gave 2.19 on the
    # 300-step recipe at the stage lr (`llmlab bench components`).
    "sophia": {"betas": [0.9, 0.99], "rho": 0.04, "weight_decay": 0.1, "hessian_update_period": 10},
    # Muon updates the 2-D hidden matrices at the stage lr ("match_rms_adamw" keeps AdamW-like lr
    # values meaningful); embeddings, head, norms and biases go to an AdamW group at adamw_lr
    # (3e-3: 2.24 on the 300-step recipe at stage lr 1e-3, where 3e-4 gave 2.43 and 1e-3 2.27).
    "muon": {
        "momentum": 0.95,
        "nesterov": True,
        "ns_steps": 5,
        "weight_decay": 0.0,
        "adjust_lr_fn": "match_rms_adamw",
        "adamw_lr": 3e-3,
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
    "betas": FRACTION,
    "adamw_betas": FRACTION,
    "eps": POSITIVE,
    "eps2": POSITIVE,
    "d": Range(1),
    "weight_decay": Range(0, 10),  # decoupled decay: lr x weight_decay must also stay below 1
    "adamw_weight_decay": Range(0, 10),
    "beta2_decay": Range(high=0),
    "rho": POSITIVE,
    "hessian_update_period": AT_LEAST_1,
    "momentum": FRACTION,
    "ns_steps": Range(1, 100, high_open=True),  # torch's Muon refuses 100 or more
    "adamw_lr": POSITIVE,
    "min_lr": NON_NEGATIVE,
    "power": POSITIVE,
}
OPTION_CHOICES: dict[str, tuple[str, ...]] = {"adjust_lr_fn": ("original", "match_rms_adamw")}


def setting(
    default: Any = None, *, rule: Range | None = None, choices: tuple[str, ...] | None = None, factory: Any = None
) -> Any:
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
    max_seq_len: int = setting(512, rule=Range(1, MAX_SEQ_LEN))
    dropout: float = setting(0.0, rule=FRACTION)
    bias: bool = False
    tie_embeddings: bool = True
    rope_theta: float = setting(10000.0, rule=Range(1, 1e12))  # below 1 the frequencies overflow
    yarn_factor: float = setting(4.0, rule=Range(1, low_open=True))
    yarn_original_max_seq_len: int = setting(128, rule=Range(1, MAX_SEQ_LEN))
    init_std: float = setting(0.02, rule=Range(0, 1, low_open=True))

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
class NamedSettings:
    """`name` plus that one's own settings (defaults filled in), from a registry of names → defaults."""

    name: str
    options: dict[str, Any]
    REGISTRY: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def default(cls, name: str) -> NamedSettings:
        return cls(name, copy.deepcopy(cls.REGISTRY[name]))


@dataclass
class OptimizerConfig(NamedSettings):
    name: str = "adamw"
    options: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(OPTIMIZER_DEFAULTS["adamw"]))
    REGISTRY: ClassVar[dict[str, dict[str, Any]]] = OPTIMIZER_DEFAULTS


@dataclass
class SchedulerConfig(NamedSettings):
    name: str = "cosine"
    options: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(SCHEDULER_DEFAULTS["cosine"]))
    REGISTRY: ClassVar[dict[str, dict[str, Any]]] = SCHEDULER_DEFAULTS


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
class FineTuneConfig(StageConfig):
    """A stage that starts from other weights, fully or with LoRA adapters (sft, dpo, ppo, grpo)."""

    init: str = "pretrain"  # a stage name (its newest finished run) or a model directory
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class SFTConfig(FineTuneConfig):
    steps: int = setting(1000, rule=AT_LEAST_1)
    lr: float = setting(3e-4, rule=POSITIVE)
    assistant_only: bool = True  # false: the loss covers every token
    packing: bool = False


@dataclass
class DPOConfig(FineTuneConfig):
    steps: int = setting(500, rule=AT_LEAST_1)
    batch_size: int = setting(8, rule=AT_LEAST_1)
    lr: float = setting(5e-5, rule=POSITIVE)
    init: str = "sft"
    reference: str = ""  # blank: the starting policy, frozen
    beta: float = setting(0.1, rule=POSITIVE)
    loss_type: str = setting("sigmoid", choices=DPO_LOSS_TYPES)
    label_smoothing: float = setting(0.0, rule=Range(0, 0.5, high_open=True))


@dataclass
class PolicyConfig(FineTuneConfig):
    """An RL stage: sample replies to prompts, score them, optimise the policy (ppo, grpo)."""

    steps: int = setting(200, rule=AT_LEAST_1)
    batch_size: int = setting(8, rule=AT_LEAST_1)
    lr: float = setting(1e-5, rule=POSITIVE)
    init: str = "sft"
    reward_model: str = ""  # hub id or local path; "" = rules only
    reward_trust_remote_code: bool = False
    reward_rules: list[str | dict] = field(default_factory=list)  # "exact_match" or {name, weight, ...}
    max_new_tokens: int = setting(64, rule=AT_LEAST_1)
    temperature: float = setting(1.0, rule=POSITIVE)
    kl_coef: float = setting(0.05, rule=NON_NEGATIVE)  # the KL penalty's weight (to the reference)
    clip_range: float = setting(0.2, rule=POSITIVE)  # the policy ratio is clipped to 1 ± clip_range
    epochs: int = setting(4, rule=AT_LEAST_1)  # optimisation passes over each rollout
    mini_batch_size: int = setting(4, rule=AT_LEAST_1)


@dataclass
class PPOConfig(PolicyConfig):
    gamma: float = setting(1.0, rule=UNIT)
    lam: float = setting(0.95, rule=UNIT)
    adaptive_kl: bool = False
    kl_target: float = setting(6.0, rule=POSITIVE)
    clip_range_value: float = setting(0.2, rule=POSITIVE)
    vf_coef: float = setting(0.1, rule=NON_NEGATIVE)


@dataclass
class GRPOConfig(PolicyConfig):
    kl_coef: float = setting(0.0, rule=NON_NEGATIVE)  # 0: no reference model at all
    epochs: int = setting(1, rule=AT_LEAST_1)
    group_size: int = setting(4, rule=Range(2))
    clip_range_high: float = setting(0.0, rule=NON_NEGATIVE)  # 0 = off (symmetric clip); > 0: DAPO
    scale_rewards: str = setting("group", choices=SCALE_REWARDS)
    loss_type: str = setting("dapo", choices=GRPO_LOSS_TYPES)


@dataclass
class TrackingConfig:
    # transformers' Trainer's name: the tools a run also reports its train and eval measures to,
    # each an optional extra (pip install -e ".[tensorboard]"); [] = metrics.jsonl only
    report_to: list[str] = setting(factory=list, choices=TRACKERS)


# Keys of earlier versions: validate says what each one is called now.
RENAMED = {
    "ppo.ppo_epochs": "ppo.epochs",
    "ppo.cliprange": "ppo.clip_range",
    "ppo.cliprange_value": "ppo.clip_range_value",
    "grpo.beta": "grpo.kl_coef",
    "grpo.epsilon": "grpo.clip_range",
    "grpo.epsilon_high": "grpo.clip_range_high",
}


@dataclass
class Project:
    name: str = "untitled"
    seed: int = setting(1337, rule=Range(*SEED_RANGE))
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: StageConfig = field(default_factory=StageConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
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
