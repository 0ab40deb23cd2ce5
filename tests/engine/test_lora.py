"""LoRA: presets target exactly their modules, only adapters train, adapter dirs load, merge is exact."""

import pytest
import torch
from peft import PeftModel
from peft.tuners.tuners_utils import BaseTuner
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine.chat_template import IM_END, IM_START, ensure_chat_template
from engine.factory import build_model, load_adapter, load_model
from engine.lora import apply_lora, merge, parameter_counts, target_modules
from engine.project import LoraConfig, ModelConfig, Project
from engine.project.problems import LLMLabError
from engine.tokenizer import byte_tokenizer

N_LAYERS = 2


def tiny(activation="swiglu", tie=True):
    torch.manual_seed(0)
    project = Project(
        model=ModelConfig(
            d_model=32,
            n_layers=N_LAYERS,
            n_heads=2,
            n_kv_heads=1,
            d_ff=64,
            max_seq_len=64,
            activation=activation,
            tie_embeddings=tie,
        )
    )
    tokenizer = byte_tokenizer()
    return build_model(project, tokenizer), tokenizer


def adapted(model):
    """Short names of the modules that carry LoRA adapters."""
    return {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if hasattr(module, "lora_A") and name.rsplit(".", 1)[-1] not in ("lora_A", "lora_B")
    }


@pytest.mark.parametrize(
    ("preset", "activation", "expected"),
    [
        ("minimal", "swiglu", {"q_proj", "v_proj"}),
        ("attention_only", "gelu", {"q_proj", "k_proj", "v_proj", "o_proj"}),
        ("ffn_only", "swiglu", {"gate_proj", "up_proj", "down_proj"}),
        ("ffn_only", "gelu", {"up_proj", "down_proj"}),
        ("all", "swiglu", {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}),
        ("all", "relu", {"q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"}),
    ],
)
def test_presets_target_exactly_their_modules(preset, activation, expected):
    model, _ = tiny(activation)
    peft_model = apply_lora(model, LoraConfig(enabled=True, preset=preset))
    assert adapted(peft_model) == expected
    count = sum(1 for name, m in peft_model.named_modules() if name.endswith(tuple(expected)) and hasattr(m, "lora_A"))
    assert count == N_LAYERS * len(expected)


def test_custom_modules_are_validated_against_the_model():
    model, _ = tiny("gelu")
    cfg = LoraConfig(enabled=True, preset="custom", target_modules=["q_proj", "down_proj"])
    assert target_modules(model, cfg) == ["q_proj", "down_proj"]
    bad = LoraConfig(enabled=True, preset="custom", target_modules=["q_proj", "gate_proj", "qkv"])
    with pytest.raises(LLMLabError) as error:
        target_modules(model, bad, "sft.lora")
    assert error.value.lines == [
        "sft.lora.target_modules: no linear layer named 'gate_proj', 'qkv' in this model "
        "(valid: down_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj)"
    ]
    with pytest.raises(LLMLabError, match="sft.lora.target_modules: the custom preset needs at least one module name"):
        target_modules(model, LoraConfig(enabled=True, preset="custom"), "sft.lora")


def train_steps(model, steps=3, vocab=258):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        ids = torch.randint(0, vocab, (2, 16), generator=generator)
        ids[:, -1] = vocab + 1  # a new chat token, so its rows get gradients
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def test_lora_training_changes_adapter_weights_only():
    model, _ = tiny()
    peft_model = apply_lora(model, LoraConfig(enabled=True, preset="all", dropout=0.0))
    before = {name: p.detach().clone() for name, p in peft_model.named_parameters()}
    trainable, total = parameter_counts(peft_model)
    assert 0 < trainable < total
    train_steps(peft_model)
    for name, p in peft_model.named_parameters():
        changed = not torch.equal(p, before[name])
        assert changed == ("lora_" in name), name
        assert p.requires_grad == ("lora_" in name), name


@pytest.fixture(params=[True, False], ids=["tied", "untied"])
def trained_adapter(request, tmp_path):
    """A base model dir (no chat template), then an SFT-like LoRA run saved as an adapter dir."""
    model, tokenizer = tiny(tie=request.param)
    base_dir = tmp_path / "base"
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    model, tokenizer = load_model(base_dir), AutoTokenizer.from_pretrained(base_dir)
    assert ensure_chat_template(tokenizer, model)
    new_ids = tokenizer.convert_tokens_to_ids([IM_START, IM_END])
    peft_model = apply_lora(
        model, LoraConfig(enabled=True, preset="attention_only", dropout=0.0), new_token_ids=new_ids
    )
    rows_before = peft_model.get_input_embeddings().weight.detach().clone()
    train_steps(peft_model)
    adapter_dir = tmp_path / "final"
    tokenizer.save_pretrained(adapter_dir)
    peft_model.save_pretrained(adapter_dir)
    return peft_model.eval(), adapter_dir, base_dir, new_ids, rows_before


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


PROBE = torch.tensor([[5, 70, 258, 259, 200, 3, 259, 258, 100, 12]])


def test_adapter_dir_loads_with_peft_and_with_load_adapter(trained_adapter):
    peft_model, adapter_dir, base_dir, new_ids, rows_before = trained_adapter
    assert (adapter_dir / "adapter_config.json").is_file() and not (adapter_dir / "model.safetensors").exists()
    expected = logits(peft_model, PROBE)
    # the new chat-token rows trained; the other embedding rows did not
    trained = peft_model.get_base_model().get_input_embeddings()
    torch.testing.assert_close(trained.weight[:258], rows_before[:258])
    deltas = [
        m.trainable_tokens_delta["default"]
        for m in peft_model.modules()
        if hasattr(m, "trainable_tokens_delta") and "default" in m.trainable_tokens_delta
    ]
    assert deltas and not torch.allclose(deltas[0], rows_before[new_ids])
    plain = PeftModel.from_pretrained(load_model(base_dir), adapter_dir)
    assert torch.allclose(logits(plain, PROBE), expected, atol=1e-6, rtol=0)
    loaded = load_adapter(adapter_dir)
    assert torch.allclose(logits(loaded, PROBE), expected, atol=1e-6, rtol=0)
    assert torch.allclose(logits(load_model(adapter_dir), PROBE), expected, atol=1e-6, rtol=0)
    assert loaded.generation_config.eos_token_id[-1] == new_ids[1]
    base_logits = logits(load_model(base_dir), PROBE)
    assert not torch.allclose(base_logits[..., :258], expected[..., :258], atol=1e-3)


def test_merged_model_gives_the_adapter_model_logits(trained_adapter):
    peft_model, adapter_dir, _, new_ids, _ = trained_adapter
    report = merge(adapter_dir)
    assert report.out_dir == adapter_dir.with_name("final-merged")
    assert report.max_logit_diff <= 1e-5
    merged = AutoModelForCausalLM.from_pretrained(report.out_dir)
    assert (logits(merged, PROBE) - logits(peft_model, PROBE)).abs().max() <= 1e-5
    tokenizer = AutoTokenizer.from_pretrained(report.out_dir)
    assert (
        tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
        == "<|im_start|>user\nhi<|im_end|>\n"
    )
    assert new_ids[1] in merged.generation_config.eos_token_id


def test_merge_refuses_a_merge_that_changes_the_logits(trained_adapter, monkeypatch, tmp_path):
    _, adapter_dir, *_ = trained_adapter
    original = BaseTuner.merge_and_unload

    def corrupt(self, *args, **kwargs):
        merged = original(self, *args, **kwargs)
        with torch.no_grad():
            merged.model.layers[0].self_attn.q_proj.weight[0, 0] += 1.0
        return merged

    monkeypatch.setattr(BaseTuner, "merge_and_unload", corrupt)
    out = tmp_path / "merged"
    with pytest.raises(
        LLMLabError,
        match=r"merge: the merged model's logits differ from the adapter model's by up to "
        r"[0-9.e-]+ \(tolerance 0.0001\); nothing was written",
    ):
        merge(adapter_dir, out)
    assert not out.exists()


def test_an_adapter_dir_without_a_base_is_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": null}')
    with pytest.raises(LLMLabError, match="base_model_name_or_path in .* must name a model directory; got None"):
        merge(tmp_path)


def test_adapters_on_top_of_an_adapter_directory_load_and_merge(trained_adapter, tmp_path):
    _, first_dir, *_ = trained_adapter
    base = load_adapter(first_dir).merge_and_unload()
    base.name_or_path = str(first_dir)  # what a stage starting from first_dir records
    second = apply_lora(base, LoraConfig(enabled=True, preset="minimal", dropout=0.0))
    train_steps(second, steps=2)
    second_dir = tmp_path / "second"
    AutoTokenizer.from_pretrained(first_dir).save_pretrained(second_dir)
    second.save_pretrained(second_dir)
    expected = logits(second.eval(), PROBE)
    assert torch.allclose(logits(load_adapter(second_dir), PROBE), expected, atol=1e-5, rtol=0)
    assert merge(second_dir).max_logit_diff <= 1e-5
