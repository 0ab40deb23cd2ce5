"""Log-probabilities and cross-entropy from the last hidden states, without the batch's full logits.

Every stage's loss needs log p(label) per token: pretraining and SFT average them into a
cross-entropy, DPO sums them per response, PPO and GRPO compare them token by token. The plain
way computes the (tokens x vocab) logits at once and keeps their log-softmax for backward: at
16 x 1024 tokens and a 50 k vocabulary, 3.3 GB in fp32. A stage's `fused_loss` picks the way:

- "chunked": the output head and log-softmax run over chunks of rows, each under
  torch.utils.checkpoint, so forward keeps only the hidden states and backward recomputes one
  chunk's logits at a time (one more head forward: 2 x vocab x d_model FLOPs per token).
  Chunks hold about as many logits as the hidden states have numbers (Liger's rule:
  ceil(vocab / d_model) chunks), so the loss never holds much more than the activations.
- "auto": Liger's fused linear + cross-entropy kernel for the cross-entropy losses on CUDA when
  `liger_kernel` is installed and the head is a plain linear layer; "chunked" otherwise.
- "plain": the model's own logits for the whole batch, in one piece (the reference the others
  are tested against).

The hidden states come from the model's own forward (`output_hidden_states`, with the logits
kept for one position only: `head_input`), so DDP, FSDP and peft wrappers see an ordinary call.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

IGNORE = -100


@dataclass
class HeadInput:
    """What a loss reads from one forward pass: the head's input rows and the head, plus the last
    hidden states (a value head's input). In "plain" mode the rows are the model's own logits and
    the head is the identity; otherwise they are the last hidden states and the output head."""

    rows: torch.Tensor  # (B, T, d) hidden states, or (B, T, vocab) logits
    head: torch.nn.Module
    hidden: torch.Tensor  # (B, T, d)

    def positions(self, start: int | None, stop: int | None) -> HeadInput:
        """The same, for the positions start:stop of every sequence."""
        return HeadInput(self.rows[:, start:stop], self.head, self.hidden[:, start:stop])


def head_input(model: torch.nn.Module, mode: str, **inputs) -> HeadInput:
    """Run `model` (any wrapper around a causal LM) once; chunked modes keep logits for one position only."""
    if mode == "plain":
        output = model(**inputs, output_hidden_states=True)
        return HeadInput(output.logits, torch.nn.Identity(), output.hidden_states[-1])
    output = model(**inputs, output_hidden_states=True, logits_to_keep=1)
    hidden = output.hidden_states[-1]
    return HeadInput(hidden, model.get_output_embeddings(), hidden)


def chunk_rows(rows: int, vocab: int, width: int) -> int:
    """Rows per chunk: ceil(vocab / width) chunks, so a chunk's logits match the hidden states in size."""
    return max(1, math.ceil(rows / math.ceil(vocab / width)))


def _chunk_stats(
    head: torch.nn.Module,
    hidden: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    smoothing: bool,
    entropy: bool,
) -> tuple[torch.Tensor, ...]:
    """Per row: log p(label), and when asked the mean log-probability over the vocabulary
    (label smoothing's term) and the entropy. Rows whose label is IGNORE get 0 for log p(label)."""
    logps = torch.log_softmax(head(hidden).float() / temperature, dim=-1)
    label_logps = logps.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (labels != IGNORE)
    stats = [label_logps]
    if smoothing:
        stats.append(logps.mean(-1))
    if entropy:
        stats.append(-(logps.exp() * logps).sum(-1))
    return tuple(stats)


def token_stats(
    states: HeadInput,
    labels: torch.Tensor,
    mode: str,
    temperature: float = 1.0,
    smoothing: bool = False,
    entropy: bool = False,
) -> tuple[torch.Tensor, ...]:
    """`_chunk_stats` over every row of `states.rows` with `labels` (B, T): each (B, T)."""
    shape = labels.shape
    hidden, flat = states.rows.reshape(-1, states.rows.shape[-1]), labels.reshape(-1)
    if mode == "plain":
        parts = [_chunk_stats(states.head, hidden, flat, temperature, smoothing, entropy)]
    else:
        vocab = states.head.weight.shape[0]
        size = chunk_rows(flat.numel(), vocab, hidden.shape[-1])
        recompute = torch.is_grad_enabled()
        parts = []
        for start in range(0, flat.numel(), size):
            args = (states.head, hidden[start : start + size], flat[start : start + size], temperature)
            if recompute:
                parts.append(checkpoint(_chunk_stats, *args, smoothing, entropy, use_reentrant=False))
            else:
                parts.append(_chunk_stats(*args, smoothing, entropy))
    return tuple(torch.cat(column).view(shape) for column in zip(*parts))


def token_logprobs(states: HeadInput, labels: torch.Tensor, mode: str, temperature: float = 1.0) -> torch.Tensor:
    """log p(label) per token at `temperature`, (B, T); 0 where the label is IGNORE."""
    return token_stats(states, labels, mode, temperature)[0]


def token_logprobs_and_entropy(
    states: HeadInput, labels: torch.Tensor, mode: str, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(label), entropy of the distribution) per token, each (B, T)."""
    return token_stats(states, labels, mode, temperature, entropy=True)


def cross_entropy(
    states: HeadInput, labels: torch.Tensor, mode: str, reduction: str = "mean", label_smoothing: float = 0.0
) -> torch.Tensor:
    """F.cross_entropy of the head's logits against `labels` (IGNORE skipped), without the full logits."""
    if mode == "auto" and _liger_applies(states):
        return _liger_cross_entropy(states, labels, reduction, label_smoothing)
    stats = token_stats(states, labels, mode, smoothing=label_smoothing > 0)
    losses = -stats[0]
    if label_smoothing > 0:
        losses = (1 - label_smoothing) * losses - label_smoothing * stats[1]
    kept = labels != IGNORE
    total = (losses * kept).sum()
    return total if reduction == "sum" else total / kept.sum()


def _liger_applies(states: HeadInput) -> bool:
    head = states.head
    return (
        states.rows.is_cuda
        and type(head) is torch.nn.Linear
        and type(head.weight) is torch.nn.Parameter  # not a sharded DTensor
        and importlib.util.find_spec("liger_kernel") is not None
    )


def _liger_cross_entropy(states: HeadInput, labels: torch.Tensor, reduction: str, smoothing: float) -> torch.Tensor:
    """Liger's fused linear + cross-entropy (CUDA only), in the autocast dtype when autocast is on."""
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    hidden, weight = states.rows.reshape(-1, states.rows.shape[-1]), states.head.weight
    if torch.is_autocast_enabled("cuda"):
        dtype = torch.get_autocast_dtype("cuda")
        hidden, weight = hidden.to(dtype), weight.to(dtype)
    loss_fn = LigerFusedLinearCrossEntropyLoss(ignore_index=IGNORE, label_smoothing=smoothing, reduction=reduction)
    return loss_fn(weight, hidden, labels.reshape(-1), states.head.bias).float()
