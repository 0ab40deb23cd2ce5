"""The project on disk, torch-free: what the app, the CLI and the engine all read and write.

    schema.py     the dataclasses of project.toml, with defaults and each field's rule
    codec.py      parsed TOML ↔ dataclasses (types and unknown keys checked)
    rules.py      validation: ranges, choices, the rules that span fields
    overrides.py  `--set` lines, applied and derived
    files.py      find / read / load / save (in place, comments kept) / create projects
    layout.py     the names of the files and folders inside a project
    runs.py       run folders, their checkpoints and state
    problems.py   Problem(field, message) and LLMLabError
    fileio.py     atomic writes
    outputs.py    folders a command writes where told (--out): what they may replace
    sizing.py     parameters, FLOPs and memory worked out from the file alone
    sampling.py   the sampling settings' rules (chat, generate): ranges checked without torch

The names most callers need are re-exported here.
"""

from engine.project.codec import project_from_dict, project_to_dict
from engine.project.files import (
    TEMPLATES_DIR,
    load_project,
    new_project,
    project_file,
    project_problems,
    read_toml,
    save_project,
)
from engine.project.layout import PROJECT_FILE
from engine.project.overrides import apply_overrides
from engine.project.problems import LLMLabError, Problem
from engine.project.rules import validate_project
from engine.project.schema import (
    ACTIVATIONS,
    ATTENTIONS,
    DPO_LOSS_TYPES,
    GRPO_LOSS_TYPES,
    LORA_PRESETS,
    NORMALIZATIONS,
    OPTIMIZER_DEFAULTS,
    OPTIMIZERS,
    OPTION_CHOICES,
    OPTION_RULES,
    POSITIONAL_ENCODINGS,
    REWARD_RULES,
    SCALE_REWARDS,
    SCHEDULER_DEFAULTS,
    SCHEDULERS,
    STAGES,
    DatasetConfig,
    DPOConfig,
    FineTuneConfig,
    GRPOConfig,
    LoraConfig,
    ModelConfig,
    OptimizerConfig,
    PolicyConfig,
    PPOConfig,
    Project,
    Range,
    SchedulerConfig,
    SFTConfig,
    StageConfig,
    TokenizerConfig,
)

__all__ = [
    "ACTIVATIONS",
    "ATTENTIONS",
    "DPO_LOSS_TYPES",
    "GRPO_LOSS_TYPES",
    "LORA_PRESETS",
    "NORMALIZATIONS",
    "OPTIMIZERS",
    "OPTIMIZER_DEFAULTS",
    "OPTION_CHOICES",
    "OPTION_RULES",
    "POSITIONAL_ENCODINGS",
    "PROJECT_FILE",
    "REWARD_RULES",
    "SCALE_REWARDS",
    "SCHEDULERS",
    "SCHEDULER_DEFAULTS",
    "STAGES",
    "TEMPLATES_DIR",
    "DPOConfig",
    "DatasetConfig",
    "FineTuneConfig",
    "GRPOConfig",
    "LLMLabError",
    "LoraConfig",
    "ModelConfig",
    "OptimizerConfig",
    "PPOConfig",
    "PolicyConfig",
    "Problem",
    "Project",
    "Range",
    "SFTConfig",
    "SchedulerConfig",
    "StageConfig",
    "TokenizerConfig",
    "apply_overrides",
    "load_project",
    "new_project",
    "project_file",
    "project_from_dict",
    "project_problems",
    "project_to_dict",
    "read_toml",
    "save_project",
    "validate_project",
]
