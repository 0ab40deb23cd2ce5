"""The swappable parts of a block: normalizations, feed-forward activations and attention.

Names from the config become modules through `NORMALIZATIONS` and `ACTIVATIONS`; attention is
one class whose key/value head count makes it multi-head, multi-query or grouped-query.
Part of the self-contained modeling code that `save_pretrained` copies beside the weights:
it imports only torch.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .positions import apply_rotation


class RMSNorm(nn.Module):
    """Root-mean-square normalization (Zhang & Sennrich 2019), computed in fp32 like Llama's."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype)


NORMALIZATIONS = {
    "layernorm": lambda config: nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps),
    "rmsnorm": lambda config: RMSNorm(config.hidden_size, eps=config.rms_norm_eps),
}


class ResidualProjection(nn.Linear):
    """A projection that writes into the residual stream: initialised with std / sqrt(2 * n_layers) (GPT-2)."""


class MLP(nn.Module):
    """Plain feed-forward: down_proj(act(up_proj(x)))."""

    def __init__(self, config, act: type[nn.Module]):
        super().__init__()
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.down_proj = ResidualProjection(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.up_proj(x)))


class SiLUGate(torch.autograd.Function):
    """silu(gate) * up, saving only its two inputs for backward (autograd alone would also keep
    silu(gate)): one (B, T, d_ff) activation less per layer, silu recomputed in backward."""

    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, up)
        return F.silu(gate) * up

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gate, up = ctx.saved_tensors
        return torch.ops.aten.silu_backward(grad * up, gate), grad * F.silu(gate)


class GatedMLP(nn.Module):
    """Gated feed-forward, SwiGLU (Shazeer 2020): down_proj(silu(gate_proj(x)) * up_proj(x))."""

    def __init__(self, config):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.down_proj = ResidualProjection(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_proj(x), self.up_proj(x)  # (B, T, d_ff) each
        # the autograd Function only where there is a backward to save memory for (not when decoding)
        return self.down_proj(SiLUGate.apply(gate, up) if torch.is_grad_enabled() else F.silu(gate) * up)


ACTIVATIONS = {
    "relu": partial(MLP, act=nn.ReLU),
    "gelu": partial(MLP, act=nn.GELU),
    "leaky_relu": partial(MLP, act=nn.LeakyReLU),
    "silu": partial(MLP, act=nn.SiLU),
    "swiglu": GatedMLP,
}


class Attention(nn.Module):
    """Causal self-attention with `num_key_value_heads` key/value heads shared by groups of query heads.

    `mask` is None on the fused path (SDPA's own causal mask, or one query token that sees every
    cached key); otherwise the model passes a boolean or additive mask covering causality.
    """

    def __init__(self, config, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.hidden_size // self.num_heads
        self.dropout = config.dropout
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = ResidualProjection(self.num_heads * self.head_dim, config.hidden_size, bias=bias)

    def heads(self, x, rotation, cache) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (B, H, T, D), keys and values (B, KV, past + T, D): projected, rotated, cached."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(x).view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)  # (B, KV, T, D)
        v = self.v_proj(x).view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)  # (B, KV, T, D)
        if rotation is not None:
            q, k = apply_rotation(q, k, *rotation)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # (B, KV, past + T, D)
        return q, k, v

    def merge_heads(self, y: torch.Tensor) -> torch.Tensor:
        """(B, H, T, D) head outputs -> (B, T, hidden): concatenated, then o_proj."""
        B, _, T, _ = y.shape
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.num_heads * self.head_dim))

    def forward(self, x, rotation, mask, cache) -> torch.Tensor:
        q, k, v = self.heads(x, rotation, cache)
        return self.merge_heads(attend(q, k, v, mask, self.dropout if self.training else 0.0))  # (B, T, C)


def attend(q, k, v, mask, dropout: float) -> torch.Tensor:
    """SDPA with grouped key/value heads: native `enable_gqa` on the fused path, expanded heads with a mask
    (the fused kernels take GQA only without a mask, as in transformers' sdpa integration)."""
    groups = q.shape[1] // k.shape[1]
    if mask is None:
        return F.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout, is_causal=q.shape[2] > 1, enable_gqa=groups > 1
        )
    if groups > 1:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
