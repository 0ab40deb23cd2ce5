"""A model folder (final/, a checkpoint, a merged or adapter folder) → an LLM-Lab model in eval mode
and its tokenizer, loaded through engine.factory (never remote code). Adapters are merged in:
inspection reads the weights the model runs with."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.factory import load_merged_model
from engine.model import LLMLabForCausalLM
from engine.project.problems import LLMLabError
from engine.tokenizer import saved_tokenizer


def load_inspectable(model_dir: str | Path, device: str | torch.device = "cpu"):
    """(model, tokenizer) of `model_dir`; LLMLabError when it is not an LLM-Lab model."""
    model = load_merged_model(model_dir, device)
    if not isinstance(model, LLMLabForCausalLM):
        raise LLMLabError(
            f"model: {model_dir} is a {type(model).__name__}; inspect reads LLM-Lab models (model_type llmlab)"
        )
    return model.eval(), saved_tokenizer(model_dir)


def encode(tokenizer, text: str, context: int | None = None, field: str = "--prompt") -> list[int]:
    """EOS, then the text's token ids: the model reads it as a new document, as in training, so every
    token of the text has a prediction. Refused when empty or longer than the model's `context`."""
    ids = [tokenizer.eos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
    if len(ids) == 1:
        raise LLMLabError(f"{field}: it encodes to no tokens; give some text")
    if context is not None and len(ids) > context:
        raise LLMLabError(
            f"{field}: {len(ids)} tokens (EOS included), but the model's context is {context} tokens; shorten it"
        )
    return ids


def token_texts(tokenizer, ids: list[int]) -> list[str]:
    """Each id as the text it stands for on its own."""
    return [tokenizer.decode([i]) for i in ids]
