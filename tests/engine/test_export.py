"""Llama export: stock transformers loads the directory without remote code and gives our logits."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from engine.cli import main
from engine.project.problems import LLMLabError
from engine.export import export
from engine.factory import build_model
from engine.project import ModelConfig, Project
from engine.tokenizer import byte_tokenizer


def saved_model(path, **fields):
    shape = dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48, max_seq_len=64, yarn_factor=4.0,
                 yarn_original_max_seq_len=16)
    torch.manual_seed(0)
    tokenizer = byte_tokenizer()
    model = build_model(Project(model=ModelConfig(**{**shape, **fields})), tokenizer).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model


@pytest.mark.parametrize(
    "fields",
    [{"positional_encoding": "rope"}, {"positional_encoding": "yarn"},
     {"positional_encoding": "rope", "bias": True, "tie_embeddings": False, "attention": "mqa"}],
    ids=["rope", "yarn", "rope-bias-untied-mqa"],
)
def test_llama_export_gives_the_same_logits(tmp_path, fields):
    ours = saved_model(tmp_path / "ours", **fields)
    export(tmp_path / "ours", tmp_path / "llama", "llama")
    config = json.loads((tmp_path / "llama" / "config.json").read_text())
    assert config["model_type"] == "llama" and "auto_map" not in config
    assert not list((tmp_path / "llama").glob("*.py"))
    llama = AutoModelForCausalLM.from_pretrained(tmp_path / "llama", trust_remote_code=False).eval()
    assert type(llama) is LlamaForCausalLM
    ids = torch.randint(0, 258, (2, 40), generator=torch.Generator().manual_seed(0))  # past yarn's 16
    with torch.no_grad():
        diff = (llama(ids).logits - ours(ids).logits).abs().max().item()
    assert diff <= 1e-5
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "llama")
    assert tokenizer("hi")["input_ids"] == byte_tokenizer()("hi")["input_ids"]


def test_a_model_that_is_not_llama_shaped_is_refused(tmp_path):
    saved_model(tmp_path / "ours", positional_encoding="alibi", normalization="layernorm", activation="gelu")
    with pytest.raises(LLMLabError) as caught:
        export(tmp_path / "ours", tmp_path / "llama", "llama")
    assert caught.value.lines[1:] == [
        "positional_encoding: alibi has no Llama equivalent (needs rope or yarn)",
        "normalization: layernorm has no Llama equivalent (needs rmsnorm)",
        "activation: gelu has no Llama equivalent (needs swiglu)",
    ]
    assert not (tmp_path / "llama").exists()


def test_export_command(tmp_path, capsys):
    saved_model(tmp_path / "ours")
    assert main(["export", str(tmp_path / "ours"), "--format", "llama", "--out", str(tmp_path / "llama")]) == 0
    assert (tmp_path / "llama" / "model.safetensors").is_file()
    saved_model(tmp_path / "sin", positional_encoding="sinusoidal")
    assert main(["export", str(tmp_path / "sin"), "--format", "llama", "--out", str(tmp_path / "x")]) == 2
    assert "positional_encoding: sinusoidal has no Llama equivalent (needs rope or yarn)" in capsys.readouterr().err
