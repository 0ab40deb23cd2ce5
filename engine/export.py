"""Export a model directory to another architecture's stock format: Llama, or GGUF (engine.export_gguf).

A model whose parts Llama has (rope or yarn, rmsnorm, swiglu) becomes a `LlamaForCausalLM`
directory that stock transformers loads without remote code: the weights keep their names,
only the config changes. Anything else is refused with one line per part that does not fit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from engine.export_gguf import export_gguf
from engine.llama_shape import llama_problems
from engine.project.outputs import check_output, output_directory
from engine.project.problems import LLMLabError

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
)


def llama_config(config):
    """The LlamaConfig with the same shape, rotary settings and special tokens."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        hidden_act="silu",
        rms_norm_eps=config.rms_norm_eps,
        rope_parameters=dict(config.rope_parameters),
        attention_bias=config.attention_bias,
        mlp_bias=config.mlp_bias,
        tie_word_embeddings=config.tie_word_embeddings,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
    )


def export_llama(model_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write `model_dir` as a stock LlamaForCausalLM directory at `out_dir` (atomically; the resolved
    path is returned). `out_dir` follows engine.project.outputs: new or empty, or an earlier Llama
    export replaced only with `overwrite`."""
    from transformers import LlamaForCausalLM

    from engine.factory import load_model, model_chain

    model_dir = Path(model_dir)
    sources = model_chain(model_dir)
    out_dir = check_output(out_dir, WRITTEN_BY["llama"], overwrite, sources)  # before the slow part
    model = load_model(model_dir, dtype=None)
    problems = llama_problems(model.config)
    if problems:
        raise LLMLabError([f"export --format llama: {model_dir} does not fit Llama", *problems])
    llama = LlamaForCausalLM(llama_config(model.config)).to(model.dtype)
    llama.load_state_dict(model.state_dict(), strict=True)  # same names, Llama's by design
    llama.generation_config = model.generation_config
    with output_directory(out_dir, WRITTEN_BY["llama"], overwrite, sources) as tmp:
        llama.save_pretrained(tmp)
        for name in TOKENIZER_FILES:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, tmp / name)
    return out_dir


EXPORTERS = {"llama": export_llama, "gguf": export_gguf}
WRITTEN_BY = {name: f"llmlab export --format {name}" for name in EXPORTERS}  # the outputs' marker


def export(model_dir: str | Path, out_dir: str | Path, format: str, overwrite: bool = False, **options) -> Path:
    """Run the exporter of `format`; `options` are that exporter's own (gguf: dtype)."""
    if format not in EXPORTERS:
        raise LLMLabError(f"format: {format!r} is not one of {', '.join(EXPORTERS)}")
    with torch.no_grad():
        return EXPORTERS[format](model_dir, out_dir, overwrite, **options)
