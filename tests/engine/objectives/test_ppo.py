"""PPO learns from a rule reward; its value head is saved beside the policy; advantages are fp32."""

import torch

from engine.losses import gae_advantages
from engine.objectives.ppo import VALUE_HEAD_FILE, PPOObjective, whitened_advantages
from tests.engine.objectives.helpers import train

PROMPTS = [{"prompt": "say 7", "answer": "7"} for _ in range(40)]


def test_ppo_raises_the_exact_match_reward(make_context, tmp_path):
    ctx = make_context(
        "ppo",
        PROMPTS,
        steps=30,
        batch_size=16,
        mini_batch_size=16,
        epochs=2,
        max_new_tokens=3,
        lr=3e-3,
        warmup_steps=0,
        kl_coef=0.01,
        vf_coef=0.1,
        reward_rules=["exact_match"],
        optimizer={"name": "adamw", "weight_decay": 0.0},
        scheduler={"name": "none"},
    )
    objective = PPOObjective(ctx)
    metrics = train(ctx, objective)
    rewards = [m["reward"] for m in metrics]
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5 + 0.2
    assert {"kl", "policy_loss", "value_loss", "entropy", "clip_fraction", "response_length"} <= set(metrics[0])
    assert objective.save(tmp_path) and (tmp_path / VALUE_HEAD_FILE).is_file() and (tmp_path / "config.json").is_file()


def test_advantages_under_bf16_autocast_equal_the_fp32_ones():
    generator = torch.Generator().manual_seed(0)
    rewards = torch.randn(4, 24, generator=generator)
    values = 3 * torch.randn(4, 24, generator=generator)
    mask = (torch.arange(24) < torch.tensor([[24], [20], [9], [1]])).float()
    expected = whitened_advantages(rewards, values, mask, gamma=1.0, lam=0.95)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bare = gae_advantages(rewards, values, mask, gamma=1.0, lam=0.95)
        got = whitened_advantages(rewards, values, mask, gamma=1.0, lam=0.95)
    assert not torch.equal(bare[0], gae_advantages(rewards, values, mask, gamma=1.0, lam=0.95)[0])  # bf16 errs
    for tensor, reference in zip(got, expected):
        assert tensor.dtype == torch.float32 and torch.equal(tensor, reference)
