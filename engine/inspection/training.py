"""Per-layer measures while training (the stage's `layer_stats = true`), at the evaluation cadence.

On a measured step, read-only hooks watch the step's own training forward passes, those that build
a graph (no extra forward; generation and reference passes, run without grad, are left out):
- `act_rms`: the RMS of each block's output, the residual stream after it
- `attn_entropy`: the mean entropy (bits) of each layer's attention rows after the first, from the
  queries and keys the layer computed (`Attention.heads` on its input), the step's output untouched
and, around the update:
- `grad_norm`: the L2 norm of each block's gradients (after averaging over ranks, before clipping)
- `update_ratio`: ‖ΔW‖ / ‖W‖ of each block's weights over the optimizer step, the diagnostic that
  says whether a layer's learning rate is sane (around 1e-3 is the usual healthy range).
Off, nothing here is built: the loop holds None and installs no hook.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch

from engine.inspection.attention import attention_modules, attention_probabilities, head_summary
from engine.inspection.hooks import hooked
from engine.model import DecoderLayer


class LayerStats:
    """The measures of the blocks of `module` (the model, or a wrapper holding it) on every `every`-th step."""

    def __init__(self, module: torch.nn.Module, every: int):
        self.every = every
        self.blocks = [m for m in module.modules() if isinstance(m, DecoderLayer)]
        self.attentions = attention_modules(module)
        self._params = [[p for p in block.parameters() if p.requires_grad] for block in self.blocks]
        self._reset()

    def _reset(self) -> None:
        n = len(self.blocks)
        self._rms_sq, self._entropy, self._passes = [0.0] * n, [0.0] * n, 0
        self._grad_norms: list[float] = []
        self._before: list[list[torch.Tensor]] = []

    def due(self, step: int) -> bool:
        """Whether `step` (the one about to be taken, counted from 1) is measured."""
        return self.every > 0 and step % self.every == 0

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Inside: every forward pass adds its activation RMS and attention entropy per block."""

        def block_hook(index):
            def hook(module, args, output):
                if not torch.is_grad_enabled():
                    return
                self._rms_sq[index] += output.detach().float().pow(2).mean().item()
                if index == 0:
                    self._passes += 1

            return hook

        def attention_hook(index):
            def hook(module, args, output):
                if torch.is_grad_enabled():
                    with torch.no_grad():
                        self._entropy[index] += attention_entropy(module, *args[:3])

            return hook

        handles = [block.register_forward_hook(block_hook(i)) for i, block in enumerate(self.blocks)]
        handles += [attn.register_forward_hook(attention_hook(i)) for i, attn in enumerate(self.attentions)]
        with hooked(handles):
            yield

    @torch.no_grad()
    def before_update(self) -> None:
        """The gradient norm of each block, and a copy of its weights to measure the update by."""
        self._grad_norms = [
            math.sqrt(sum(p.grad.float().pow(2).sum().item() for p in params if p.grad is not None))
            for params in self._params
        ]
        self._before = [[p.detach().clone() for p in params] for params in self._params]

    @torch.no_grad()
    def after_update(self) -> list[dict]:
        """One plain dict per block with the four measures of this step; the counters start again."""
        rows = []
        passes = max(self._passes, 1)
        for i, (params, before) in enumerate(zip(self._params, self._before)):
            change = sum((p.float() - b.float()).pow(2).sum().item() for p, b in zip(params, before))
            size = sum(b.float().pow(2).sum().item() for b in before)
            rows.append(
                {
                    "layer": i,
                    "grad_norm": self._grad_norms[i],
                    "update_ratio": math.sqrt(change / size) if size else float("nan"),
                    "act_rms": math.sqrt(self._rms_sq[i] / passes),
                    "attn_entropy": self._entropy[i] / passes,
                }
            )
        self._reset()
        return rows


def attention_entropy(attn, x, rotation, mask) -> float:
    """Mean entropy in bits of an Attention module's weights on input `x`, over heads, queries after
    the first, and the batch."""
    q, k, _ = attn.heads(x, rotation, None)
    return head_summary(attention_probabilities(attn, q, k, mask).float())["entropy"].mean().item()
