"""From the project's [model] table to a model, and from a model directory back to a model.

`model_config` maps DESIGN.md's field names onto the Hugging Face config of `engine.model`;
`build_model` makes a fresh model for a project and its tokenizer; `load_model` loads a saved
model directory (ours through the registered Auto class, never remote code).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from engine.project.problems import LLMLabError
from engine.model import LLMLabConfig, LLMLabForCausalLM
from engine.project.sizing import padded_vocab_size
from engine.project.layout import ADAPTER, model_kind


KV_HEADS = {
    "mha": lambda model_cfg: model_cfg.n_heads,
    "mqa": lambda model_cfg: 1,
    "gqa": lambda model_cfg: model_cfg.n_kv_heads,
}


def model_config(model_cfg, vocab_size: int, **special_tokens) -> LLMLabConfig:
    """The HF config for a project's ModelConfig, vocab rounded up to a multiple of 64 (faster matmuls);
    `special_tokens`: pad/bos/eos_token_id."""
    m = model_cfg
    rope_parameters = {"rope_type": "default", "rope_theta": m.rope_theta}
    if m.positional_encoding == "yarn":
        rope_parameters.update(
            rope_type="yarn", factor=m.yarn_factor, original_max_position_embeddings=m.yarn_original_max_seq_len
        )
    return LLMLabConfig(
        vocab_size=padded_vocab_size(vocab_size),
        hidden_size=m.d_model,
        num_hidden_layers=m.n_layers,
        num_attention_heads=m.n_heads,
        num_key_value_heads=KV_HEADS[m.attention](m),
        intermediate_size=m.d_ff,
        max_position_embeddings=m.max_seq_len,
        hidden_act=m.activation,
        positional_encoding=m.positional_encoding,
        normalization=m.normalization,
        rope_theta=m.rope_theta,
        rope_parameters=rope_parameters,
        attention_bias=m.bias,
        mlp_bias=m.bias,
        dropout=m.dropout,
        initializer_range=m.init_std,
        tie_word_embeddings=m.tie_embeddings,
        **special_tokens,
    )


def build_model(project, tokenizer) -> LLMLabForCausalLM:
    """A freshly initialised model for `project`, sized to `tokenizer` (its special tokens in the config)."""
    special = {
        f"{name}_token_id": getattr(tokenizer, f"{name}_token_id", None) for name in ("pad", "bos", "eos")
    }
    return LLMLabForCausalLM(model_config(project.model, len(tokenizer), **special))


def load_model(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
    """A causal LM from a model directory (config.json + weights), on `device`, in eval mode.

    Our own type loads through the class registered by `engine.model`; remote code is refused.
    """
    path = Path(path)
    kind = model_kind(path)
    if kind == ADAPTER:
        return _load_adapter(path, device, dtype)
    if kind is None:
        raise LLMLabError(f"model: {path} is not a model directory (no config.json)")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise LLMLabError(f"model: cannot load {path}: {error}") from error
    return model.to(device).eval()


def _load_adapter(path: Path, device, dtype):
    """A LoRA adapter directory: its base model with the adapters (engine.lora)."""
    from engine.lora import load_adapter  # engine.lora loads the base model through load_model

    return load_adapter(path, device=device, dtype=dtype).eval()
