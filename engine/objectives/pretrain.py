"""Pretraining: next-token prediction on packed batches of the stage's datasets (engine/data.py).

The held-out measures are the mean next-token loss, its perplexity and bits per byte (the
summed loss in bits over the UTF-8 bytes the targets stand for), which stays comparable across
tokenizers, on a fixed set of `eval_batches` held-out batches.
"""

from __future__ import annotations

import math

import torch

from engine.data import pretraining_data
from engine.logprobs import cross_entropy, head_input
from engine.losses import bits_per_byte
from engine.objectives.base import Objective, ObjectiveContext
from engine.packing import PackedBatch

SAMPLE_TOKENS = 64
SAMPLE_TOP_K = 50
SAMPLE_TEMPERATURE = 0.8


def next_token_loss(
    model: torch.nn.Module, input_ids: torch.Tensor, targets: torch.Tensor, reduction: str = "mean", mode: str = "plain"
) -> torch.Tensor:
    """Cross-entropy of the model's predictions against `targets` (already shifted by one);
    `mode` is the stage's fused_loss (engine/logprobs.py)."""
    return cross_entropy(head_input(model, mode, input_ids=input_ids), targets, mode, reduction)


class PretrainObjective(Objective):
    def __init__(self, ctx: ObjectiveContext):
        self.ctx = ctx
        self.module = ctx.model
        self.data = pretraining_data(ctx.project, ctx.tokenizer, ctx.stage, ctx.rank, ctx.world_size, ctx.progress)

    def _on_device(self, batch: PackedBatch) -> dict:
        # a dict with `input_ids` is also what Sophia's Hessian refresh reads (engine/optim.py)
        to = dict(device=self.ctx.device, non_blocking=True)
        return {"input_ids": batch.input_ids.to(**to), "targets": batch.targets.to(**to)}

    def next_batch(self) -> dict:
        return self._on_device(next(self.data.train))

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        return next_token_loss(self.module, batch["input_ids"], batch["targets"], mode=self.ctx.config.fused_loss), {}

    def tokens(self, batch: dict) -> int:
        return batch["targets"].numel()

    def evaluate(self) -> dict[str, float]:
        if not self.data.eval:
            return {}
        nll = torch.zeros((), device=self.ctx.device, dtype=torch.float64)
        for packed in self.data.eval:
            batch = self._on_device(packed)
            nll += next_token_loss(self.module, batch["input_ids"], batch["targets"], "sum", self.ctx.config.fused_loss)
        total = nll.item()
        tokens = sum(b.num_tokens for b in self.data.eval)
        num_bytes = sum(b.num_bytes for b in self.data.eval)
        loss = total / tokens
        return {
            "loss": loss,
            "ppl": math.exp(min(loss, 50.0)),
            "bpb": bits_per_byte(total, num_bytes),
        }

    def sample(self) -> list[dict]:
        tokenizer, prompt = self.ctx.tokenizer, self.ctx.config.sample_prompt
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
        input_ids = torch.tensor([[tokenizer.eos_token_id, *ids]], device=self.ctx.device)  # EOS: a new document
        output = self.ctx.model.generate(
            input_ids,
            max_new_tokens=SAMPLE_TOKENS,
            do_sample=True,
            top_k=SAMPLE_TOP_K,
            temperature=SAMPLE_TEMPERATURE,
            pad_token_id=tokenizer.eos_token_id,
        )
        text = tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True)
        return [{"prompt": prompt, "text": text}]

    def state_dict(self) -> dict:
        return {"train": self.data.train.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.data.train.load_state_dict(state["train"])

    def source_shares(self) -> dict[str, dict[str, float]]:
        counts = self.data.train.source_token_counts
        total = sum(counts)
        if len(counts) < 2 or total == 0:
            return {}
        return {
            name: {"share": count / total, "weight": weight}
            for name, count, weight in zip(self.data.names, counts, self.data.weights)
        }

    def close(self) -> None:
        self.data.train.close()
