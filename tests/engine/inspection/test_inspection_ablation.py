"""Ablation: nothing ablated is the baseline exactly; a head's ablation removes exactly its o_proj slice
and nothing else; MLP and block ablations remove what they add; a saved ablated model gives the
ablated loss."""

import pytest
import torch

from engine.inspection.ablation import (
    Component,
    ablated,
    ablation_table,
    activation_means,
    every_component,
    held_out_loss,
    parse_component,
    save_ablated,
)
from engine.inspection.loading import load_inspectable
from engine.objectives.pretrain import next_token_loss
from engine.packing import PackedBatch
from engine.project.problems import LLMLabError
from engine.tokenizer import byte_tokenizer
from tests.engine.inspection.models import random_ids, tiny_model


def batches(n=2):
    out = []
    for seed in range(n):
        run = random_ids(batch=3, length=13, seed=seed)
        out.append(PackedBatch(run[:, :-1], run[:, 1:], [36], 36))
    return out


def capture(model, layer):
    """Hooks recording layer `layer`'s o_proj input, attention output, MLP output, block input and output."""
    seen = {}
    block = model.model.layers[layer]
    hooks = [
        block.self_attn.o_proj.register_forward_pre_hook(lambda m, a: seen.__setitem__("heads", a[0].clone())),
        block.self_attn.register_forward_hook(lambda m, a, out: seen.__setitem__("attn", out)),
        block.mlp.register_forward_hook(lambda m, a, out: seen.__setitem__("mlp", out)),
        block.register_forward_hook(lambda m, a, out: seen.update(block_in=a[0], block_out=out)),
    ]
    return seen, hooks


@torch.no_grad()
def run(model, components=(), means=None, layer=1):
    with ablated(model, components, means):
        seen, hooks = capture(model, layer)  # after the ablation's hooks: sees what they made
        logits = model(random_ids(), use_cache=False).logits
    for hook in hooks:
        hook.remove()
    return seen, logits


def test_nothing_ablated_is_the_baseline_exactly(model):
    data = batches()
    with torch.no_grad():
        nll = sum(next_token_loss(model, b.input_ids, b.targets, reduction="sum").item() for b in data)
    baseline = held_out_loss(model, data)
    assert baseline == pytest.approx(nll / 72, rel=1e-12)
    with ablated(model, []):
        assert held_out_loss(model, data) == baseline
    with ablated(model, [Component("block", 0)]):
        assert held_out_loss(model, data) != baseline
    assert held_out_loss(model, data) == baseline  # the hooks are gone


@pytest.mark.parametrize("attention", ["mha", "gqa", "mqa"])
def test_a_head_ablation_removes_exactly_its_slice(attention):
    model = tiny_model(attention=attention)
    base, _ = run(model)
    ablated_run, _ = run(model, [Component("head", 1, 2)])
    part = slice(16, 24)  # head 2 of 4, head_dim 8
    heads_base, heads_abl = base["heads"], ablated_run["heads"]
    torch.testing.assert_close(heads_abl[..., :16], heads_base[..., :16], rtol=0, atol=0)
    torch.testing.assert_close(heads_abl[..., 24:], heads_base[..., 24:], rtol=0, atol=0)
    assert torch.all(heads_abl[..., part] == 0)
    w = model.model.layers[1].self_attn.o_proj.weight
    torch.testing.assert_close(base["attn"] - ablated_run["attn"], heads_base[..., part] @ w[:, part].T)
    torch.testing.assert_close(ablated_run["block_in"], base["block_in"], rtol=0, atol=0)  # layer 0 untouched


def test_mean_ablation_puts_the_held_out_mean(model):
    data = batches()
    means = activation_means(model, data)
    seen, hooks = capture(model, 0)
    with torch.no_grad():
        model(data[0].input_ids, use_cache=False)
    for hook in hooks:
        hook.remove()
    one = activation_means(model, data[:1])
    torch.testing.assert_close(one[("head", 0)], seen["heads"].mean(dim=(0, 1)))
    torch.testing.assert_close(one[("mlp", 0)], seen["mlp"].mean(dim=(0, 1)))
    torch.testing.assert_close(one[("block", 0)], (seen["block_out"] - seen["block_in"]).mean(dim=(0, 1)))
    ablated_run, _ = run(model, [Component("head", 1, 0)], means)
    torch.testing.assert_close(ablated_run["heads"][..., :8], means[("head", 1)][:8].expand(2, 12, 8))


def test_mlp_and_block_ablations_remove_what_they_add(model):
    base, _ = run(model)
    no_mlp, _ = run(model, [Component("mlp", 1)])
    torch.testing.assert_close(no_mlp["block_out"], base["block_out"] - base["mlp"], atol=1e-6, rtol=0)
    no_block, logits = run(model, [Component("block", 1)])
    assert torch.equal(no_block["block_out"], no_block["block_in"])
    torch.testing.assert_close(logits, model.lm_head(model.model.norm(base["block_in"])))


def test_the_table_sorts_every_component_by_damage(model):
    table = ablation_table(model, batches(), mode="mean")
    assert table["baseline"] == held_out_loss(model, batches()) and table["tokens"] == 72
    names = [row["component"] for row in table["rows"]]
    assert sorted(names) == sorted(c.name for c in every_component(model.config)) and len(names) == 12
    damages = [row["damage"] for row in table["rows"]]
    assert damages == sorted(damages, reverse=True)
    with ablated(model, [Component("mlp", 0)], activation_means(model, batches())):
        expected = held_out_loss(model, batches())
    row = next(r for r in table["rows"] if r["component"] == "L0.mlp")
    assert row["loss"] == expected and row["damage"] == expected - table["baseline"]
    with pytest.raises(LLMLabError, match="--mode: 'half' is not one of zero, mean"):
        ablation_table(model, batches(), mode="half")


def test_a_saved_ablated_model_gives_the_ablated_loss(model, tmp_path):
    tokenizer = byte_tokenizer()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    loaded, tokenizer = load_inspectable(tmp_path / "model")
    components = [Component("head", 0, 1), Component("mlp", 1), Component("block", 0)]
    with ablated(loaded, components):
        expected = held_out_loss(loaded, batches())
    out = save_ablated(loaded, tokenizer, components, tmp_path / "broken", source=tmp_path / "model")
    reloaded, _ = load_inspectable(out)
    assert held_out_loss(reloaded, batches()) == pytest.approx(expected, abs=1e-6)
    assert held_out_loss(reloaded, batches()) != pytest.approx(held_out_loss(model, batches()), abs=1e-5)
    with pytest.raises(LLMLabError, match="--save: .* holds"):
        save_ablated(reloaded, tokenizer, components, tmp_path / "model", source=tmp_path / "broken")


def test_component_names(model):
    assert parse_component("L1.H3", model.config) == Component("head", 1, 3)
    assert parse_component("l0.MLP", model.config) == Component("mlp", 0)
    assert parse_component("L1.block", model.config).name == "L1.block"
    with pytest.raises(LLMLabError, match=r"--ablate: 'L2.mlp' is not .* with a layer below 2"):
        parse_component("L2.mlp", model.config)
    with pytest.raises(LLMLabError, match=r"--ablate: 'L0.H4': the model has heads 0-3"):
        parse_component("L0.H4", model.config)
    with pytest.raises(LLMLabError, match="--ablate: 'head' is not"):
        parse_component("head", model.config)
