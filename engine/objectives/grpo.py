"""GRPO (Shao et al. 2024, DeepSeekMath §4): group-relative advantages, no value model.

Each rollout samples `group_size` responses for each of `batch_size` prompts in one batched
generate call, scores them with the stage's reward, and turns each group's rewards into
advantages (reward − group mean, scaled by `scale_rewards`). The rollout then yields `epochs`
passes of mini-batches of `mini_batch_size` responses; each is one micro-batch of the loop,
trained with the clipped-ratio loss of engine.losses.grpo_loss. The `dapo` loss averages over
every response token of the optimizer step, so the step's `grad_accum` micro-batches are drawn
together at its first `next_batch`, each carrying the step's token count.
"""

from __future__ import annotations

from collections import deque

import torch

from engine.device import average_over_ranks
from engine.losses import group_advantages, grpo_loss, k3_kl, masked_mean
from engine.objectives.policy import PolicyObjective
from engine.objectives.rollouts import score_tokens


class GRPOObjective(PolicyObjective):
    def __init__(self, ctx):
        super().__init__(ctx, needs_reference=ctx.config.kl_coef > 0)
        if ctx.config.kl_coef == 0 and ctx.config.epochs == 1:
            ctx.log(
                "GRPO with kl_coef = 0 and one epoch: the loss stays near 0 by construction "
                "(the ratio is 1 and advantages average to 0); watch the reward instead",
                "info",
            )
        self.step_batches: deque = deque()  # the rest of this step's micro-batches

    def next_batch(self):
        """This step's next micro-batch; the first draws them all and counts the step's response
        tokens (over ranks: their mean, so that the loop's gradient average divides by the total)."""
        if not self.step_batches:
            draw = super().next_batch
            batches = [draw() for _ in range(self.config.grad_accum)]
            tokens = sum(batch["rollout"].response_mask.sum() for batch in batches)
            step_tokens = average_over_ranks(tokens.clamp(min=1))
            self.step_batches.extend(dict(batch, step_tokens=step_tokens) for batch in batches)
        return self.step_batches.popleft()

    def _rollout_batches(self):
        cfg = self.config
        rows = self.prompts.take(cfg.batch_size)
        rollout = self.generate([row.prompt for row in rows], cfg.group_size, cfg.temperature)
        answers = [row.reference for row in rows for _ in range(cfg.group_size)]
        rewards = self.reward(self.prompt_texts(rows, cfg.group_size), rollout.responses, answers)
        advantages = group_advantages(rewards, cfg.group_size, cfg.scale_rewards)
        with torch.no_grad():
            old_logps, entropy, _ = score_tokens(
                self.module, rollout, cfg.temperature, with_entropy=True, mode=cfg.fused_loss
            )
            ref_logps = self.reference_logps(rollout, cfg.temperature) if self.reference else None
        mask = rollout.response_mask
        grouped = rewards.view(-1, cfg.group_size)
        stats = {
            "reward": rewards.mean(),
            "reward_std": rewards.std(),
            "zero_variance_groups": (grouped.std(1) == 0).float().mean(),
            "response_length": rollout.response_lengths.mean(),
            "truncated": rollout.truncated.float().mean(),
            "entropy": masked_mean(entropy, mask),
        }
        if ref_logps is not None:
            stats["kl"] = masked_mean(k3_kl(old_logps, ref_logps), mask)
        self.check_health(stats)
        fields = {"old_logps": old_logps, "ref_logps": ref_logps, "advantages": advantages.to(self.ctx.device)}
        return self.minibatches(rollout, fields, stats, cfg.epochs, cfg.mini_batch_size)

    def loss(self, batch):
        cfg = self.config
        rollout = batch["rollout"]
        logps = score_tokens(self.module, rollout, cfg.temperature, mode=cfg.fused_loss)[0]
        mask = rollout.response_mask
        loss, clip_fraction = grpo_loss(
            logps,
            batch["old_logps"],
            batch["advantages"],
            mask,
            epsilon=cfg.clip_range,
            epsilon_high=cfg.clip_range_high,
            loss_type=cfg.loss_type,
            max_tokens=cfg.max_new_tokens,
            ref_logprobs=batch["ref_logps"],
            beta=cfg.kl_coef,
            step_tokens=batch["step_tokens"],
            grad_accum=cfg.grad_accum,
        )
        return loss, dict(batch["stats"], clip_fraction=clip_fraction)
