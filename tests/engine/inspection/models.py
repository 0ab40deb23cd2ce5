"""Tiny models for the inspection tests: every positional encoding × attention kind."""

import itertools

import torch

from engine.factory import model_config
from engine.model import LLMLabForCausalLM
from engine.project import ATTENTIONS, POSITIONAL_ENCODINGS, ModelConfig

VOCAB = 64
KINDS = list(itertools.product(POSITIONAL_ENCODINGS, ATTENTIONS))


def tiny_model(positional_encoding="rope", attention="gqa", seed=0, **fields) -> LLMLabForCausalLM:
    """2 layers, 32 wide, 4 query heads (2 key/value heads under gqa); yarn stretches 16 tokens 2x.
    Weights drawn with std 0.3, not 0.02: large enough that attention shapes the logits (at 0.02 a
    model with its rotation or mask dropped gives logits within 2e-3 of the right ones)."""
    torch.manual_seed(seed)
    shape = dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48, max_seq_len=64, init_std=0.3)
    shape.update(yarn_factor=2.0, yarn_original_max_seq_len=16, **fields)
    cfg = ModelConfig(positional_encoding=positional_encoding, attention=attention, **shape)
    return LLMLabForCausalLM(model_config(cfg, VOCAB, pad_token_id=0)).eval()


def random_ids(batch=2, length=12, seed=1) -> torch.Tensor:
    return torch.randint(1, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))
