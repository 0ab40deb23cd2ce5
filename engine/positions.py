"""Positional encodings, chosen by name through `POSITIONAL_ENCODINGS`.

Every encoding is a module with three hooks the model calls once per forward pass:
`embed` (add absolute positions to the token embeddings: sinusoidal), `rotation` (the cos/sin
tables that rotate queries and keys: rope, yarn) and `bias` (an additive attention bias: alibi).
The ones an encoding does not use are no-ops. Part of the self-contained modeling code that
`save_pretrained` copies beside the weights: it imports only torch.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def alibi_slopes(num_heads: int) -> list[float]:
    """Per-head ALiBi slopes (Press et al. 2022, the paper's reference code).

    For 2^k heads: the geometric sequence starting at 2^(-8/n) with that ratio. Otherwise the
    slopes of the closest smaller power of two, then every other slope of twice that count.
    """

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(num_heads).is_integer():
        return power_of_two(num_heads)
    closest = 2 ** math.floor(math.log2(num_heads))
    return power_of_two(closest) + alibi_slopes(2 * closest)[0::2][: num_heads - closest]


def rope_frequencies(head_dim: int, theta: float) -> tuple[torch.Tensor, float]:
    """RoPE inverse frequencies theta^(-2i/d) (Su et al. 2021) and attention factor 1."""
    return 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim), 1.0


def yarn_frequencies(
    head_dim: int, theta: float, factor: float, original_max: int, beta_fast: float = 32.0, beta_slow: float = 1.0
) -> tuple[torch.Tensor, float]:
    """YaRN (Peng et al. 2023): NTK-by-parts interpolation of RoPE and its attention factor.

    Dimensions that turn more than `beta_fast` times over the original context keep their
    frequency, those turning fewer than `beta_slow` times are divided by `factor`, with a linear
    ramp between (eq. 17-18); cos and sin are scaled by 0.1 ln(factor) + 1 (eq. 22).
    """

    def correction_dim(rotations: float) -> float:
        return head_dim * math.log(original_max / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low = max(math.floor(correction_dim(beta_fast)), 0)
    high = min(math.ceil(correction_dim(beta_slow)), head_dim - 1)
    extrapolation, _ = rope_frequencies(head_dim, theta)
    interpolation = extrapolation / factor
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float32) - low) / max(high - low, 0.001)).clamp(0, 1)
    keep = 1 - ramp  # 1 where a dimension keeps its original frequency
    attention_factor = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
    return interpolation * (1 - keep) + extrapolation * keep, attention_factor


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """(length, dim): PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same) (Vaswani et al. 2017)."""
    angles = torch.arange(length, dtype=torch.float32)[:, None] * rope_frequencies(dim, 10000.0)[0]
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(1)[:, :dim]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotation(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Rotate (B, H, T, D) queries and keys by the (.., T, D) tables (the half-split convention of Llama)."""
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class PositionalEncoding(nn.Module):
    """The no-op hooks; each encoding overrides the ones it uses."""

    def embed(self, hidden: torch.Tensor, position_ids: torch.Tensor | None, start: int) -> torch.Tensor:
        return hidden

    def rotation(self, position_ids: torch.Tensor | None, start: int, length: int):
        return None

    def bias(self, q_len: int, k_len: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor | None:
        return None

    def reset_tables(self) -> None:
        """Recompute the non-persistent tables (after loading, the weights loader leaves them empty)."""


class _TableLookup(PositionalEncoding):
    """Shared by encodings that read per-position rows from tables grown on demand.

    Rows are sliced when positions are the default `start..start+length` and gathered by
    `position_ids` otherwise (left padding); positions never exceed the key length, so the
    table is grown from Python ints alone, without reading device values.
    """

    def __init__(self, length: int):
        super().__init__()
        self.length = length
        for name, table in self.build(length).items():
            self.register_buffer(name, table, persistent=False)

    def build(self, length: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def reset_tables(self) -> None:
        self._rebuild(self.length)

    def _rebuild(self, length: int) -> None:
        reference = next(self.buffers())
        self.length = length
        for name, table in self.build(length).items():
            setattr(self, name, table.to(device=reference.device, dtype=reference.dtype))

    def rows(self, table_name: str, position_ids: torch.Tensor | None, start: int, length: int) -> torch.Tensor:
        """(length, dim) rows, or (B, length, dim) when `position_ids` is given."""
        if start + length > self.length:
            self._rebuild(max(start + length, 2 * self.length))
        table = getattr(self, table_name)
        return table[start : start + length] if position_ids is None else table[position_ids]


class Sinusoidal(_TableLookup):
    """Fixed sinusoids added to the token embeddings (Vaswani et al. 2017), scaled to their size.

    The table's entries have RMS 1/sqrt(2) while the token embeddings start at std
    `initializer_range` (0.02): added as they are, position is ~35x the token and the first norm
    all but erases which token it is (`llmlab bench components`, tiny Shakespeare, 300 steps:
    held-out 3.35 where RoPE reaches 2.08). Vaswani et al. multiply the embeddings by sqrt(d_model)
    instead, which only helps when they start at std ~1/sqrt(d_model) and depends on the width;
    scaling the table by initializer_range * sqrt(2) gives position the token's RMS at any width,
    and the bench measured 2.34 with it (2.43 with the sqrt(d_model) factor, 2.34 at a 0.1 scale).
    """

    def __init__(self, config):
        self.dim = config.hidden_size
        self.scale = config.initializer_range * math.sqrt(2)
        super().__init__(config.max_position_embeddings)

    def build(self, length: int) -> dict[str, torch.Tensor]:
        return {"table": sinusoid_table(length, self.dim) * self.scale}

    def embed(self, hidden, position_ids, start):
        return hidden + self.rows("table", position_ids, start, hidden.shape[1]).to(hidden.dtype)


class Rotary(_TableLookup):
    """RoPE: queries and keys rotated by position-dependent angles; cos/sin cached in tables."""

    def __init__(self, config):
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.rope = dict(config.rope_parameters)
        super().__init__(config.max_position_embeddings)

    def frequencies(self) -> tuple[torch.Tensor, float]:
        return rope_frequencies(self.head_dim, self.rope["rope_theta"])

    def build(self, length: int) -> dict[str, torch.Tensor]:
        inv_freq, attention_factor = self.frequencies()
        angles = torch.arange(length, dtype=torch.float32)[:, None] * inv_freq
        angles = torch.cat((angles, angles), dim=-1)  # (length, head_dim)
        return {"cos": angles.cos() * attention_factor, "sin": angles.sin() * attention_factor}

    def rotation(self, position_ids, start, length):
        cos = self.rows("cos", position_ids, start, length)
        sin = self.rows("sin", position_ids, start, length)
        if position_ids is not None:  # (B, T, D) -> (B, 1, T, D), broadcast over heads
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        return cos, sin


class YaRN(Rotary):
    """RoPE extended `factor` times beyond `original_max_position_embeddings` by YaRN."""

    def frequencies(self) -> tuple[torch.Tensor, float]:
        p = self.rope
        return yarn_frequencies(
            self.head_dim,
            p["rope_theta"],
            p["factor"],
            p["original_max_position_embeddings"],
            p.get("beta_fast") or 32.0,
            p.get("beta_slow") or 1.0,
        )


class ALiBi(PositionalEncoding):
    """Attention with linear biases (Press et al. 2022): -slope_h * (i - j) added to the scores.

    The bias (causal -inf above the diagonal included) depends only on the query and key
    lengths; the largest square needed so far is built once per device and dtype and every
    forward pass takes a slice of it.
    """

    def __init__(self, config):
        super().__init__()
        self.slopes = alibi_slopes(config.num_attention_heads)
        self._square: torch.Tensor | None = None

    def reset_tables(self) -> None:
        self._square = None

    def _build(self, size: int, device, dtype) -> torch.Tensor:
        index = torch.arange(size, device=device)
        distance = (index[:, None] - index[None, :]).to(torch.float32)  # i - j
        slopes = torch.tensor(self.slopes, device=device, dtype=torch.float32)
        square = -slopes[:, None, None] * distance  # (H, size, size)
        return square.masked_fill(distance < 0, float("-inf")).to(dtype)

    def bias(self, q_len, k_len, device, dtype):
        square = self._square
        size = 0 if square is None else square.shape[-1]
        if size < k_len or square.device != device or square.dtype != dtype:
            size = max(k_len, 2 * size) if size < k_len else size
            square = self._square = self._build(size, device, dtype)
        return square[:, k_len - q_len : k_len, :k_len]  # (H, q_len, k_len)


POSITIONAL_ENCODINGS: dict[str, type[PositionalEncoding]] = {
    "sinusoidal": Sinusoidal,
    "rope": Rotary,
    "alibi": ALiBi,
    "yarn": YaRN,
}
