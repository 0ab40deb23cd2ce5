"""The frozen reference policy of DPO, PPO and GRPO.

Three ways, by what the stage says: a `reference` model directory or stage name (loaded once,
frozen); with LoRA, the policy itself with its adapters disabled (no second copy in memory);
otherwise a frozen copy of the starting weights.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


class ReferencePolicy:
    def __init__(self, policy: torch.nn.Module, uses_lora: bool, model: torch.nn.Module | None = None):
        """`model`: a separate reference; None → adapters disabled (LoRA) or a frozen copy of `policy`."""
        self.policy = policy
        self.uses_lora = uses_lora and model is None
        self.model = model if model is not None or self.uses_lora else copy.deepcopy(policy)
        if self.model is not None:
            self.model.requires_grad_(False).eval()

    @classmethod
    def for_stage(cls, ctx, policy: torch.nn.Module, uses_lora: bool, source: str = "") -> ReferencePolicy:
        if not source:
            return cls(policy, uses_lora)
        from engine.factory import load_model
        from engine.project.runs import resolve_init

        return cls(
            policy, uses_lora, load_model(resolve_init(ctx.project, source, field=f"{ctx.stage}.reference"), ctx.device)
        )

    @torch.no_grad()
    def run(self, fn: Callable[[torch.nn.Module], T]) -> T:
        """`fn(reference_model)` without gradients."""
        if self.uses_lora:
            was_training = self.policy.training
            self.policy.eval()
            with self.policy.disable_adapter():
                result = fn(self.policy)
            self.policy.train(was_training)
            return result
        return fn(self.model)
