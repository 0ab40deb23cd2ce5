"""The stage losses as small pure functions on tensors, each with its paper and equation.

Shapes: B sequences, T response tokens; `mask` is 1.0 on response tokens and 0.0 on padding.
All functions are differentiable where a loss needs it and never call `.item()`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def bits_per_byte(nll_sum: float, num_bytes: int) -> float:
    """Summed next-token loss (nats) over the UTF-8 bytes its targets stand for, in bits: comparable
    across tokenizers (nan when the targets stand for no bytes)."""
    return nll_sum / (math.log(2) * num_bytes) if num_bytes else float("nan")


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` over the positions where `mask` is 1 (over all of them, or along `dim`)."""
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Normalize to zero mean and unit variance over the masked positions (PPO advantages)."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean


# --- DPO: Rafailov et al. 2023, "Direct Preference Optimization", eq. 7 -------------------------


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    lengths: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO loss from summed response log-probabilities, each of shape (B,).

    h = (log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)).
    sigmoid: -log sigmoid(beta h) (eq. 7), with conservative label smoothing eps:
             -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h) (cDPO);
    hinge:   max(0, 1 - beta h) (SLiC, Zhao et al. 2023);
    ipo:     (h - 1 / (2 beta))^2 (Azar et al. 2023, eq. 17), on log-ratios averaged per response
             token (each divided by its response's token count, `lengths` = (chosen, rejected)), as
             the IPO authors and TRL read it, so that beta means the same at every length.
    Returns (loss per pair, chosen rewards, rejected rewards) with rewards = beta * log-ratio.
    """
    chosen_ratio = policy_chosen - reference_chosen
    rejected_ratio = policy_rejected - reference_rejected
    if loss_type in PER_TOKEN_DPO_LOSSES:
        if lengths is None:
            raise ValueError(f"the {loss_type} loss needs the responses' token counts (lengths)")
        chosen_ratio = chosen_ratio / lengths[0].clamp(min=1)
        rejected_ratio = rejected_ratio / lengths[1].clamp(min=1)
    h = chosen_ratio - rejected_ratio
    losses = DPO_LOSSES[loss_type](h, beta, label_smoothing)
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


DPO_LOSSES = {
    "sigmoid": lambda h, beta, eps: -(1 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h),
    "hinge": lambda h, beta, eps: torch.relu(1 - beta * h),
    "ipo": lambda h, beta, eps: (h - 1 / (2 * beta)) ** 2,
}
PER_TOKEN_DPO_LOSSES = {"ipo"}  # the losses whose log-ratios are averaged per response token


# --- PPO: Schulman et al. 2017 (clipped objective), GAE: Schulman et al. 2016 -------------------


def gae_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over response tokens (GAE paper, eq. 16).

    delta_t = r_t + gamma V_{t+1} - V_t and A_t = sum_{j >= t} (gamma lam)^(j - t) delta_j, computed
    as one matrix product instead of a loop over tokens. The step after the last response token is
    terminal (V = 0); `mask` must be 1 on a prefix of each row. Returns (advantages, returns =
    advantages + values), both zero on padding.
    """
    next_values = torch.cat([values[:, 1:] * mask[:, 1:], torch.zeros_like(values[:, :1])], dim=1)
    deltas = (rewards + gamma * next_values - values) * mask
    steps = torch.arange(rewards.shape[1], device=rewards.device)
    offsets = steps.view(-1, 1) - steps.view(1, -1)  # [j, t] = j - t
    discount = torch.where(offsets >= 0, (gamma * lam) ** offsets.clamp(min=0).to(rewards.dtype), 0.0)
    advantages = deltas @ discount
    return advantages * mask, (advantages + values) * mask


def ppo_policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped surrogate (PPO paper, eq. 7), negated to a loss; returns (loss, clip fraction)."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip, 1 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    return loss, clip_fraction


def ppo_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float
) -> torch.Tensor:
    """Clipped value loss: 0.5 * max((V - R)^2, (V_old + clip(V - V_old) - R)^2), as in openai/lm-human-preferences."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def kl_penalized_rewards(
    scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: -kl_coef * (log pi - log ref) on every token, plus the score on the last.

    (Ziegler et al. 2019, eq. 2.) Returns (rewards (B, T), per-token KL estimate (B, T)).
    """
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(scores)), last] += scores
    return rewards * mask, kl


# --- GRPO: Shao et al. 2024 (DeepSeekMath), with Dr. GRPO and DAPO variants ----------------------


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group") -> torch.Tensor:
    """A_i = r_i - mean(group), divided by the std chosen by `scale` (DeepSeekMath §4.1.2).

    scale "group": the group's std; "batch": the whole batch's std; "none": no division (Dr. GRPO,
    Liu et al. 2025). A group whose rewards are all equal gets zero advantage.
    """
    grouped = rewards.view(-1, group_size)
    centered = grouped - grouped.mean(1, keepdim=True)
    return (centered / GROUP_SCALES[scale](grouped, rewards)).view(-1)


GROUP_SCALES = {  # the divisor of the centered rewards; the 1e-4 keeps zero-variance groups at 0
    "group": lambda grouped, flat: grouped.std(1, keepdim=True) + 1e-4,
    "batch": lambda grouped, flat: flat.std() + 1e-4,
    "none": lambda grouped, flat: 1.0,
}


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Schulman's unbiased, non-negative KL estimator k3 = exp(q - p) - (q - p) - 1 per token."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon: float,
    epsilon_high: float = 0.0,
    loss_type: str = "dapo",
    max_tokens: int = 1,
    ref_logprobs: torch.Tensor | None = None,
    beta: float = 0.0,
    step_tokens: torch.Tensor | float | None = None,
    grad_accum: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped-ratio GRPO objective per token, aggregated by `loss_type`; returns (loss, clip fraction).

    Token loss: -min(rho A, clip(rho, 1 - eps, 1 + eps_high) A) + beta k3 (eq. 3 of DeepSeekMath,
    eps_high from DAPO, Yu et al. 2025, used when > 0). Aggregation: grpo averages each sequence
    over its length then over sequences; dr_grpo sums tokens and divides by a constant
    (B * max_tokens); dapo averages over every response token of the optimizer step (DAPO eq. 8,
    TRL's "dapo"): this batch's token sum × grad_accum / `step_tokens` (the step's count over its
    grad_accum micro-batches), so that the loop's division by grad_accum leaves the step's sum
    over its token count. Without `step_tokens`, dapo is this batch's token mean (TRL's "bnpo").
    """
    high = epsilon_high if epsilon_high > 0 else epsilon
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages.unsqueeze(1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    if beta and ref_logprobs is not None:
        per_token = per_token + beta * k3_kl(logprobs, ref_logprobs)
    tokens = mask.sum().clamp(min=1) if step_tokens is None else step_tokens / grad_accum
    loss = GRPO_AGGREGATIONS[loss_type](per_token, mask, max_tokens, tokens)
    clip_fraction = masked_mean((clipped < unclipped).float(), mask)
    return loss, clip_fraction


GRPO_AGGREGATIONS = {  # (token losses, mask, max_tokens, this batch's share of the step's tokens)
    "grpo": lambda x, mask, max_tokens, tokens: masked_mean(x, mask, dim=1).mean(),
    "dr_grpo": lambda x, mask, max_tokens, tokens: (x * mask).sum() / (x.shape[0] * max_tokens),
    "dapo": lambda x, mask, max_tokens, tokens: (x * mask).sum() / tokens,
}
