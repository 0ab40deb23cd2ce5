"""The explicit attention path reproduces the model's SDPA output for every encoding and attention kind;
its weights are causal distributions; the per-head summaries measure what they say."""

import pytest
import torch

from engine.inspection.attention import (
    attention_report,
    attention_weights,
    head_summary,
    induction_score,
    induction_scores,
    recorded_attention,
)
from tests.engine.inspection.models import KINDS, byte_model, random_ids, tiny_model

ATOL = 1e-4  # logits of size ~6; a path without its rotation or mask is off by more than 1


@pytest.mark.parametrize("kind", KINDS, ids="-".join)
@torch.no_grad()
def test_explicit_path_reproduces_the_model(kind):
    model = tiny_model(*kind)
    ids = random_ids(length=20)  # past yarn's original 16-token context
    expected = model(ids, use_cache=False, output_hidden_states=True)
    with recorded_attention(model) as weights:
        got = model(ids, use_cache=False, output_hidden_states=True)
    assert sorted(weights) == [0, 1]
    for block_expected, block_got in zip(expected.hidden_states, got.hidden_states):
        torch.testing.assert_close(block_got, block_expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.logits, expected.logits, atol=ATOL, rtol=0)
    w = torch.stack([weights[0], weights[1]])  # (L, B, H, T, T)
    assert w.shape == (2, 2, 4, 20, 20)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 4, 20), atol=1e-6, rtol=0)
    assert torch.all(w.triu(diagonal=1) == 0)


@torch.no_grad()
def test_explicit_path_in_bfloat16():
    """In bf16 (the CUDA precision) the explicit path stays within bf16's rounding of the fused one
    (0.2 on logits of size ~6, measured; a path without rotation is off by more than 4)."""
    model = tiny_model("yarn", "gqa").to(torch.bfloat16)
    ids = random_ids()
    expected = model(ids, use_cache=False).logits.float()
    with recorded_attention(model) as weights:
        got = model(ids, use_cache=False).logits.float()
    assert weights[0].dtype == torch.bfloat16
    torch.testing.assert_close(got, expected, atol=0.5, rtol=0)


@torch.no_grad()
def test_explicit_path_follows_padding_masks():
    """Under left padding the model passes a boolean mask: the explicit path reads it the same way."""
    model = tiny_model("alibi", "mqa")
    ids = random_ids()
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    expected = model(ids, attention_mask=mask, use_cache=False).logits
    with recorded_attention(model) as weights:
        got = model(ids, attention_mask=mask, use_cache=False).logits
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    assert torch.all(weights[0][0, :, 3:, :3] == 0)  # real tokens never attend to padding


def test_recording_refuses_a_kv_cache(model):
    with recorded_attention(model), pytest.raises(ValueError, match="without a KV cache"):
        model(random_ids(), use_cache=True)


def test_alibi_bias_shapes_the_weights():
    """The ALiBi path really adds the bias: zeroing its slopes changes the weights."""
    model = tiny_model("alibi", "mha")
    ids = random_ids(batch=1)
    with_bias = attention_weights(model, ids)
    model.model.positions.slopes = [0.0] * 4
    model.model.positions.reset_tables()
    assert not torch.allclose(attention_weights(model, ids), with_bias)


def test_head_summary_by_hand():
    T = 4
    uniform = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]  # row t spreads over t+1 keys
    previous = torch.zeros(T, T)
    previous[0, 0] = 1.0
    previous[torch.arange(1, T), torch.arange(T - 1)] = 1.0
    summary = head_summary(torch.stack([uniform, previous]))  # (2 heads, T, T)
    expected_entropy = torch.tensor([2.0, 3.0, 4.0]).log2().mean()
    torch.testing.assert_close(summary["entropy"], torch.stack([expected_entropy, torch.tensor(0.0)]))
    torch.testing.assert_close(summary["previous"], torch.tensor([(1 / 2 + 1 / 3 + 1 / 4) / 3, 1.0]))
    torch.testing.assert_close(summary["first"], torch.tensor([(1 / 2 + 1 / 3 + 1 / 4) / 3, 1 / 3]))


def test_induction_score_by_hand():
    """An ideal induction head over 3 tokens repeated scores 1; uniform causal attention scores the mean
    of 1 / (t + 1) over the second copy's queries."""
    n = 3
    ideal = torch.zeros(2 * n, 2 * n)
    ideal[torch.arange(n), torch.arange(n)] = 1.0
    ideal[torch.arange(n, 2 * n), torch.arange(1, n + 1)] = 1.0
    uniform = torch.tril(torch.ones(2 * n, 2 * n)) / torch.arange(1, 2 * n + 1)[:, None]
    scores = induction_score(torch.stack([ideal, uniform]), n)
    torch.testing.assert_close(scores, torch.tensor([1.0, (1 / 4 + 1 / 5 + 1 / 6) / 3]))


def test_induction_scores_of_a_model(model):
    scores = induction_scores(model, length=8)
    assert scores.shape == (2, 4) and torch.all((scores > 0) & (scores < 1))
    assert not torch.equal(scores, induction_scores(model, length=8, seed=1))


def test_every_head_holds_each_heads_weights():
    model, tokenizer = byte_model()
    report = attention_report(model, tokenizer, "abc", every_head=True, induction_length=4)
    assert "all_weights" not in attention_report(model, tokenizer, "abc", induction_length=4)
    assert len(report["all_weights"]) == 2 and len(report["all_weights"][1]) == 4
    assert report["all_weights"][0][0] == report["weights"]
    assert report["all_weights"][1][3] == attention_report(model, tokenizer, "abc", 1, 3, 4)["weights"]
    assert report["all_weights"][1][3] != report["all_weights"][1][2]
