"""From the project's [model] table to a model and back from a model directory."""

import json

import pytest
import torch

from engine import project as schema
from engine.factory import build_model, load_model, model_config
from engine.layers import ACTIVATIONS, NORMALIZATIONS
from engine.model import LLMLabForCausalLM
from engine.positions import POSITIONAL_ENCODINGS
from engine.project import ModelConfig, Project
from engine.project.problems import LLMLabError
from engine.tokenizer import byte_tokenizer


def test_registries_offer_exactly_the_project_choices():
    assert tuple(POSITIONAL_ENCODINGS) == schema.POSITIONAL_ENCODINGS
    assert tuple(NORMALIZATIONS) == schema.NORMALIZATIONS
    assert tuple(ACTIVATIONS) == schema.ACTIVATIONS


@pytest.mark.parametrize("attention, kv_heads", [("mha", 8), ("mqa", 1), ("gqa", 2)])
def test_attention_sets_the_key_value_heads(attention, kv_heads):
    config = model_config(ModelConfig(attention=attention, n_heads=8, n_kv_heads=2), 100)
    assert config.num_key_value_heads == kv_heads


def test_model_config_uses_hugging_face_names():
    m = ModelConfig(
        positional_encoding="yarn",
        normalization="layernorm",
        activation="gelu",
        d_model=64,
        n_layers=3,
        n_heads=4,
        d_ff=96,
        max_seq_len=256,
        dropout=0.1,
        bias=True,
        tie_embeddings=False,
        rope_theta=500.0,
        yarn_factor=4.0,
        yarn_original_max_seq_len=64,
        init_std=0.01,
    )
    config = model_config(m, 258, eos_token_id=256, pad_token_id=257)
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (
        320,
        64,
        3,
        4,
    )
    assert (config.intermediate_size, config.max_position_embeddings, config.hidden_act) == (96, 256, "gelu")
    assert (config.positional_encoding, config.normalization, config.dropout) == ("yarn", "layernorm", 0.1)
    assert config.attention_bias and config.mlp_bias and not config.tie_word_embeddings
    assert config.initializer_range == 0.01 and config.rope_theta == 500.0
    assert config.rope_scaling == {
        "rope_type": "yarn",
        "rope_theta": 500.0,
        "factor": 4.0,
        "original_max_position_embeddings": 64,
    }
    assert (config.eos_token_id, config.pad_token_id) == (256, 257)


@pytest.mark.parametrize("tokens, rows", [(64, 64), (65, 128), (258, 320)])
def test_vocab_rounds_up_to_a_multiple_of_64(tokens, rows):
    assert model_config(ModelConfig(), tokens).vocab_size == rows


def test_build_model_follows_the_tokenizer():
    tokenizer = byte_tokenizer()
    project = Project(model=ModelConfig(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64))
    model = build_model(project, tokenizer)
    assert isinstance(model, LLMLabForCausalLM)
    assert model.get_input_embeddings().weight.shape == (320, 32)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id


def test_load_model_round_trip_and_bad_directories(tmp_path):
    project = Project(model=ModelConfig(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64))
    model = build_model(project, byte_tokenizer()).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = load_model(tmp_path / "m", "cpu", dtype=torch.bfloat16)
    assert loaded.dtype == torch.bfloat16 and not loaded.training
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "m")(ids).logits, model(ids).logits)
    with pytest.raises(LLMLabError, match="is not a model directory"):
        load_model(tmp_path / "missing")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "no-such-base"}))
    with pytest.raises(LLMLabError, match="base_model_name_or_path"):  # handed to load_adapter
        load_model(adapter)
