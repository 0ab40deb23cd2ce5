"""Attention weights, computed explicitly: fused SDPA does not return them.

`explicit_attention` runs an Attention module through its own projections and rotation
(`Attention.heads`), then softmax(q kᵀ / √d + mask) v by hand, with the mask the model built
(causal, ALiBi's bias, padding) and grouped key/value heads repeated to their query heads as
`engine.layers.attend` does; `merge_heads` applies o_proj. `recorded_attention` swaps that path
in for every layer with forward hooks and keeps the weights: the model's outputs stay its own.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch

from engine.inspection.hooks import hooked
from engine.inspection.loading import encode, token_texts
from engine.layers import Attention
from engine.model import causal_mask
from engine.project.problems import LLMLabError


def additive_mask(mask: torch.Tensor | None, q_len: int, k_len: int, device, dtype) -> torch.Tensor:
    """The model's mask as scores to add: None is causal, a bool mask allows where True, floats add."""
    if mask is None:
        mask = causal_mask(q_len, k_len, device)
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, device=device, dtype=dtype).masked_fill(~mask, float("-inf"))
    return mask.to(dtype)


def attention_probabilities(attn: Attention, q, k, mask) -> torch.Tensor:
    """(B, H, T, T) softmax(q kᵀ / √d + mask) for queries (B, H, T, D) and keys (B, KV, T, D), each
    key/value head repeated to the query heads of its group."""
    k = k.repeat_interleave(attn.num_heads // attn.num_kv_heads, dim=1)  # (B, H, T, D)
    T = q.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(attn.head_dim)  # (B, H, T, T)
    scores = scores + additive_mask(mask, T, T, q.device, scores.dtype)
    return scores.float().softmax(dim=-1).to(q.dtype)


def explicit_attention(attn: Attention, x, rotation, mask) -> tuple[torch.Tensor, torch.Tensor]:
    """(the module's output (B, T, C), its weights (B, H, T, T)), without a KV cache."""
    q, k, v = attn.heads(x, rotation, None)  # (B, H, T, D), (B, KV, T, D) x2
    weights = attention_probabilities(attn, q, k, mask)
    v = v.repeat_interleave(attn.num_heads // attn.num_kv_heads, dim=1)  # (B, H, T, D)
    return attn.merge_heads(weights @ v), weights


def attention_modules(model) -> list[Attention]:
    return [module for module in model.modules() if isinstance(module, Attention)]


@contextlib.contextmanager
def recorded_attention(model) -> Iterator[dict[int, torch.Tensor]]:
    """Inside: every Attention takes the explicit path; the dict fills with layer -> weights (B, H, T, T)."""
    weights: dict[int, torch.Tensor] = {}

    def hook(module, args, output):
        x, rotation, mask, cache = args
        if cache is not None:
            raise ValueError("attention weights are recorded without a KV cache: call the model with use_cache=False")
        out, weights[module.layer_idx] = explicit_attention(module, x, rotation, mask)
        return out

    handles = [module.register_forward_hook(hook) for module in attention_modules(model)]
    with hooked(handles):
        yield weights


@torch.no_grad()
def attention_weights(model, input_ids: torch.Tensor) -> torch.Tensor:
    """(L, B, H, T, T) attention weights of every layer for `input_ids` (B, T)."""
    with recorded_attention(model) as weights:
        model(input_ids=input_ids, use_cache=False)
    return torch.stack([weights[i] for i in sorted(weights)]).float()


def head_summary(weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per head, over the queries after the first (the first can only see itself), for (..., T, T) weights:
    `entropy` in bits, `previous` the share on the token before, `first` the share on the first token."""
    rows = weights[..., 1:, :]  # (..., T - 1, T)
    entropy = -(rows * rows.clamp(min=1e-12).log2()).sum(-1).mean(-1)
    previous = weights.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)
    return {"entropy": entropy, "previous": previous, "first": rows[..., 0].mean(-1)}


def induction_score(weights: torch.Tensor, length: int) -> torch.Tensor:
    """For (..., 2n, 2n) weights over a sequence of n tokens repeated twice: the mean weight each query of
    the second copy puts on the token after its earlier occurrence (Olsson et al. 2022); 1 for an
    ideal induction head."""
    queries = torch.arange(length, 2 * length)
    return weights[..., queries, queries - length + 1].mean(-1)


@torch.no_grad()
def induction_scores(model, length: int = 32, seed: int = 0) -> torch.Tensor:
    """(L, H) induction scores on a seeded random sequence of `length` tokens (at most half the
    model's context), repeated."""
    length = min(length, model.config.max_position_embeddings // 2)
    generator = torch.Generator().manual_seed(seed)
    # ids below 256 are bytes in every LLM-Lab tokenizer: real tokens (above lie specials and padding rows)
    tokens = torch.randint(0, min(256, model.config.vocab_size), (1, length), generator=generator)
    ids = torch.cat([tokens, tokens], dim=1).to(model.device)  # (1, 2 * length)
    return induction_score(attention_weights(model, ids)[:, 0], length)


def attention_report(
    model, tokenizer, text: str, layer: int = 0, head: int = 0, induction_length: int = 32, every_head: bool = False
) -> dict:
    """Plain data: the prompt's tokens, every head's summary (with its key/value group and induction
    score) and the weights of one layer and head, (T, T) as lists; `every_head` adds `all_weights`,
    (L, H, T, T), so a reader can move between heads without running the model again (the app)."""
    config = model.config
    for name, value, count in (
        ("--layer", layer, config.num_hidden_layers),
        ("--head", head, config.num_attention_heads),
    ):
        if not 0 <= value < count:
            raise LLMLabError(f"{name}: {value} is not in 0-{count - 1} (the model has {count})")
    ids = encode(tokenizer, text, context=config.max_position_embeddings)
    weights = attention_weights(model, torch.tensor([ids], device=model.device))[:, 0]  # (L, H, T, T)
    summary = head_summary(weights)
    induction = induction_scores(model, induction_length)
    group = config.num_attention_heads // config.num_key_value_heads
    heads = [
        {
            "layer": i,
            "head": h,
            "kv_head": h // group,
            "entropy": summary["entropy"][i, h].item(),
            "previous": summary["previous"][i, h].item(),
            "first": summary["first"][i, h].item(),
            "induction": induction[i, h].item(),
        }
        for i in range(weights.shape[0])
        for h in range(weights.shape[1])
    ]
    report = {
        "tokens": token_texts(tokenizer, ids),
        "layer": layer,
        "head": head,
        "weights": weights[layer, head].tolist(),
        "heads": heads,
    }
    if every_head:
        report["all_weights"] = weights.tolist()
    return report
