"""The configurable model: every combination of parts runs, is causal, decodes with its cache exactly
like a full forward pass, generates through transformers' `generate()`, and saves / loads in HF format."""

import itertools
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModelForCausalLM

from engine.factory import model_config
from engine.layers import ResidualProjection
from engine.model import CACHE_FIELD, LLMLabForCausalLM
from engine.project import ACTIVATIONS, ATTENTIONS, NORMALIZATIONS, POSITIONAL_ENCODINGS, ModelConfig

VOCAB = 64
COMBOS = list(itertools.product(POSITIONAL_ENCODINGS, NORMALIZATIONS, ATTENTIONS, ACTIVATIONS))
ATOL = 1e-5


def tiny(positional_encoding="rope", normalization="rmsnorm", attention="gqa", activation="swiglu", seed=0, **fields):
    """A 2-layer, 32-wide model; yarn stretches a 16-token context 2x."""
    torch.manual_seed(seed)
    shape = dict(
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        d_ff=48,
        max_seq_len=32,
        yarn_factor=2.0,
        yarn_original_max_seq_len=16,
    )
    model_cfg = ModelConfig(
        positional_encoding=positional_encoding,
        normalization=normalization,
        attention=attention,
        activation=activation,
        **{**shape, **fields},
    )
    return LLMLabForCausalLM(model_config(model_cfg, VOCAB, pad_token_id=0)).eval()


def tokens(batch=2, length=12, seed=1):
    return torch.randint(1, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("parts", COMBOS, ids="-".join)
def test_forward_backward_and_causality(parts):
    model = tiny(*parts)
    ids = tokens()
    out = model(ids, labels=ids)
    assert out.logits.shape == (2, 12, VOCAB) and torch.isfinite(out.loss)
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    with torch.no_grad():
        base = model(ids).logits
        for t in (0, 5, 10):
            changed = ids.clone()
            changed[:, t + 1] = (changed[:, t + 1] % (VOCAB - 1)) + 1
            logits = model(changed).logits
            assert torch.equal(logits[:, : t + 1], base[:, : t + 1])
            assert not torch.allclose(logits[:, t + 1], base[:, t + 1])


@pytest.mark.parametrize("parts", COMBOS, ids="-".join)
@torch.no_grad()
def test_cached_decoding_equals_full_forward(parts):
    """Prefill 5 tokens, then one at a time, then 3 at once (explicit causal mask over the cache)."""
    model = tiny(*parts)
    ids = tokens(length=12)
    full = model(ids).logits
    out = model(ids[:, :5], use_cache=True)
    pieces, cache = [out.logits], getattr(out, CACHE_FIELD)
    for t in range(5, 9):
        out = model(ids[:, t : t + 1], cache=cache, use_cache=True)
        pieces.append(out.logits)
    out = model(ids[:, 9:12], cache=cache, use_cache=True)
    pieces.append(out.logits)
    assert cache.get_seq_length() == 12
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=ATOL)


def generate_logits(model, ids, mask=None, new=10):
    out = model.generate(
        ids,
        attention_mask=mask,
        max_new_tokens=new,
        do_sample=False,
        output_logits=True,
        return_dict_in_generate=True,
        eos_token_id=None,
        pad_token_id=0,
    )
    return out.sequences, torch.stack(out.logits, dim=1)  # (B, T+new), (B, new, V)


PE_NORM_ACT = [
    (pe, "layernorm" if pe == "sinusoidal" else "rmsnorm", "mqa" if pe == "alibi" else "gqa")
    for pe in POSITIONAL_ENCODINGS
]


@pytest.mark.parametrize("pe, norm, attention", PE_NORM_ACT)
@torch.no_grad()
def test_generate_logits_equal_a_full_forward_over_the_sequence(pe, norm, attention):
    model = tiny(pe, norm, attention)
    prompt = tokens(batch=2, length=6)
    sequences, logits = generate_logits(model, prompt, new=30)  # past the 16-token yarn original length
    full = model(sequences).logits[:, 5:-1]
    assert torch.allclose(logits, full, atol=ATOL), (logits - full).abs().max()


@pytest.mark.parametrize("pe, norm, attention", PE_NORM_ACT)
@torch.no_grad()
def test_batched_generation_with_left_padding(pe, norm, attention):
    """Prompts of 7 and 4 tokens in one batch: each row generates what it generates alone."""
    model = tiny(pe, norm, attention)
    long, short = tokens(1, 7, seed=2)[0], tokens(1, 4, seed=3)[0]
    ids = torch.stack([long, torch.cat([torch.zeros(3, dtype=torch.long), short])])
    mask = torch.tensor([[1] * 7, [0, 0, 0, 1, 1, 1, 1]])
    sequences, logits = generate_logits(model, ids, mask, new=8)
    full_mask = torch.cat([mask, torch.ones(2, 8, dtype=torch.long)], dim=1)
    full = model(sequences, attention_mask=full_mask).logits[:, 6:-1]
    assert torch.allclose(logits, full, atol=ATOL)
    for row, prompt in enumerate((long, short)):
        alone_sequences, alone_logits = generate_logits(model, prompt[None], new=8)
        assert torch.equal(sequences[row, -8:], alone_sequences[0, -8:])
        assert torch.allclose(logits[row], alone_logits[0], atol=ATOL)


@torch.no_grad()
def test_sampling_settings_and_eos():
    model = tiny()
    prompt = tokens(1, 5)
    greedy, _ = generate_logits(model, prompt, new=6)
    stop = greedy[0, 5 + 2].item()  # the third generated token becomes the eos
    first = int((greedy[0, 5:] == stop).nonzero()[0])
    stopped = model.generate(prompt, max_new_tokens=6, do_sample=False, eos_token_id=stop, pad_token_id=0)
    assert stopped.shape[1] == 5 + first + 1 and stopped[0, -1] == stop
    for settings in ({"temperature": 0.7}, {"top_k": 5}, {"top_p": 0.8}, {"repetition_penalty": 1.3}):
        torch.manual_seed(0)
        a = model.generate(prompt, max_new_tokens=6, do_sample=True, pad_token_id=0, **settings)
        torch.manual_seed(0)
        b = model.generate(prompt, max_new_tokens=6, do_sample=True, pad_token_id=0, **settings)
        assert a.shape == (1, 11) and torch.equal(a, b)
    penalised = model.generate(prompt, max_new_tokens=6, do_sample=False, repetition_penalty=100.0, pad_token_id=0)
    new = penalised[0, 5:].tolist()
    assert not set(new) & set(prompt[0].tolist()) and len(set(new)) == len(new)


@torch.no_grad()
def test_fused_causal_path_without_padding():
    """No mask is built (SDPA's own causal kernel) unless alibi, padding or a multi-token cached step needs one."""
    build = lambda pe, mask, q, past: tiny(pe).model.attention_mask(mask, q, past, "cpu", torch.float32)
    assert build("rope", None, 8, 0) is None and build("rope", None, 1, 7) is None
    assert build("rope", None, 3, 5).shape == (3, 8)
    assert build("alibi", None, 8, 0).shape == (4, 8, 8)
    assert build("rope", torch.ones(2, 8), 8, 0).shape == (2, 1, 8, 8)


def test_init_scales_residual_projections():
    model = tiny(d_model=256, n_layers=8, n_heads=4, n_kv_heads=4, d_ff=512)
    std = model.config.initializer_range
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.startswith("model.layers.0"):
            expected = std / 4 if isinstance(module, ResidualProjection) else std  # sqrt(2 * 8) = 4
            assert module.weight.std().item() == pytest.approx(expected, rel=0.05), name
    assert {n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, ResidualProjection)} == {
        "o_proj",
        "down_proj",
    }


def test_module_names_and_tied_embeddings():
    model = tiny()
    names = {name for name, _ in model.named_parameters()}
    for part in (
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
        "input_layernorm",
        "post_attention_layernorm",
    ):
        assert f"model.layers.1.{part}.weight" in names
    assert "model.embed_tokens.weight" in names and "model.norm.weight" in names
    assert model.lm_head.weight is model.model.embed_tokens.weight
    untied = tiny(tie_embeddings=False)
    assert untied.lm_head.weight is not untied.model.embed_tokens.weight
    plain = tiny(activation="gelu")
    assert not hasattr(plain.model.layers[0].mlp, "gate_proj")


def test_dropout_only_in_training():
    model = tiny(dropout=0.3)
    ids = tokens()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, model(ids).logits)
        model.train()
        assert not torch.equal(model(ids).logits, model(ids).logits)


def test_gradient_checkpointing_gives_the_same_gradients():
    ids = tokens()
    grads = []
    for checkpointing in (False, True):
        model = tiny().train()
        if checkpointing:
            # the name before transformers 5.24: gradient_checkpointing_enable
            enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
            enable()
        model(ids, labels=ids).loss.backward()
        grads.append(model.model.layers[0].self_attn.q_proj.weight.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


SAVED = [
    ("sinusoidal", "layernorm", "mha", "gelu"),
    ("rope", "rmsnorm", "gqa", "swiglu"),
    ("alibi", "layernorm", "mqa", "leaky_relu"),
    ("yarn", "rmsnorm", "gqa", "relu"),
]


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Each positional encoding saved once, with the logits it gives on fixed tokens."""
    root = tmp_path_factory.mktemp("saved")
    ids = tokens(2, 20)
    saved = []
    for parts in SAVED:
        model = tiny(*parts, bias=parts[0] == "alibi")
        path = root / "-".join(parts)
        model.save_pretrained(path)
        with torch.no_grad():
            saved.append((path, model(ids).logits))
    return ids, saved


def test_save_load_round_trip(saved_models):
    ids, saved = saved_models
    for path, expected in saved:
        files = {p.name for p in path.iterdir()}
        assert {
            "config.json",
            "model.safetensors",
            "generation_config.json",
            "model.py",
            "layers.py",
            "positions.py",
        } <= files
        config = json.loads((path / "config.json").read_text())
        assert config["model_type"] == "llmlab"
        assert config["auto_map"]["AutoModelForCausalLM"] == "model.LLMLabForCausalLM"
        loaded = AutoModelForCausalLM.from_pretrained(path)
        assert type(loaded) is LLMLabForCausalLM
        with torch.no_grad():
            assert torch.equal(loaded(ids).logits, expected)


def test_plain_transformers_loads_a_saved_model_without_engine(saved_models, tmp_path):
    ids, saved = saved_models
    torch.save({"ids": ids, "expected": {str(p): logits for p, logits in saved}}, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["engine"] = None  # `import engine` now fails
        import torch
        from transformers import AutoModelForCausalLM
        torch.set_num_threads(1)
        data = torch.load({str(tmp_path / "expected.pt")!r})
        for path, expected in data["expected"].items():
            model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()
            assert not type(model).__module__.startswith("engine"), type(model).__module__
            with torch.no_grad():
                diff = (model(data["ids"]).logits - expected).abs().max().item()
            print(path.rsplit("/", 1)[-1], diff)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    diffs = dict(line.split() for line in lines if line.strip())
    assert set(diffs) == {"-".join(parts) for parts in SAVED}
    assert all(float(d) == 0.0 for d in diffs.values()), diffs
