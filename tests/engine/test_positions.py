"""Positional encodings against their formulas and against transformers' own rotary code."""

import math

import pytest
import torch
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from engine.model import LLMLabConfig
from engine.positions import ALiBi, Rotary, Sinusoidal, YaRN, alibi_slopes, apply_rotation, yarn_frequencies


def config(**overrides) -> LLMLabConfig:
    fields = dict(hidden_size=64, num_attention_heads=4, max_position_embeddings=32, vocab_size=64)
    return LLMLabConfig(**{**fields, **overrides})


@pytest.mark.parametrize(
    "heads, expected",
    [
        (4, [2**-2, 2**-4, 2**-6, 2**-8]),
        (8, [2**-k for k in range(1, 9)]),
        # not a power of two: the 4-head slopes, then every other slope of the 8-head set
        (6, [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]),
        # the 8-head slopes, then the first four odd ones of the 16-head set (2^-0.5, 2^-1.5, ...)
        (12, [2**-k for k in range(1, 9)] + [2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5]),
    ],
)
def test_alibi_slopes_follow_the_paper(heads, expected):
    assert alibi_slopes(heads) == pytest.approx(expected, rel=1e-12)


def test_alibi_bias_is_minus_slope_times_distance_with_causal_minus_infinity():
    alibi = ALiBi(config(num_attention_heads=4))
    bias = alibi.bias(5, 5, torch.device("cpu"), torch.float32)
    slopes = alibi_slopes(4)
    for h in range(4):
        for i in range(5):
            for j in range(5):
                expected = -slopes[h] * (i - j) if j <= i else -math.inf
                assert bias[h, i, j].item() == pytest.approx(expected)
    # a decoding step (1 query after 4 cached keys) is the last row of the full square
    assert torch.equal(alibi.bias(1, 5, torch.device("cpu"), torch.float32), bias[:, 4:5, :])
    # longer sequences grow the cached square; earlier rows stay the same
    assert torch.equal(alibi.bias(9, 9, torch.device("cpu"), torch.float32)[:, :5, :5], bias)


def test_sinusoidal_table_follows_vaswani_at_the_token_embeddings_size():
    cfg = config(hidden_size=10, num_attention_heads=2)
    encoding = Sinusoidal(cfg)
    hidden = torch.zeros(1, 7, 10)
    table = encoding.embed(hidden, None, 0)[0]
    scale = cfg.initializer_range * math.sqrt(2)  # RMS of the rows = the embeddings' init std
    for pos in range(7):
        for i in range(5):
            angle = pos / 10000 ** (2 * i / 10)
            assert table[pos, 2 * i].item() == pytest.approx(scale * math.sin(angle), abs=1e-7)
            assert table[pos, 2 * i + 1].item() == pytest.approx(scale * math.cos(angle), abs=1e-7)
    assert table.pow(2).mean().sqrt().item() == pytest.approx(cfg.initializer_range, rel=1e-5)


def test_tables_grow_past_max_positions_with_the_same_values():
    cfg = config(max_position_embeddings=8)
    short, long = Rotary(cfg), Rotary(config(max_position_embeddings=64))
    cos, sin = short.rotation(None, 20, 10)  # positions 20..29: beyond the 8-row table
    assert torch.allclose(cos, long.cos[20:30], atol=1e-6) and torch.allclose(sin, long.sin[20:30], atol=1e-6)
    ids = torch.tensor([[0, 3, 29]])
    gathered, _ = short.rotation(ids, 27, 3)
    assert torch.allclose(gathered[0, 0], long.cos[[0, 3, 29]], atol=1e-6)


def llama_rotary(rope_parameters: dict, head_dim: int = 16, heads: int = 4, max_len: int = 32):
    llama = LlamaConfig(
        hidden_size=head_dim * heads,
        num_attention_heads=heads,
        max_position_embeddings=max_len,
        rope_parameters=rope_parameters,
    )
    return LlamaRotaryEmbedding(llama)


@pytest.mark.parametrize("theta", [10000.0, 500.0])
def test_rope_matches_transformers(theta):
    ours = Rotary(config(rope_parameters={"rope_type": "default", "rope_theta": theta}))
    reference = llama_rotary({"rope_type": "default", "rope_theta": theta})
    positions = torch.arange(32)[None]
    cos, sin = reference(torch.zeros(1, dtype=torch.float32), positions)
    our_cos, our_sin = ours.rotation(None, 0, 32)
    assert torch.allclose(our_cos, cos[0], atol=1e-6) and torch.allclose(our_sin, sin[0], atol=1e-6)
    q, k = torch.randn(2, 4, 32, 16), torch.randn(2, 2, 32, 16)
    expected_q, expected_k = apply_rotary_pos_emb(q, k, cos, sin)
    got_q, got_k = apply_rotation(q, k, our_cos, our_sin)
    assert torch.allclose(got_q, expected_q, atol=1e-6) and torch.allclose(got_k, expected_k, atol=1e-6)


@pytest.mark.parametrize(
    "head_dim, theta, factor, original",
    [(16, 10000.0, 4.0, 16), (32, 10000.0, 2.0, 64), (64, 500000.0, 8.0, 128), (8, 1000.0, 1.5, 8)],
)
def test_yarn_frequencies_match_transformers(head_dim, theta, factor, original):
    params = {"rope_type": "yarn", "rope_theta": theta, "factor": factor, "original_max_position_embeddings": original}
    llama = LlamaConfig(
        hidden_size=head_dim * 2, num_attention_heads=2, max_position_embeddings=original * 4, rope_parameters=params
    )
    expected_freq, expected_factor = ROPE_INIT_FUNCTIONS["yarn"](llama)
    inv_freq, attention_factor = yarn_frequencies(head_dim, theta, factor, original)
    assert torch.allclose(inv_freq, expected_freq, rtol=1e-6, atol=0)
    assert attention_factor == pytest.approx(expected_factor)
    assert attention_factor > 1


def test_yarn_tables_match_transformers_rotary_embedding():
    params = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 8}
    ours = YaRN(config(positional_encoding="yarn", rope_parameters=dict(params)))
    reference = llama_rotary(dict(params))
    ids = torch.tensor([[0, 5, 17, 31], [2, 3, 4, 30]])
    cos, sin = reference(torch.zeros(1), ids)
    our_cos, our_sin = ours.rotation(ids, 28, 4)
    assert torch.allclose(our_cos[:, 0], cos, atol=1e-6) and torch.allclose(our_sin[:, 0], sin, atol=1e-6)
