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
    """The objective of `ctx.stage`, constructed from `ctx`."""
    check_available(ctx.stage)
    module_name, class_name = OBJECTIVES[ctx.stage].split(":")
    return getattr(importlib.import_module(module_name), class_name)(ctx)


__all__ = ["OBJECTIVES", "Objective", "ObjectiveContext", "build_objective", "check_available"]
