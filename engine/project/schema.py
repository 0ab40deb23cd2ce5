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
# How a stage's loss gets log-probabilities from the last hidden states (engine/logprobs.py):
# auto = Liger's fused kernel for cross-entropy on CUDA where liger_kernel is installed, else chunked.
FUSED_LOSSES = ("auto", "chunked", "plain")
PARALLELS = ("ddp", "fsdp")  # how torchrun ranks share the model: replicated (ddp) or sharded (fsdp)
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
# What each optimizer / scheduler setting means (the rule comes from OPTION_RULES / OPTION_CHOICES).
OPTION_HELP: dict[str, str] = {
    "betas": "the decay rates of the moving averages of the gradient and its square (beta1, beta2)",
    "adamw_betas": "betas of the AdamW group (embeddings, head, norms, biases)",
    "eps": "added to the denominator so a tiny second moment cannot blow a step up",
    "eps2": "the floor of the parameter scale of each step (1: steps at the stage lr, as AdamW)",
    "d": "clipping threshold of the update's RMS",
    "weight_decay": "decoupled weight decay: each step scales the weights by 1 - lr x weight_decay",
    "adamw_weight_decay": "weight decay of the AdamW group",
    "beta2_decay": "how fast the second-moment average forgets (the exponent of the step)",
    "rho": "the clipping ratio of the Hessian-scaled update",
    "hessian_update_period": "steps between two Hessian estimates",
    "momentum": "the momentum of the update",
    "nesterov": "use Nesterov momentum",
    "ns_steps": "Newton-Schulz iterations that orthogonalise each update",
    "adjust_lr_fn": "how the update is scaled: match_rms_adamw keeps AdamW-like lr values meaningful",
    "adamw_lr": "the learning rate of the AdamW group",
    "min_lr": "the learning rate the schedule ends at",
    "power": "the exponent of the polynomial decay (1: linear)",
}
OPTIMIZER_HELP = "the optimizer; its own settings follow the name"
SCHEDULER_HELP = "the learning-rate schedule after the warmup; its own settings follow the name"


def setting(
    default: Any = None,
    *,
    help: str = "",
    rule: Range | None = None,
    choices: tuple[str, ...] | None = None,
    factory: Any = None,
) -> Any:
    """A dataclass field whose metadata holds its meaning (`help`, with its unit) and its rule;
    `factory` for mutable defaults. A subclass that only changes a default may leave `help` out:
    the base class's is used (descriptions.py)."""
    metadata = {"help": help, "rule": rule, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TokenizerConfig:
    source: str = setting(
        "bpe", help='"bytes" (256 byte tokens), "bpe" (trained into tokenizer/), a hub id or a local path'
    )
    vocab_size: int = setting(4096, help="tokens of the trained BPE: 256 bytes + 2 special + merges", rule=Range(258))
    trust_remote_code: bool = setting(False, help="let a hub tokenizer run its own code")
    train_text: list[str] = setting(
        help='files the BPE trains on, e.g. ["data.txt"]; []: the pretrain data', factory=list
    )


@dataclass
class ModelConfig:
    positional_encoding: str = setting(
        "rope",
        help="how positions enter: added sinusoids, or rotations / biases in attention",
        choices=POSITIONAL_ENCODINGS,
    )
    normalization: str = setting("rmsnorm", help="the norm before each attention and FFN", choices=NORMALIZATIONS)
    attention: str = setting(
        "gqa", help="mha: a kv head per query head; mqa: one; gqa: n_kv_heads shared", choices=ATTENTIONS
    )
    activation: str = setting(
        "swiglu", help="the FFN's nonlinearity (swiglu: gated, three matrices)", choices=ACTIVATIONS
    )
    d_model: int = setting(256, help="the width of each token's vector (features)", rule=AT_LEAST_1)
    n_layers: int = setting(4, help="decoder blocks stacked", rule=AT_LEAST_1)
    n_heads: int = setting(8, help="query heads per attention; d_model / n_heads is the head size", rule=AT_LEAST_1)
    n_kv_heads: int = setting(
        2, help="key/value heads for gqa (n_heads must be divisible by it); mqa: 1, mha: n_heads", rule=AT_LEAST_1
    )
    d_ff: int = setting(768, help="the FFN's hidden width (features)", rule=AT_LEAST_1)
    max_seq_len: int = setting(512, help="the longest sequence the model takes (tokens)", rule=Range(1, MAX_SEQ_LEN))
    dropout: float = setting(0.0, help="the share of activations dropped while training", rule=FRACTION)
    bias: bool = setting(False, help="biases in the linear layers")
    tie_embeddings: bool = setting(True, help="the output head shares the token embedding matrix")
    rope_theta: float = setting(
        10000.0, help="RoPE's base wavelength (larger: slower rotation, longer context)", rule=Range(1, 1e12)
    )  # below 1 the frequencies overflow
    yarn_factor: float = setting(
        4.0, help="YaRN's context extension (times the original length)", rule=Range(1, low_open=True)
    )
    yarn_original_max_seq_len: int = setting(
        128, help="the length the positions were made for before YaRN (tokens)", rule=Range(1, MAX_SEQ_LEN)
    )
    init_std: float = setting(
        0.02, help="the standard deviation of the initial weights", rule=Range(0, 1, low_open=True)
    )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


@dataclass
class DatasetConfig:
    path: str = setting("", help="a hub id, or a local file / folder (relative to the project)")
    name: str = setting("", help='the hub config name; "": none')
    split: str = setting("train", help="the split trained on")
    eval_split: str = setting("", help='the split evaluated on; "": hold out eval_fraction of the data')
    eval_fraction: float = setting(0.05, help="the share held out for eval when there is no eval_split", rule=FRACTION)
    text_field: str = setting("text", help="the column holding the text (pretrain)")
    columns: dict[str, str] = setting(help='rename columns, e.g. {question = "prompt"}', factory=dict)
    weight: float = setting(
        1.0, help="this dataset's share of the mix, relative to the others' weights", rule=NON_NEGATIVE
    )
    streaming: bool = setting(False, help="read a hub dataset as a stream instead of downloading it all")


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
    enabled: bool = setting(False, help="train small adapter matrices instead of every weight")
    preset: str = setting("minimal", help="which layers get adapters (custom: target_modules)", choices=LORA_PRESETS)
    r: int = setting(8, help="the adapters' rank", rule=AT_LEAST_1)
    alpha: float = setting(16.0, help="the adapters' scale: the update is multiplied by alpha / r", rule=POSITIVE)
    dropout: float = setting(0.05, help="dropout on the adapters' input", rule=FRACTION)
    target_modules: list[str] = setting(
        help='module names for the custom preset, e.g. ["q_proj", "v_proj"]', factory=list
    )


@dataclass
class StageConfig:
    """The training fields every stage has (pretrain uses exactly these)."""

    steps: int = setting(2000, help="optimizer steps to train", rule=AT_LEAST_1)
    batch_size: int = setting(16, help="sequences per micro-batch", rule=AT_LEAST_1)
    grad_accum: int = setting(1, help="micro-batches summed into each step", rule=AT_LEAST_1)
    seq_len: int = setting(256, help="tokens per training sequence (at most model.max_seq_len)", rule=AT_LEAST_1)
    lr: float = setting(1e-3, help="the peak learning rate, reached after the warmup", rule=POSITIVE)
    warmup_steps: int = setting(100, help="steps the learning rate rises linearly from 0", rule=NON_NEGATIVE)
    grad_clip: float = setting(1.0, help="the largest gradient norm (0: no clipping)", rule=NON_NEGATIVE)
    eval_every: int = setting(250, help="steps between evaluations (0: never)", rule=NON_NEGATIVE)
    eval_batches: int = setting(20, help="batches each evaluation averages", rule=AT_LEAST_1)
    layer_stats: bool = setting(
        False, help="per-layer grad norm, update/weight ratio, activation RMS, attention entropy at each eval"
    )
    sample_every: int = setting(250, help="steps between samples of generated text (0: never)", rule=NON_NEGATIVE)
    sample_prompt: str = setting("", help='the text samples start from ("": a few of the data\'s prompts)')
    save_every: int = setting(500, help="steps between checkpoints (0: only final/)", rule=NON_NEGATIVE)
    keep_last: int = setting(3, help="checkpoints kept besides final/ (0: keep every one)", rule=NON_NEGATIVE)
    compile: bool = setting(False, help="torch.compile the model (slower start, faster steps)")
    activation_checkpointing: bool = setting(
        False, help="recompute each block in backward: less activation memory, about 1/3 more compute"
    )
    fused_loss: str = setting(
        "auto", choices=FUSED_LOSSES, help="how the loss meets the logits (plain: the whole batch's logits at once)"
    )
    parallel: str = setting(
        "ddp",
        choices=PARALLELS,
        help="torchrun runs: ddp replicates the model on every rank, fsdp shards weights, grads, optimizer state",
    )
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    datasets: list[DatasetConfig] = field(default_factory=list)


@dataclass
class FineTuneConfig(StageConfig):
    """A stage that starts from other weights, fully or with LoRA adapters (sft, dpo, ppo, grpo)."""

    init: str = setting("pretrain", help="the starting weights: a stage (its newest finished run) or a model folder")
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class SFTConfig(FineTuneConfig):
    steps: int = setting(1000, rule=AT_LEAST_1)
    lr: float = setting(3e-4, rule=POSITIVE)
    assistant_only: bool = setting(True, help="the loss covers the replies only (off: every token)")
    packing: bool = setting(False, help="pack several conversations into each sequence")


@dataclass
class DPOConfig(FineTuneConfig):
    steps: int = setting(500, rule=AT_LEAST_1)
    batch_size: int = setting(8, rule=AT_LEAST_1)
    lr: float = setting(5e-5, rule=POSITIVE)
    init: str = setting("sft")
    reference: str = setting("", help='the frozen reference model ("": the starting policy)')
    beta: float = setting(0.1, help="how far the policy may move from the reference (larger: less)", rule=POSITIVE)
    loss_type: str = setting("sigmoid", help="sigmoid (DPO), hinge (SLiC) or ipo", choices=DPO_LOSS_TYPES)
    label_smoothing: float = setting(
        0.0, help="the assumed share of flipped preferences (cDPO; sigmoid only)", rule=Range(0, 0.5, high_open=True)
    )


@dataclass
class PolicyConfig(FineTuneConfig):
    """An RL stage: sample replies to prompts, score them, optimise the policy (ppo, grpo)."""

    steps: int = setting(200, rule=AT_LEAST_1)
    batch_size: int = setting(8, rule=AT_LEAST_1)
    lr: float = setting(1e-5, rule=POSITIVE)
    init: str = setting("sft")
    reward_model: str = setting("", help='a reward model: hub id or local path ("": the reward rules only)')
    reward_trust_remote_code: bool = setting(False, help="let the reward model run its own code")
    reward_rules: list[str | dict] = setting(
        help='built-in rewards, e.g. ["exact_match"] or [{name = "length", target = 50}]', factory=list
    )
    max_new_tokens: int = setting(64, help="the longest sampled reply (tokens)", rule=AT_LEAST_1)
    temperature: float = setting(1.0, help="the sampling temperature of the replies", rule=POSITIVE)
    kl_coef: float = setting(0.05, help="the weight of the KL penalty to the reference", rule=NON_NEGATIVE)
    clip_range: float = setting(0.2, help="the policy ratio is clipped to 1 ± clip_range", rule=POSITIVE)
    epochs: int = setting(4, help="optimisation passes over each rollout", rule=AT_LEAST_1)
    mini_batch_size: int = setting(4, help="replies per optimisation step of a pass", rule=AT_LEAST_1)


@dataclass
class PPOConfig(PolicyConfig):
    gamma: float = setting(1.0, help="the discount of future rewards per token", rule=UNIT)
    lam: float = setting(0.95, help="GAE's lambda: bias against variance of the advantages", rule=UNIT)
    adaptive_kl: bool = setting(False, help="adjust kl_coef to keep the KL near kl_target")
    kl_target: float = setting(6.0, help="the KL adaptive_kl aims at (nats per reply)", rule=POSITIVE)
    clip_range_value: float = setting(0.2, help="the value head's predictions are clipped to ± this", rule=POSITIVE)
    vf_coef: float = setting(0.1, help="the weight of the value loss", rule=NON_NEGATIVE)


@dataclass
class GRPOConfig(PolicyConfig):
    kl_coef: float = setting(
        0.0, help="the weight of the KL to the reference (0: no reference model)", rule=NON_NEGATIVE
    )
    epochs: int = setting(1, rule=AT_LEAST_1)
    group_size: int = setting(4, help="replies sampled per prompt and compared with each other", rule=Range(2))
    clip_range_high: float = setting(
        0.0, help="the upper clip of the ratio (0: symmetric; > 0: DAPO's clip-higher)", rule=NON_NEGATIVE
    )
    scale_rewards: str = setting(
        "group", help="advantages divided by the std of the group, the batch or none", choices=SCALE_REWARDS
    )
    loss_type: str = setting(
        "dapo", help="how token losses are averaged: grpo, dr_grpo or dapo", choices=GRPO_LOSS_TYPES
    )


@dataclass
class TrackingConfig:
    # transformers' Trainer's name: the tools a run also reports its train and eval measures to,
    # each an optional extra (pip install -e ".[tensorboard]"); [] = metrics.jsonl only
    report_to: list[str] = setting(factory=list, choices=TRACKERS, help="tools each run also reports to")


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
    name: str = setting("untitled", help="the project's name")
    seed: int = setting(
        1337, help="the seed of every random choice (weights, data order, sampling)", rule=Range(*SEED_RANGE)
    )
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
