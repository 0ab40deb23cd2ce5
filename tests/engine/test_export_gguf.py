"""GGUF export: gguf's reader finds every weight (q and k rows interleaved for llama.cpp's rotary
layout) and the llama metadata, tokenizer and chat template; a forward pass that reads the file as
llama.cpp does gives our logits; non-Llama shapes are refused."""

import json
import sys

import numpy as np
import pytest
import torch

from engine.chat_template import ensure_chat_template
from engine.cli import main
from engine.export import WRITTEN_BY, export
from engine.factory import build_model
from engine.positions import apply_rotation
from engine.project import ModelConfig, Project
from engine.project.outputs import read_marker
from engine.project.problems import LLMLabError
from engine.tokenizer import EOS_TOKEN, PAD_TOKEN, train_bpe

gguf = pytest.importorskip("gguf")

SHAPE = dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48, max_seq_len=64)
TEXT = ["the cat sat on the mat and the dog ran to the big red house"] * 20


def saved_model(path, **fields):
    """A tiny model with a trained BPE and ChatML (the tokens a GGUF vocabulary must carry)."""
    torch.manual_seed(0)
    tokenizer = train_bpe(TEXT, vocab_size=300, out_dir=path / "tokenizer")
    model = build_model(Project(model=ModelConfig(**{**SHAPE, **fields})), tokenizer).eval()
    ensure_chat_template(tokenizer, model)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model, tokenizer


def read(out):
    reader = gguf.GGUFReader(str(out / "model.gguf"))
    fields = {name: field.contents() for name, field in reader.fields.items()}
    tensors = {t.name: gguf.quants.dequantize(t.data, t.tensor_type) for t in reader.tensors}
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    return fields, tensors, types


def interleaved(weight, heads):
    """Row 2i of each head is row i, row 2i+1 is row i + d/2 (written out row by row)."""
    d = weight.shape[0] // heads
    order = [h * d + i + half * d // 2 for h in range(heads) for i in range(d // 2) for half in (0, 1)]
    return weight[order]


def expected_tensors(model):
    config = model.config
    state = {k: v.float() for k, v in model.state_dict().items()}
    names = {
        "input_layernorm.weight": "attn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "self_attn.q_proj.bias": "attn_q.bias",
        "self_attn.k_proj.bias": "attn_k.bias",
        "self_attn.v_proj.bias": "attn_v.bias",
        "self_attn.o_proj.bias": "attn_output.bias",
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
        "mlp.gate_proj.bias": "ffn_gate.bias",
        "mlp.up_proj.bias": "ffn_up.bias",
        "mlp.down_proj.bias": "ffn_down.bias",
    }
    expected = {"token_embd.weight": state["model.embed_tokens.weight"]}
    expected["output_norm.weight"] = state["model.norm.weight"]
    if not config.tie_word_embeddings:
        expected["output.weight"] = state["lm_head.weight"]
    for layer in range(config.num_hidden_layers):
        for ours, theirs in names.items():
            key = f"model.layers.{layer}.{ours}"
            if key in state:
                weight = state[key]
                if "q_proj" in ours:
                    weight = interleaved(weight, config.num_attention_heads)
                if "k_proj" in ours:
                    weight = interleaved(weight, config.num_key_value_heads)
                expected[f"blk.{layer}.{theirs}"] = weight
    return expected


@pytest.mark.parametrize(
    "fields",
    [
        {"positional_encoding": "rope", "rope_theta": 5000.0},
        {"positional_encoding": "yarn", "yarn_factor": 4.0, "yarn_original_max_seq_len": 16},
        {"positional_encoding": "rope", "bias": True, "tie_embeddings": False, "attention": "mqa"},
    ],
    ids=["rope-tied", "yarn", "rope-bias-untied-mqa"],
)
def test_the_file_holds_every_weight_and_the_llama_metadata(tmp_path, fields):
    model, tokenizer = saved_model(tmp_path / "ours", **fields)
    export(tmp_path / "ours", tmp_path / "gguf", "gguf")
    fields_read, tensors, types = read(tmp_path / "gguf")
    expected = expected_tensors(model)
    assert set(tensors) == set(expected)
    for name, weight in expected.items():
        np.testing.assert_array_equal(tensors[name].reshape(weight.shape), weight.numpy(), err_msg=name)
    assert set(types.values()) == {"F32"}
    config = model.config
    assert fields_read["general.architecture"] == "llama" and fields_read["general.name"] == f"{tmp_path.name}-ours"
    assert fields_read["llama.attention.head_count"] == config.num_attention_heads
    assert fields_read["llama.attention.head_count_kv"] == config.num_key_value_heads
    assert fields_read["llama.context_length"] == 64
    assert fields_read["llama.block_count"] == 2 and fields_read["llama.feed_forward_length"] == 48
    assert fields_read["llama.embedding_length"] == 32 and fields_read["llama.rope.dimension_count"] == 8
    assert fields_read["llama.rope.freq_base"] == config.rope_parameters["rope_theta"]
    assert fields_read["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(config.rms_norm_eps)
    if fields["positional_encoding"] == "yarn":
        assert fields_read["llama.rope.scaling.type"] == "yarn"
        assert fields_read["llama.rope.scaling.factor"] == 4.0
        assert fields_read["llama.rope.scaling.original_context_length"] == 16
    else:
        assert "llama.rope.scaling.type" not in fields_read
    assert fields_read["tokenizer.ggml.model"] == "gpt2" and fields_read["tokenizer.ggml.pre"] == "gpt-2"
    assert fields_read["tokenizer.ggml.bos_token_id"] == tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    assert fields_read["tokenizer.ggml.eos_token_id"] == tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    assert fields_read["tokenizer.ggml.padding_token_id"] == tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    assert fields_read["tokenizer.chat_template"] == tokenizer.chat_template
    assert "<|im_start|>" in tokenizer.chat_template


def test_the_vocabulary_is_the_tokenizer_padded_to_the_embedding_rows(tmp_path):
    model, tokenizer = saved_model(tmp_path / "ours")
    export(tmp_path / "ours", tmp_path / "gguf", "gguf")
    fields, _, _ = read(tmp_path / "gguf")
    tokens, types = fields["tokenizer.ggml.tokens"], fields["tokenizer.ggml.token_type"]
    assert len(tokens) == len(types) == model.config.vocab_size > len(tokenizer)
    assert tokens[: len(tokenizer)] == tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    assert tokens[len(tokenizer)] == f"[PAD{len(tokenizer)}]"
    specials = set(tokenizer.all_special_ids) | set(tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]))
    for token_id, kind in enumerate(types):
        if token_id >= len(tokenizer):
            assert kind == gguf.TokenType.UNUSED
        elif token_id in specials:
            assert kind == gguf.TokenType.CONTROL, tokens[token_id]
        else:
            assert kind == gguf.TokenType.NORMAL, tokens[token_id]
    merges = json.loads((tmp_path / "ours" / "tokenizer.json").read_text())["model"]["merges"]
    assert len(merges) > 0
    assert fields["tokenizer.ggml.merges"] == [pair if isinstance(pair, str) else " ".join(pair) for pair in merges]
    assert fields["tokenizer.ggml.add_bos_token"] is False  # ours never prepends bos


def test_interleaved_rows_give_adjacent_pair_rotation_the_same_scores(tmp_path):
    """Why the rows move: llama.cpp rotates pairs (2i, 2i+1); we rotate halves (i, i + d/2)."""
    model, _ = saved_model(tmp_path / "ours")
    export(tmp_path / "ours", tmp_path / "gguf", "gguf")
    _, tensors, _ = read(tmp_path / "gguf")
    attention = model.model.layers[0].self_attn
    x = torch.randn(5, 32, generator=torch.Generator().manual_seed(0))
    d, theta = 8, model.config.rope_parameters["rope_theta"]
    angles = torch.arange(5)[:, None] * theta ** (-torch.arange(0, d, 2) / d)  # (T, d/2)
    # ours: q, k split in heads, rotated by halves
    q = attention.q_proj(x).view(5, 4, d).transpose(0, 1)
    k = attention.k_proj(x).view(5, 2, d).transpose(0, 1).repeat_interleave(2, dim=0)
    cos, sin = torch.cat((angles.cos(), angles.cos()), -1), torch.cat((angles.sin(), angles.sin()), -1)
    q, k = apply_rotation(q, k, cos, sin)
    ours = q @ k.transpose(-1, -2)

    def pairs(weight, heads):  # llama.cpp's rope on the exported rows: complex rotation of (2i, 2i+1)
        y = (x @ torch.from_numpy(weight.copy()).T).view(5, heads, d // 2, 2)
        rotated = torch.view_as_complex(y.contiguous()) * torch.polar(torch.ones_like(angles), angles)[:, None]
        return torch.view_as_real(rotated).reshape(5, heads, d).transpose(0, 1)

    theirs_q = pairs(tensors["blk.0.attn_q.weight"], 4)
    theirs_k = pairs(tensors["blk.0.attn_k.weight"], 2).repeat_interleave(2, dim=0)
    torch.testing.assert_close(theirs_q @ theirs_k.transpose(-1, -2), ours, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_dtype_rounds_the_matrices_and_keeps_norms_f32(tmp_path, dtype):
    model, _ = saved_model(tmp_path / "ours")
    export(tmp_path / "ours", tmp_path / "gguf", "gguf", dtype=dtype)
    fields, tensors, types = read(tmp_path / "gguf")
    torch_dtype = {"f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    assert types["blk.0.attn_v.weight"] == dtype.upper() and types["blk.0.attn_norm.weight"] == "F32"
    assert fields["general.file_type"] == {"f16": 1, "bf16": 32}[dtype]
    weight = model.model.layers[0].self_attn.v_proj.weight.detach()
    rounded = weight.to(torch_dtype).float().numpy()
    np.testing.assert_array_equal(tensors["blk.0.attn_v.weight"].reshape(weight.shape), rounded)


def test_a_model_that_is_not_llama_shaped_is_refused_naming_the_part(tmp_path):
    saved_model(tmp_path / "ours", positional_encoding="alibi", normalization="layernorm")
    with pytest.raises(LLMLabError) as caught:
        export(tmp_path / "ours", tmp_path / "gguf", "gguf")
    assert caught.value.lines[1:] == [
        "positional_encoding: alibi has no Llama equivalent (needs rope or yarn)",
        "normalization: layernorm has no Llama equivalent (needs rmsnorm)",
    ]
    assert not (tmp_path / "gguf").exists()


def test_the_byte_tokenizer_is_refused(tmp_path):
    from test_export import saved_model as saved_with_bytes

    saved_with_bytes(tmp_path / "ours")
    with pytest.raises(LLMLabError) as caught:
        export(tmp_path / "ours", tmp_path / "gguf", "gguf")
    assert caught.value.lines[1:] == [
        'tokenizer: the byte tokenizer has no merges, which llama.cpp needs; train a BPE (source "bpe")'
    ]


def test_export_command_writes_the_file_and_a_modelfile(tmp_path, capsys):
    saved_model(tmp_path / "ours")
    out = tmp_path / "gguf"
    assert main(["export", str(tmp_path / "ours"), "--format", "gguf", "--dtype", "f16", "--out", str(out)]) == 0
    assert (out / "Modelfile").read_text() == "FROM ./model.gguf\n"
    assert read_marker(out)["written_by"] == WRITTEN_BY["gguf"] == "llmlab export --format gguf"
    assert read(out)[2]["token_embd.weight"] == "F16"
    capsys.readouterr()
    llama = ["export", str(tmp_path / "ours"), "--format", "llama", "--dtype", "f16", "--out", str(tmp_path / "x")]
    assert main(llama) == 2
    assert "--dtype: only --format gguf has a dtype, not --format llama" in capsys.readouterr().err


def test_without_the_gguf_package_the_export_says_how_to_install_it(tmp_path, monkeypatch):
    saved_model(tmp_path / "ours")
    monkeypatch.setitem(sys.modules, "gguf", None)
    with pytest.raises(LLMLabError) as caught:
        export(tmp_path / "ours", tmp_path / "gguf", "gguf")
    assert caught.value.lines == ["gguf export needs the gguf package: pip install -e '.[gguf]'"]


def llama_cpp_forward(fields, tensors, ids):
    """Logits computed the way llama.cpp's "llama" graph reads the file: RMSNorm, rotation of adjacent
    pairs (rope type NORM), grouped kv heads, SwiGLU, and token_embd as the output when `output` is absent."""
    t = {name: torch.from_numpy(array.copy()) for name, array in tensors.items()}
    heads, kv_heads = fields["llama.attention.head_count"], fields["llama.attention.head_count_kv"]
    eps, theta = fields["llama.attention.layer_norm_rms_epsilon"], fields["llama.rope.freq_base"]
    d, length = fields["llama.rope.dimension_count"], len(ids)
    angles = torch.arange(length)[:, None] * theta ** (-torch.arange(0, d, 2) / d)  # (T, d/2)
    turn = torch.polar(torch.ones_like(angles), angles)[:, None]  # (T, 1, d/2)

    def norm(x, name):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * t[name]

    def rope(y, n):  # (T, n*d) -> (T, n, d), pairs (2i, 2i+1) turned as complex numbers
        pairs = torch.view_as_complex(y.view(length, n, d // 2, 2).contiguous())
        return torch.view_as_real(pairs * turn).reshape(length, n, d)

    x = t["token_embd.weight"].reshape(-1, fields["llama.embedding_length"])[ids]
    mask = torch.full((length, length), float("-inf")).triu(1)
    for i in range(fields["llama.block_count"]):
        w = {name.split(".", 2)[2]: v for name, v in t.items() if name.startswith(f"blk.{i}.")}
        h = norm(x, f"blk.{i}.attn_norm.weight")
        q = rope(h @ w["attn_q.weight"].reshape(-1, h.shape[-1]).T, heads).transpose(0, 1)
        k = rope(h @ w["attn_k.weight"].reshape(-1, h.shape[-1]).T, kv_heads).transpose(0, 1)
        v = (h @ w["attn_v.weight"].reshape(-1, h.shape[-1]).T).view(length, kv_heads, d).transpose(0, 1)
        k, v = (z.repeat_interleave(heads // kv_heads, dim=0) for z in (k, v))
        attention = torch.softmax(q @ k.transpose(-1, -2) / d**0.5 + mask, dim=-1) @ v  # (H, T, d)
        x = x + attention.transpose(0, 1).reshape(length, -1) @ w["attn_output.weight"].reshape(x.shape[-1], -1).T
        h = norm(x, f"blk.{i}.ffn_norm.weight")
        gate = h @ w["ffn_gate.weight"].reshape(-1, h.shape[-1]).T
        up = h @ w["ffn_up.weight"].reshape(-1, h.shape[-1]).T
        x = x + (torch.nn.functional.silu(gate) * up) @ w["ffn_down.weight"].reshape(x.shape[-1], -1).T
    output = t.get("output.weight", t["token_embd.weight"]).reshape(-1, x.shape[-1])
    return norm(x, "output_norm.weight") @ output.T


@pytest.mark.parametrize("tie_embeddings", [True, False], ids=["tied", "untied"])
def test_a_llama_cpp_style_forward_of_the_file_gives_our_logits(tmp_path, tie_embeddings):
    model, _ = saved_model(tmp_path / "ours", tie_embeddings=tie_embeddings)
    with torch.no_grad():  # weights large enough that attention is sharp and a wrong layout shows
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, 0.4)
            else:
                parameter.uniform_(0.5, 1.5)
    model.save_pretrained(tmp_path / "ours")
    export(tmp_path / "ours", tmp_path / "gguf", "gguf")
    fields, tensors, _ = read(tmp_path / "gguf")
    ids = torch.randint(0, 300, (24,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(ids[None]).logits[0]
    theirs = llama_cpp_forward(fields, tensors, ids)
    assert ours.abs().max() > 1.0  # far from uniform: the comparison means something
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)
