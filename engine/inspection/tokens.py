"""Per-token surprise: each token's loss (nats and bits), its probability, the top-k alternatives the
model weighed at that position, the worst tokens, and the total in bits per byte, the engine's
evaluation measure (engine.losses.bits_per_byte over engine.tokenizer.token_byte_lengths).

`token_rows` is also what Chat's colouring reads (engine/chat_worker.py), from the logits its
generation already produced.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.inspection.loading import encode, token_texts
from engine.losses import bits_per_byte
from engine.tokenizer import token_byte_lengths


def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B, T) next-token cross-entropy in nats for (B, T, V) logits and (B, T) already-shifted targets."""
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none").view_as(targets)


def top_alternatives(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, token ids), each (..., k): the k likeliest next tokens, likeliest first."""
    return logits.float().softmax(dim=-1).topk(min(k, logits.shape[-1]), dim=-1)


def token_rows(tokenizer, targets: list[int], logits: torch.Tensor, top_k: int) -> list[dict]:
    """For each id of `targets` and the (T, V) logits row that predicted it: its loss (nats), bits,
    probability (the softmax of the row) and the top-k alternatives of the row, likeliest first."""
    losses = token_losses(logits[None], torch.tensor([targets], device=logits.device))[0].tolist()
    probs, alternatives = top_alternatives(logits, top_k)
    texts = token_texts(tokenizer, targets)
    return [
        {
            "id": targets[t],
            "token": texts[t],
            "loss": loss,
            "bits": loss / math.log(2),
            "prob": math.exp(-loss),
            "top": [
                {"id": i, "token": tokenizer.decode([i]), "prob": p}
                for p, i in zip(probs[t].tolist(), alternatives[t].tolist())
            ],
        }
        for t, loss in enumerate(losses)
    ]


@torch.no_grad()
def scored_tokens(model, tokenizer, ids: list[int], top_k: int = 5) -> list[dict]:
    """For each token after the first of `ids`: its position and its `token_rows` row, one forward pass."""
    logits = model(input_ids=torch.tensor([ids[:-1]], device=model.device), use_cache=False).logits  # (1, T, V)
    rows = token_rows(tokenizer, ids[1:], logits[0], top_k)
    return [{"position": t, **row} for t, row in enumerate(rows)]


def surprise(model, tokenizer, text: str, top_k: int = 5, worst: int = 5) -> dict:
    """The per-token surprise of `text` (read after EOS, as a new document) as plain data."""
    ids = encode(tokenizer, text, context=model.config.max_position_embeddings)
    rows = scored_tokens(model, tokenizer, ids, top_k)
    byte_lengths = token_byte_lengths(tokenizer)
    num_bytes = sum(byte_lengths[i] for i in ids[1:])
    total = sum(row["loss"] for row in rows)
    return {
        "tokens": rows,
        "loss": total / len(rows),
        "bits_per_token": total / len(rows) / math.log(2),
        "bytes": num_bytes,
        "bpb": bits_per_byte(total, num_bytes),
        "worst": sorted(range(len(rows)), key=lambda t: -rows[t]["loss"])[:worst],
    }
