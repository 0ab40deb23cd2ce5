"""GRPO learns from a rule reward; LoRA GRPO trains the adapters only."""

import pytest
import torch

from engine.objectives.grpo import GRPOObjective
from tests.engine.objectives.helpers import train

PROMPTS = [{"prompt": "say 7", "answer": "7"} for _ in range(40)]


def grpo_context(make_context, **fields):
    settings = dict(
        steps=25,
        batch_size=4,
        group_size=8,
        mini_batch_size=32,
        max_new_tokens=3,
        lr=3e-3,
        warmup_steps=0,
        reward_rules=["exact_match"],
        optimizer={"name": "adamw", "weight_decay": 0.0},
        scheduler={"name": "none"},
    )
    settings.update(fields)
    return make_context("grpo", PROMPTS, **settings)


def test_grpo_raises_the_exact_match_reward(make_context):
    ctx = grpo_context(make_context)
    objective = GRPOObjective(ctx)
    before = objective.evaluate()["reward"]
    metrics = train(ctx, objective)
    rewards = [m["reward"] for m in metrics]
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5 + 0.2
    assert objective.evaluate()["reward"] > before
    assert {"reward_std", "zero_variance_groups", "entropy", "clip_fraction", "response_length", "truncated"} <= set(
        metrics[0]
    )


def test_grpo_with_lora_changes_adapter_weights_only(make_context):
    ctx = grpo_context(make_context, steps=2, kl_coef=0.1, lora={"enabled": True, "preset": "all"})
    objective = GRPOObjective(ctx)
    before = {name: p.detach().clone() for name, p in objective.module.named_parameters()}
    metrics = train(ctx, objective)
    assert "kl" in metrics[-1]
    for name, param in objective.module.named_parameters():
        if "lora_" not in name and "trainable_tokens" not in name:  # adapters, and the new chat tokens' rows
            assert torch.equal(before[name], param), f"{name} is not an adapter weight but changed"
    assert any(not torch.equal(before[n], p) for n, p in objective.module.named_parameters() if "lora_B" in n)


def test_grpo_trains_with_sophia(make_context):
    ctx = grpo_context(make_context, steps=2, optimizer={"name": "sophia", "hessian_update_period": 1})
    metrics = train(ctx, GRPOObjective(ctx))
    assert len(metrics) == 2


def test_health_warnings_fire_once(make_context):
    logs = []
    ctx = grpo_context(make_context)
    ctx.log = lambda message, level="info": logs.append((level, message))
    objective = GRPOObjective(ctx)
    stats = {"truncated": torch.tensor(1.0), "zero_variance_groups": torch.tensor(0.75), "entropy": 0.01, "kl": 12.0}
    objective.check_health(stats)
    objective.check_health(stats)
    warnings = [message for level, message in logs if level == "warning"]
    assert len(warnings) == 4
    assert any("max_new_tokens" in w for w in warnings) and any("zero reward variance" in w for w in warnings)
    assert any(level == "info" and "loss stays near 0" in message for level, message in logs)


def test_dapo_weighs_every_token_of_an_accumulated_step_the_same(make_context):
    """grad_accum 2, two micro-batches of unequal token counts: the loop's accumulated gradient is
    the gradient of the step's token mean, as if one batch held both (DAPO eq. 8)."""
    from engine.objectives.rollouts import score_tokens
    from engine.trainer import Trainer

    ctx = grpo_context(
        make_context, steps=1, batch_size=1, group_size=4, mini_batch_size=2, max_new_tokens=6, grad_accum=2
    )
    objective = GRPOObjective(ctx)
    objective.reward = lambda prompts, responses, answers: torch.arange(float(len(responses)))
    trainer = Trainer(ctx, objective)
    drawn, draw = [], objective.next_batch
    objective.next_batch = lambda: drawn.append(draw()) or drawn[-1]
    loss, _, _, _ = trainer.accumulate()
    accumulated = [p.grad.clone() for p in trainer.params]

    counts = [batch["rollout"].response_mask.sum().item() for batch in drawn]
    assert len(drawn) == 2 and counts[0] != counts[1]
    assert all(batch["advantages"].abs().sum() > 0 for batch in drawn)
    objective.module.zero_grad(set_to_none=True)
    total = 0.0
    for batch in drawn:  # one epoch: every ratio is 1 and unclipped, the token loss is -A rho
        rollout = batch["rollout"]
        ratio = torch.exp(score_tokens(objective.module, rollout, ctx.config.temperature)[0] - batch["old_logps"])
        total = total + (-batch["advantages"].unsqueeze(1) * ratio * rollout.response_mask).sum()
    (total / sum(counts)).backward()
    assert loss.item() == pytest.approx((total / sum(counts)).item(), abs=1e-6)
    for grad, param in zip(accumulated, trainer.params):
        assert torch.allclose(grad, param.grad, atol=1e-6)
