"""The chunked loss equals the model's full logits in value and gradient, and keeps less for backward."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.factory import model_config
from engine.logprobs import IGNORE, chunk_rows, cross_entropy, head_input, token_logprobs, token_logprobs_and_entropy
from engine.memory import SavedForBackward
from engine.model import LLMLabForCausalLM
from engine.project import ModelConfig

VOCAB = 512  # 16 times d_model: 16 chunks, and logits far larger than the hidden states
SHAPE = dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=64, max_seq_len=64)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return LLMLabForCausalLM(model_config(ModelConfig(**SHAPE), VOCAB))


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (3, 40), generator=generator)
    labels = ids.roll(-1, 1)
    labels[0, :10] = IGNORE  # a prompt the loss skips
    labels[2, 30:] = IGNORE  # padding
    return ids, labels


def gradients(model, loss) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def assert_same(model, compute):
    """compute(mode) -> a 0-d loss: equal value and gradients in "plain" and "chunked" modes."""
    plain, chunked = compute("plain"), compute("chunked")
    assert chunked.item() == pytest.approx(plain.item(), rel=1e-5, abs=1e-6)
    expected, got = gradients(model, compute("plain")), gradients(model, compute("chunked"))
    for name in expected:
        assert torch.allclose(got[name], expected[name], rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_equals_torch_on_the_full_logits(model, batch, reduction, smoothing):
    ids, labels = batch
    logits = model(input_ids=ids).logits
    reference = F.cross_entropy(
        logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction=reduction, label_smoothing=smoothing
    )

    def loss(mode):
        return cross_entropy(head_input(model, mode, input_ids=ids), labels, mode, reduction, smoothing)

    assert loss("plain").item() == pytest.approx(reference.item(), rel=1e-6)
    assert_same(model, loss)


def test_token_logprobs_at_a_temperature_and_entropy(model, batch):
    ids, labels = batch
    weights = torch.randn(labels.shape, generator=torch.Generator().manual_seed(2))  # a per-token upstream

    def loss(mode):
        states = head_input(model, mode, input_ids=ids).positions(5, None)
        return (token_logprobs(states, labels[:, 5:], mode, temperature=0.7) * weights[:, 5:]).sum()

    assert_same(model, loss)
    with torch.no_grad():
        states = {mode: head_input(model, mode, input_ids=ids) for mode in ("plain", "chunked")}
        plain, chunked = (token_logprobs_and_entropy(states[m], labels, m) for m in ("plain", "chunked"))
    for p, c in zip(plain, chunked):
        assert torch.allclose(p, c, atol=1e-5)
    assert (plain[0][labels == IGNORE] == 0).all()
    assert (plain[1] > 0).all() and (plain[1] <= math.log(VOCAB) + 1e-4).all()


def test_auto_is_the_chunked_path_on_the_cpu(model, batch):
    ids, labels = batch
    auto = cross_entropy(head_input(model, "auto", input_ids=ids), labels, "auto")
    chunked = cross_entropy(head_input(model, "chunked", input_ids=ids), labels, "chunked")
    assert torch.equal(auto, chunked)


def test_chunks_hold_about_as_many_logits_as_the_hidden_states():
    assert chunk_rows(120, VOCAB, 32) == 8  # 16 chunks
    assert chunk_rows(5, VOCAB, 32) == 1
    assert chunk_rows(100, 16, 32) == 100  # a vocabulary smaller than d_model: one chunk


def test_the_chunked_loss_keeps_less_for_backward(model, batch):
    """The plain loss keeps the batch's fp32 log-softmax (tokens x vocab); the chunked one none of it."""
    ids, labels = batch
    saved = {}
    for mode in ("plain", "chunked"):
        with SavedForBackward(model.parameters()) as counter:
            cross_entropy(head_input(model, mode, input_ids=ids), labels, mode)
        saved[mode] = counter.bytes
    with SavedForBackward(model.parameters()) as blocks:  # the blocks alone, no loss
        head_input(model, "chunked", input_ids=ids)
    log_softmax = ids.numel() * VOCAB * 4
    assert saved["plain"] - saved["chunked"] >= log_softmax
    assert saved["chunked"] - blocks.bytes < ids.numel() * SHAPE["d_model"] * 4  # less than the hidden states


def test_a_stock_transformers_model_gets_the_same_loss(batch):
    """A stage may start from a hub model: its last hidden states are post-norm too, so chunking holds."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    llama = LlamaForCausalLM(config)
    ids, labels = batch
    assert_same(llama, lambda mode: cross_entropy(head_input(llama, mode, input_ids=ids), labels, mode))
