"""PPO for language models (Schulman et al. 2017; Ziegler et al. 2019; Ouyang et al. 2022).

Each rollout samples one response for each of `batch_size` prompts, scores it with the stage's
reward, and builds per-token rewards: a KL penalty to the reference on every token (kl_coef,
optionally adapted toward kl_target as in Ziegler et al. §2.2) plus the score on the last one.
Values come from a value head on the policy (one linear layer on the final hidden state, in
the same forward pass as the log-probabilities: no separate critic network). GAE with gamma
and lam gives advantages, whitened over the rollout; then `epochs` passes of mini-batches
of `mini_batch_size` train the clipped policy loss plus vf_coef × the clipped value loss.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from engine.losses import (
    gae_advantages,
    kl_penalized_rewards,
    masked_mean,
    masked_whiten,
    ppo_policy_loss,
    ppo_value_loss,
)
from engine.objectives.policy import PolicyObjective
from engine.objectives.rollouts import score_tokens

VALUE_HEAD_FILE = "value_head.safetensors"
KL_HORIZON = 10_000  # the adaptive controller's horizon, in responses (Ziegler et al.)


def whitened_advantages(rewards, values, mask, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(GAE advantages whitened over the rollout, returns), in fp32 with autocast off: under bf16
    autocast GAE's discount matmul errs by up to 0.03 on advantages of size ~3."""
    with torch.autocast(mask.device.type, enabled=False):
        rewards, values, mask = rewards.float(), values.float(), mask.float()
        advantages, returns = gae_advantages(rewards, values, mask, gamma, lam)
        return masked_whiten(advantages, mask) * mask, returns


class PolicyWithValueHead(torch.nn.Module):
    """The policy and its value head: what the optimizer trains."""

    def __init__(self, policy: torch.nn.Module, hidden_size: int):
        super().__init__()
        self.policy = policy
        self.value_head = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)

    def values(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.value_head(hidden).squeeze(-1).float()


class PPOObjective(PolicyObjective):
    def __init__(self, ctx):
        super().__init__(ctx, needs_reference=True)
        hidden_size = ctx.model.config.hidden_size
        self.module = PolicyWithValueHead(self.policy, hidden_size).to(ctx.device)
        if ctx.resume_dir is not None and (Path(ctx.resume_dir) / VALUE_HEAD_FILE).exists():
            self.module.value_head.load_state_dict(
                load_file(Path(ctx.resume_dir) / VALUE_HEAD_FILE, device=str(ctx.device))
            )
        self.kl_coef = self.config.kl_coef

    def _rollout_batches(self):
        cfg = self.config
        rows = self.prompts.take(cfg.batch_size)
        rollout = self.generate([row.prompt for row in rows], 1, cfg.temperature)
        scores = self.reward(self.prompt_texts(rows, 1), rollout.responses, [row.reference for row in rows])
        mask = rollout.response_mask
        with torch.no_grad():
            old_logps, entropy, hidden = score_tokens(
                self.policy, rollout, cfg.temperature, with_entropy=True, with_hidden=True, mode=cfg.fused_loss
            )
            old_values = self.module.values(hidden) * mask
            ref_logps = self.reference_logps(rollout, cfg.temperature)
            rewards, kl = kl_penalized_rewards(scores.to(mask.device), old_logps, ref_logps, mask, self.kl_coef)
            advantages, returns = whitened_advantages(rewards, old_values, mask, cfg.gamma, cfg.lam)
        mean_kl = kl.sum(1).mean()
        stats = {
            "reward": scores.mean(),
            "kl": mean_kl,
            "kl_coef": self.kl_coef,
            "entropy": masked_mean(entropy, mask),
            "response_length": rollout.response_lengths.mean(),
            "truncated": rollout.truncated.float().mean(),
        }
        self.check_health(stats)
        if cfg.adaptive_kl:
            error = min(max(mean_kl.item() / cfg.kl_target - 1, -0.2), 0.2)
            self.kl_coef *= 1 + error * len(rows) / KL_HORIZON
        fields = {"old_logps": old_logps, "old_values": old_values, "advantages": advantages, "returns": returns}
        return self.minibatches(rollout, fields, stats, cfg.epochs, cfg.mini_batch_size)

    def loss(self, batch):
        cfg = self.config
        rollout = batch["rollout"]
        mask = rollout.response_mask
        logps, _, hidden = score_tokens(self.policy, rollout, cfg.temperature, with_hidden=True, mode=cfg.fused_loss)
        policy_loss, clip_fraction = ppo_policy_loss(
            logps, batch["old_logps"], batch["advantages"], mask, cfg.clip_range
        )
        values = self.module.values(hidden)
        value_loss = ppo_value_loss(values, batch["old_values"], batch["returns"], mask, cfg.clip_range_value)
        loss = policy_loss + cfg.vf_coef * value_loss
        metrics = dict(
            batch["stats"],
            policy_loss=policy_loss.detach(),
            value_loss=value_loss.detach(),
            clip_fraction=clip_fraction,
        )
        return loss, metrics

    def state_dict(self) -> dict:
        return dict(super().state_dict(), kl_coef=self.kl_coef)

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.kl_coef = state["kl_coef"]

    def save(self, model_dir) -> bool:
        """The policy (full weights or adapters) with its tokenizer, and the value head beside it."""
        self.policy.save_pretrained(model_dir)
        save_file(self.module.value_head.state_dict(), str(Path(model_dir) / VALUE_HEAD_FILE))
        return True
