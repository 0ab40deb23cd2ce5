"""Per-layer training measures: off, the loop builds nothing, installs no hook and runs the same
forward passes; on, they arrive at the eval cadence and match a hand computation."""

import math

import pytest
import torch

from engine.inspection.attention import attention_weights, head_summary
from engine.inspection.lens import block_outputs
from engine.inspection.training import LayerStats
from engine.model import DecoderLayer
from engine.objectives import build_objective
from engine.project import load_project
from engine.trainer import Trainer
from tests.engine.inspection.models import random_ids, tiny_model
from tests.engine.pretrain_context import pretrain_context
from tests.tiny_project import Recorder, make_project


def trainer(directory, **pretrain) -> tuple[Trainer, Recorder, list]:
    """A tiny pretraining loop, its events, and a list that counts every block's forward calls."""
    project = load_project(make_project(directory, **pretrain))
    ctx = pretrain_context(project, run_dir=directory / "run")
    model = ctx.model
    events, calls = Recorder(), []
    for block in model.modules():
        if isinstance(block, DecoderLayer):
            block.register_forward_pre_hook(lambda module, args: calls.append(len(module._forward_hooks)))
    return Trainer(ctx, build_objective(ctx), events.put), events, calls


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_off_costs_nothing_and_on_adds_no_forward(tmp_path, grad_accum):
    off, off_events, off_calls = trainer(tmp_path / "off", steps=4, eval_every=2, grad_accum=grad_accum)
    on, on_events, on_calls = trainer(tmp_path / "on", steps=4, eval_every=2, grad_accum=grad_accum, layer_stats=True)
    assert off.layer_stats is None and isinstance(on.layer_stats, LayerStats)
    off.run()
    on.run()
    assert len(off_calls) == len(on_calls)  # the same forward passes, measured or not
    assert set(off_calls) == {0}  # off: no block ever ran with a forward hook installed
    assert not off_events.of("layers")
    measured = on_events.of("layers")
    assert [e["step"] for e in measured] == [2, 4]
    assert all(len(e["layers"]) == 2 for e in measured)
    for row in measured[0]["layers"]:
        assert all(math.isfinite(row[k]) and row[k] > 0 for k in ("grad_norm", "update_ratio", "act_rms"))
        assert 0 < row["attn_entropy"] < math.log2(32)
    assert [e["loss"] for e in off_events.of("metrics")] == [e["loss"] for e in on_events.of("metrics")]


def test_measures_match_a_hand_computation():
    model = tiny_model().train()
    ids = random_ids(batch=2, length=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    stats = LayerStats(model, every=1)
    assert stats.due(1) and not LayerStats(model, every=3).due(2) and not LayerStats(model, every=0).due(5)

    with block_outputs(model) as residuals:
        model(ids, use_cache=False)
    expected_rms = [h.pow(2).mean().sqrt().item() for h in residuals]
    expected_entropy = head_summary(attention_weights(model, ids)).get("entropy").mean(dim=(1, 2)).tolist()

    with stats.watching():
        with torch.no_grad():  # a pass without grad (generation, a reference model) is not measured
            model(random_ids(batch=1, length=5, seed=7))
        loss = model(ids, labels=ids, use_cache=False).loss
    loss.backward()
    blocks = list(model.model.layers)
    expected_grad = [torch.cat([p.grad.flatten() for p in b.parameters()]).norm().item() for b in blocks]
    before = [torch.cat([p.detach().flatten() for p in b.parameters()]).clone() for b in blocks]
    stats.before_update()
    optimizer.step()
    rows = stats.after_update()
    after = [torch.cat([p.detach().flatten() for p in b.parameters()]) for b in blocks]
    for i, row in enumerate(rows):
        assert row["layer"] == i
        assert row["grad_norm"] == pytest.approx(expected_grad[i], rel=1e-5)
        assert row["update_ratio"] == pytest.approx(((after[i] - before[i]).norm() / before[i].norm()).item(), rel=1e-5)
        assert row["act_rms"] == pytest.approx(expected_rms[i], rel=1e-5)
        assert row["attn_entropy"] == pytest.approx(expected_entropy[i], rel=1e-5)
    assert not any(block._forward_hooks for block in blocks)  # watching() removed its hooks
