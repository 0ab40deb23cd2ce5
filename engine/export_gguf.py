"""GGUF export for llama.cpp and Ollama: a Llama-shaped model as one `model.gguf` (architecture "llama").

The shape check is the Llama export's (engine.llama_shape). The file holds llama.cpp's
"llama" metadata, the tokenizer (a byte-level BPE declared as tokenizer.ggml.model "gpt2" with
GPT-2's pre-tokenizer "gpt-2", which is exactly how ours splits text), the chat template and the
weights under llama.cpp's tensor names (gguf's own TensorNameMap gives them).

Rotary layout: we rotate the two halves of each head (`rotate_half`, as Hugging Face Llama does:
element i pairs with element i + head_dim/2). llama.cpp's "llama" architecture rotates adjacent
pairs (2i, 2i+1), as Meta's original checkpoints did. So, like llama.cpp's convert_hf_to_gguf,
the rows of each head of q_proj and k_proj are reordered to interleave the halves: new row 2i is
old row i, new row 2i+1 is old row i + head_dim/2 (`interleave_rotary_halves`). q·k is unchanged
by reordering both the same way, so attention scores, and hence logits, are the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.llama_shape import llama_problems
from engine.project.outputs import check_output, output_directory
from engine.project.problems import LLMLabError

WRITTEN_BY = "llmlab export --format gguf"  # the output marker: engine.export.WRITTEN_BY["gguf"]
GGUF_FILE = "model.gguf"
MODELFILE = "Modelfile"  # Ollama's recipe: `ollama create NAME -f DIR/Modelfile`
MISSING = "gguf export needs the gguf package: pip install -e '.[gguf]'"
BYTE_TOKENIZER = 'tokenizer: the byte tokenizer has no merges, which llama.cpp needs; train a BPE (source "bpe")'
DTYPES = ("f32", "f16", "bf16")  # --dtype; 1-D tensors (norms) stay f32, as llama.cpp's converter keeps them


def _gguf():
    try:
        import gguf
    except ImportError as error:
        raise LLMLabError(MISSING) from error
    return gguf


def interleave_rotary_halves(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows of each head reordered from halves (i, i + d/2) to adjacent pairs (2i, 2i+1)."""
    rows = weight.shape[0]
    # (heads, 2 halves, d/2, ...) -> (heads, d/2, 2, ...): row i of the second half follows row i of the first
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


def gguf_tensors(model) -> dict[str, torch.Tensor]:
    """llama.cpp's tensor name -> weight (float32, q and k rows interleaved); `output` only when untied."""
    gguf = _gguf()
    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    heads = {"q_proj": config.num_attention_heads, "k_proj": config.num_key_value_heads}
    tensors = {}
    for name, weight in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp reads the output projection from token_embd when `output` is absent
        weight = weight.detach().float()
        projection = name.split(".")[-2]
        if projection in heads:
            weight = interleave_rotary_halves(weight, heads[projection])
        tensors[names.get_name(name, try_suffixes=(".weight", ".bias"))] = weight
    return tensors


def tokenizer_problems(model_dir: Path) -> list[str]:
    """Why the tokenizer in `model_dir` cannot be declared as llama.cpp's "gpt2" BPE; empty when it can."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return [f"tokenizer: {model_dir} has no tokenizer.json (gguf export needs a byte-level BPE)"]
    spec = json.loads(path.read_text())
    pre, decoder = spec.get("pre_tokenizer") or {}, spec.get("decoder") or {}
    problems = []
    if spec["model"].get("type") != "BPE" or decoder.get("type") != "ByteLevel":
        problems.append(f"tokenizer: {spec['model'].get('type')} is not a byte-level BPE (llama.cpp's gpt2 model)")
    if spec.get("normalizer") or pre.get("type") != "ByteLevel" or not pre.get("use_regex", True):
        problems.append("tokenizer: its pre-tokenizer is not GPT-2's byte-level split, the one gguf can declare")
    if not problems and not spec["model"].get("merges"):
        # llama.cpp refuses a gpt2 vocabulary without merges, and a GGUF array cannot be empty
        problems.append(BYTE_TOKENIZER)
    return problems


def write_vocab(writer, model_dir: Path, vocab_size: int) -> None:
    """Tokens (padded to the embedding rows as [PAD<i>]), their types, merges, special ids, chat template."""
    gguf = _gguf()
    from engine.tokenizer import saved_tokenizer

    tokenizer = saved_tokenizer(model_dir)
    by_id = {token_id: token for token, token_id in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder  # id -> AddedToken
    tokens, types = [], []
    for token_id in range(vocab_size):
        if token_id not in by_id:
            tokens.append(f"[PAD{token_id}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(by_id[token_id])
        if token_id in added:
            types.append(gguf.TokenType.CONTROL if added[token_id].special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # merges, bos/eos/pad ids and the chat template, read by gguf from the saved tokenizer files
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)
    ids = tokenizer("a")["input_ids"]
    special.add_special_token.setdefault("bos", bool(ids) and ids[0] == tokenizer.bos_token_id)
    special.add_to_gguf(writer, quiet=True)


def write_hyperparameters(writer, config, file_type) -> None:
    """llama.cpp's "llama" keys: shape, attention heads, rotary settings, norm epsilon, file type."""
    gguf = _gguf()
    head_dim = config.hidden_size // config.num_attention_heads
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)
    rope = config.rope_parameters
    if rope.get("rope_type") == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(rope["factor"]))
        writer.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))
        writer.add_rope_scaling_yarn_beta_fast(float(rope.get("beta_fast", 32.0)))
        writer.add_rope_scaling_yarn_beta_slow(float(rope.get("beta_slow", 1.0)))


def export_gguf(model_dir: str | Path, out_dir: str | Path, overwrite: bool = False, dtype: str = "f32") -> Path:
    """Write `model_dir` as `out_dir`/model.gguf (+ an Ollama Modelfile), atomically; returns `out_dir`."""
    from engine.factory import load_model, model_chain

    if dtype not in DTYPES:
        raise LLMLabError(f"--dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    gguf = _gguf()
    model_dir = Path(model_dir)
    sources = model_chain(model_dir)
    out_dir = check_output(out_dir, WRITTEN_BY, overwrite, sources)
    model = load_model(model_dir, dtype=None)
    problems = llama_problems(model.config) + tokenizer_problems(model_dir)
    if problems:
        raise LLMLabError([f"export --format gguf: {model_dir} does not fit llama.cpp's llama", *problems])
    matrix_type = {"f32": "F32", "f16": "F16", "bf16": "BF16"}[dtype]
    qtype = gguf.GGMLQuantizationType[matrix_type]
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16}.get(
        dtype, gguf.LlamaFileType.MOSTLY_BF16
    )
    with output_directory(out_dir, WRITTEN_BY, overwrite, sources) as tmp:
        writer = gguf.GGUFWriter(tmp / GGUF_FILE, "llama")
        writer.add_name("-".join(model_dir.resolve().parts[-2:]))  # e.g. pretrain-20261201-120000-final
        write_hyperparameters(writer, model.config, file_type)
        write_vocab(writer, model_dir, model.config.vocab_size)
        for name, weight in gguf_tensors(model).items():
            array = weight.numpy()
            if weight.dim() == 1 or dtype == "f32":
                writer.add_tensor(name, array)
            else:
                writer.add_tensor(name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        (tmp / MODELFILE).write_text(f"FROM ./{GGUF_FILE}\n")
    return out_dir
