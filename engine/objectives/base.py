"""The objective protocol: what a stage gives the one training loop (engine/trainer.py).

A stage is an objective. The loop owns everything generic — device, precision, gradient
accumulation, clipping, the optimizer and its schedule, the distributed gradient average, the
step/eval/sample/checkpoint cadence, events, resume — and asks the objective only for batches,
losses and its own measures. Each step the loop does, for each of `grad_accum` micro-batches:

    with precision.autocast():
        batch = objective.next_batch()          # RL objectives may sample rollouts in here
        loss, metrics = objective.loss(batch)   # a 0-d tensor + {name: 0-d tensor | float}
    (loss / grad_accum).backward()

then averages gradients across ranks, clips, steps. Rules an objective keeps:

- `loss` returns the mean loss of its micro-batch and never calls `.item()`: the loop reads
  losses and metrics in one host sync when it logs. Per-step metrics are averaged over the
  micro-batches of a step and emitted flat in the `metrics` event next to the loop's own.
- A loss that averages over the whole step rather than each micro-batch (GRPO's dapo: every
  token of the step counts the same) draws the step's `grad_accum` micro-batches together at
  its first `next_batch`, and each micro-batch's `loss` is its sum × grad_accum / the step's
  count, so that the loop's division by grad_accum leaves the step's mean.
- `module` is the `nn.Module` whose trainable parameters (`requires_grad`) the optimizer gets:
  `ctx.model`, a peft model wrapping it, or a module holding the policy and a value head.
  Its parameters must be on `ctx.device`. The loop never calls `module`'s forward itself, so an
  objective may call its models however it needs (several forwards, `generate`).
- `next_batch` runs with gradients enabled; wrap rollout sampling in `torch.no_grad()` and set
  train/eval modes yourself. Under DDP each rank must draw its own share of the data
  (`ctx.rank`, `ctx.world_size`); the global batch is world_size × grad_accum × micro-batch.
- `evaluate` and `sample` are called on rank 0 only, with `module.eval()`, `torch.no_grad()`
  and autocast in place; the loop restores train mode afterwards. They must not use
  collectives (the other ranks are not there to answer). Under parallel = "fsdp" they run on
  every rank instead (a sharded forward needs every rank), so they must do the same work on
  each: rank-independent held-out data, and sampling from the seed the loop sets. `evaluate` returns floats: its `loss`
  becomes the report's eval loss and `bpb` its bits per byte, when the objective has them.
- `state_dict` / `load_state_dict` carry the data position (and any objective RNG) for resume:
  tensors and builtins only, since trainer state is loaded with `weights_only=True`.
- A checkpoint directory is written as: `ctx.tokenizer.save_pretrained(dir)`, then
  `objective.save(dir)`, then — unless `save` returned True because it wrote the weights itself
  (LoRA adapters) — `ctx.model.save_pretrained(dir)`. So `save` may add or overwrite files
  (a value head, the tokenizer with its chat template).
- On resume, `ctx.model` already holds the checkpoint's full weights when it has them
  (model.safetensors); `ctx.resume_dir` names the checkpoint so that the objective can restore
  what else it saved there (adapters, a value head) in its constructor.
- `source_shares` reports, per configured dataset, the share of tokens drawn so far next to its
  configured weight: {name: {"share": float, "weight": float}} ({} when there is one source).

Objectives may subclass `Objective` to inherit the defaults of the optional parts; nothing else
is inherited. Register a new stage in `engine/objectives/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from engine.device import Precision
    from engine.project import Project


@dataclass
class ObjectiveContext:
    """What the loop hands an objective's constructor."""

    project: Project
    stage: str
    config: Any  # the stage's config dataclass (StageConfig, SFTConfig, ...)
    tokenizer: Any  # a transformers tokenizer
    model: torch.nn.Module  # the starting model, already on `device`
    device: torch.device
    precision: Precision  # `precision.autocast()` is the context the loop trains under
    seed: int
    run_dir: Path | None = None  # None outside a run (benchmarks, tests)
    rank: int = 0
    world_size: int = 1
    resume_dir: Path | None = None  # the checkpoint a resumed run starts from
    log: Callable[[str, str], None] = lambda message, level="info": None  # emits a `log` event
    # progress(message, done, total, unit) of a long preparation step (engine.data.Progress)
    progress: Callable[[str, int, int | None, str], None] = lambda message, done, total, unit: None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class Objective(Protocol):
    """A stage's batches, loss and measures (see the module docstring for the contract)."""

    module: torch.nn.Module

    def next_batch(self) -> Any: ...

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]: ...

    def tokens(self, batch: Any) -> int:
        """Tokens the batch trains on (for tokens/s, tokens seen and MFU)."""
        ...

    def evaluate(self) -> dict[str, float]:
        return {}

    def sample(self) -> list[dict]:
        """A few generations for the `sample` event: [{"prompt": str, "text": str}]."""
        return []

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None

    def save(self, model_dir: Path) -> bool:
        """Write what this stage adds to a checkpoint; True if it also wrote the weights."""
        return False

    def source_shares(self) -> dict[str, dict[str, float]]:
        return {}

    def close(self) -> None:
        """Stop what the objective runs beside the loop (its data's background thread)."""
        return None
