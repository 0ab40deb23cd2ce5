"""The stages' objectives, one module each, behind one registry (the protocol: objectives/base.py).

`OBJECTIVES` maps a stage name to "module:Class"; the module is imported only when the stage
runs, so `import engine.objectives` stays light. Add a stage by adding its line here.
"""

from __future__ import annotations

import importlib

from engine.objectives.base import Objective, ObjectiveContext
from engine.project.problems import LLMLabError

OBJECTIVES = {
    "pretrain": "engine.objectives.pretrain:PretrainObjective",
    "sft": "engine.objectives.sft:SFTObjective",
    "dpo": "engine.objectives.dpo:DPOObjective",
    "ppo": "engine.objectives.ppo:PPOObjective",
    "grpo": "engine.objectives.grpo:GRPOObjective",
}


def check_available(stage: str) -> None:
    """Refuse a stage whose objective is not registered yet."""
    if stage not in OBJECTIVES:
        raise LLMLabError(f"stage: {stage!r} is not available yet (available: {', '.join(OBJECTIVES)})")


def build_objective(ctx: ObjectiveContext) -> Objective:
    """The objective of `ctx.stage`, constructed from `ctx` (its blocks checkpointed when the stage says)."""
    check_available(ctx.stage)
    if ctx.config.activation_checkpointing:
        enable_activation_checkpointing(ctx.model)
    module_name, class_name = OBJECTIVES[ctx.stage].split(":")
    return getattr(importlib.import_module(module_name), class_name)(ctx)


def enable_activation_checkpointing(model) -> None:
    """Recompute each decoder block in backward instead of keeping its activations.

    Non-reentrant torch.utils.checkpoint: gradients reach LoRA adapters even though the blocks'
    inputs (frozen embeddings) do not require grad. older transformers call it gradient_checkpointing_enable.
    """
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable({"use_reentrant": False})


__all__ = ["OBJECTIVES", "Objective", "ObjectiveContext", "build_objective", "check_available"]
