"""Every stage, full and LoRA: the chunked loss and activation checkpointing give the plain path's loss
and gradients, and keep less for backward (bytes autograd saves, counted: a deterministic measure)."""

from __future__ import annotations

import pytest
import torch

from engine.memory import SavedForBackward
from engine.objectives import build_objective, enable_activation_checkpointing

PROMPTS = [{"prompt": f"say {i % 10}", "answer": str(i % 10)} for i in range(20)]
ROWS = {
    "pretrain": [{"text": " ".join(str((i * 7 + j) % 10) for j in range(30))} for i in range(40)],
    "sft": [{"prompt": f"pick {i % 10} {i % 7}", "completion": f"say {i % 7}"} for i in range(20)],
    "dpo": [{"prompt": f"pick {i % 10}", "chosen": str(i % 5), "rejected": str(5 + i % 5)} for i in range(20)],
    "ppo": PROMPTS,
    "grpo": PROMPTS,
}
FIELDS = {
    "pretrain": dict(batch_size=2, seq_len=32),
    "sft": dict(batch_size=4, seq_len=32),
    "dpo": dict(batch_size=4, seq_len=32),
    "ppo": dict(batch_size=4, mini_batch_size=4, epochs=1, max_new_tokens=4, reward_rules=["exact_match"]),
    "grpo": dict(
        batch_size=2, group_size=4, mini_batch_size=8, max_new_tokens=4, kl_coef=0.1, reward_rules=["exact_match"]
    ),
}
CASES = [("pretrain", False)] + [(stage, lora) for stage in ("sft", "dpo", "ppo", "grpo") for lora in (False, True)]


def stage_objective(make_context, stage: str, lora: bool, **fields):
    extra = {"lora": {"enabled": True, "preset": "all", "dropout": 0.0}} if lora else {}
    ctx = make_context(stage, ROWS[stage], **FIELDS[stage], **extra, **fields)
    objective = build_objective(ctx)
    objective.module.train()
    torch.manual_seed(0)
    return ctx, objective, objective.next_batch()


def loss_gradients_and_saved(objective, batch) -> tuple[float, dict[str, torch.Tensor], int]:
    objective.module.zero_grad(set_to_none=True)
    with SavedForBackward(objective.module.parameters()) as saved:
        loss, _ = objective.loss(batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in objective.module.named_parameters() if p.grad is not None}
    return loss.item(), grads, saved.bytes


def assert_same(expected, got):
    assert got[0] == pytest.approx(expected[0], rel=1e-5, abs=1e-6)
    assert expected[1].keys() == got[1].keys() and expected[1]
    for name, grad in expected[1].items():
        assert torch.allclose(got[1][name], grad, rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("stage,lora", CASES)
def test_the_chunked_loss_equals_the_plain_one(make_context, stage, lora):
    ctx, objective, batch = stage_objective(make_context, stage, lora, fused_loss="plain")
    plain = loss_gradients_and_saved(objective, batch)
    ctx.config.fused_loss = "chunked"
    chunked = loss_gradients_and_saved(objective, batch)
    assert_same(plain, chunked)
    assert chunked[2] < plain[2]


@pytest.mark.parametrize("stage,lora", CASES)
def test_activation_checkpointing_gives_the_same_gradients_and_keeps_less(make_context, stage, lora):
    ctx, objective, batch = stage_objective(make_context, stage, lora)
    without = loss_gradients_and_saved(objective, batch)
    enable_activation_checkpointing(ctx.model)
    checkpointed = loss_gradients_and_saved(objective, batch)
    assert_same(without, checkpointed)
    assert checkpointed[2] < 0.7 * without[2]


def test_the_stage_setting_turns_checkpointing_on(make_context):
    ctx, _, _ = stage_objective(make_context, "sft", True, activation_checkpointing=True)
    layers = ctx.model.model.layers
    assert all(layer.gradient_checkpointing for layer in layers)
