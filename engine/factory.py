"""From the project's [model] table to a model, and from a model directory back to a model.

`model_config` maps DESIGN.md's field names onto the Hugging Face config of `engine.model`;
`build_model` makes a fresh model for a project and its tokenizer; `load_model` loads a saved
model directory (ours through the registered Auto class, never remote code), an adapter directory
(engine.lora's runs) as its base model with the adapters on top (`load_adapter`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import AutoModelForCausalLM

from engine.chat_template import init_new_embeddings, set_generation_eos
from engine.model import LLMLabConfig, LLMLabForCausalLM
from engine.project.layout import ADAPTER, ADAPTER_CONFIG, model_kind
from engine.project.problems import LLMLabError
from engine.project.sizing import padded_vocab_size
from engine.tokenizer import saved_tokenizer

if TYPE_CHECKING:
    from peft import PeftModel


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
    special = {f"{name}_token_id": getattr(tokenizer, f"{name}_token_id", None) for name in ("pad", "bos", "eos")}
    return LLMLabForCausalLM(model_config(project.model, len(tokenizer), **special))


def load_model(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
    """A causal LM from a model directory (config.json + weights), on `device`, in eval mode.

    Our own type loads through the class registered by `engine.model`; remote code is refused.
    """
    path = Path(path)
    kind = model_kind(path)
    if kind == ADAPTER:
        return load_adapter(path, device, dtype).eval()
    if kind is None:
        raise LLMLabError(f"model: {path} is not a model directory (no config.json)")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise LLMLabError(f"model: cannot load {path}: {error}") from error
    _refuse_non_finite(model, path)
    return model.to(device).eval()


def load_merged_model(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
    """`load_model` with an adapter directory's adapters baked in: the weights the model runs with."""
    model = load_model(path, device, dtype)
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model  # a PeftModel: baked in


def _refuse_non_finite(model: torch.nn.Module, path: Path) -> None:
    """A model whose weights hold nan or inf (written by a run that diverged) is refused by name."""
    bad = [name for name, param in model.named_parameters() if not torch.isfinite(param).all()]
    if bad:
        raise LLMLabError(
            f"model: {path} holds non-finite weights (nan or inf) in {len(bad)} tensor(s), e.g. "
            f"{bad[0]}: the run that wrote it diverged; use an earlier checkpoint, or resume that "
            "run with a lower lr"
        )


def base_model_path(adapter_dir: str | Path) -> Path:
    """The model directory (full, or adapters itself) an adapter directory was trained on."""
    adapter_dir = Path(adapter_dir)
    config_file = adapter_dir / ADAPTER_CONFIG
    if not config_file.is_file():
        raise LLMLabError(f"adapter: {adapter_dir} is not an adapter directory (no {ADAPTER_CONFIG})")
    base = json.loads(config_file.read_text()).get("base_model_name_or_path")
    path = adapter_dir / base if base else None
    if path is None or model_kind(path) is None:
        raise LLMLabError(
            f"adapter: base_model_name_or_path in {config_file} must name a model directory; got {base!r}"
        )
    return path


def model_chain(path: str | Path) -> list[Path]:
    """`path` and, under an adapter directory, each base it loads on: every folder loading it reads."""
    chain = [Path(path)]
    while model_kind(chain[-1]) == ADAPTER:
        base = base_model_path(chain[-1])
        if base.resolve() in {p.resolve() for p in chain}:
            break
        chain.append(base)
    return chain


def load_adapter(
    adapter_dir: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    trainable: bool = False,
) -> PeftModel:
    """Base model + adapters of an adapter directory, with its tokenizer's template and stop tokens."""
    from peft import PeftModel  # peft loads only with an adapter directory

    adapter_dir = Path(adapter_dir)
    model = load_merged_model(base_model_path(adapter_dir), device, dtype)  # a base that is itself adapters: merged
    tokenizer = saved_tokenizer(adapter_dir, "adapter")  # never code from the folder
    rows = model.get_input_embeddings().weight.shape[0]
    if rows < len(tokenizer):  # the run added chat tokens to a base whose matrices were too small
        init_new_embeddings(model, rows, len(tokenizer))
    set_generation_eos(model, tokenizer)
    return PeftModel.from_pretrained(model, adapter_dir, is_trainable=trainable).to(device)
