"""Tiny models for the inspection tests: every positional encoding × attention kind; one on the byte
tokenizer, saved as the final checkpoint of a project's run (the CLI's and the app's tests)."""

import itertools
import shutil
from pathlib import Path

import torch

from engine.factory import build_model, model_config
from engine.model import LLMLabForCausalLM
from engine.project import ATTENTIONS, POSITIONAL_ENCODINGS, ModelConfig, Project
from engine.tokenizer import byte_tokenizer

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


def byte_model(seed=0, **fields):
    """(model, tokenizer): 2 layers, 32 wide, 4 query heads on the byte tokenizer, `fields` on top."""
    torch.manual_seed(seed)
    tokenizer = byte_tokenizer()
    cfg = ModelConfig(**{"d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, **fields})
    return build_model(Project(model=cfg), tokenizer).eval(), tokenizer


def model_run(project: Path, **fields) -> Path:
    """A `byte_model` saved as runs/pretrain-20260101-000000/final of `project` (its project.toml
    copied into the run, as a run keeps it): the held-out data of ablation is the project's."""
    final = project / "runs" / "pretrain-20260101-000000" / "final"
    final.mkdir(parents=True)
    shutil.copy(project / "project.toml", final.parent / "project.toml")
    model, tokenizer = byte_model(**fields)
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    return final
