"""The stage losses against numbers worked out by hand."""

import math

import pytest
import torch

from engine.losses import (
    dpo_loss,
    gae_advantages,
    group_advantages,
    grpo_loss,
    k3_kl,
    kl_penalized_rewards,
    masked_whiten,
    ppo_policy_loss,
    ppo_value_loss,
)


def test_dpo_sigmoid_matches_closed_form():
    pc, pr, rc, rr = torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.5])
    loss, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=0.5)
    h = (-1.0 + 2.0) - (-3.0 + 2.5)  # 1.5
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.5 * h))), abs=1e-6)
    assert chosen.item() == pytest.approx(0.5) and rejected.item() == pytest.approx(-0.25)


def test_dpo_equals_ln2_when_policy_is_reference():
    logps = torch.tensor([-4.0, -7.0])
    loss, _, _ = dpo_loss(logps, logps + 1, logps, logps + 1, beta=0.1)
    assert torch.allclose(loss, torch.full((2,), math.log(2)))


def test_dpo_hinge_ipo_and_label_smoothing():
    args = (torch.tensor([0.0]), torch.tensor([-2.0]), torch.tensor([0.0]), torch.tensor([0.0]))  # h = 2
    assert dpo_loss(*args, beta=0.25, loss_type="hinge")[0].item() == pytest.approx(0.5)
    one_token = (torch.tensor([1]), torch.tensor([1]))
    assert dpo_loss(*args, beta=0.25, loss_type="ipo", lengths=one_token)[0].item() == pytest.approx((2 - 2) ** 2)
    smooth = dpo_loss(*args, beta=1.0, label_smoothing=0.1)[0].item()
    expected = -0.9 * math.log(1 / (1 + math.exp(-2))) - 0.1 * math.log(1 / (1 + math.exp(2)))
    assert smooth == pytest.approx(expected, abs=1e-6)


def test_gae_hand_computed_with_terminal_step():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 2.0, 0.0, 0.0]])
    values = torch.tensor([[0.5, 0.4, 0.3, 0.0], [1.0, 0.5, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    advantages, returns = gae_advantages(rewards, values, mask, gamma=0.9, lam=0.8)
    # row 0: d2 = 1 - 0.3 (terminal), d1 = 0.9*0.3 - 0.4, d0 = 0.9*0.4 - 0.5
    a2 = 0.7
    a1 = -0.13 + 0.72 * a2
    a0 = -0.14 + 0.72 * a1
    # row 1: d1 = 2 - 0.5 (terminal), d0 = 0.9*0.5 - 1
    b1 = 1.5
    b0 = -0.55 + 0.72 * b1
    expected = torch.tensor([[a0, a1, a2, 0.0], [b0, b1, 0.0, 0.0]])
    assert torch.allclose(advantages, expected, atol=1e-6)
    assert torch.allclose(returns, (expected + values) * mask, atol=1e-6)


def test_ppo_policy_and_value_loss_hand_computed():
    old = torch.log(torch.tensor([[0.5, 0.5]]))
    new = torch.log(torch.tensor([[0.75, 0.25]]))  # ratios 1.5 and 0.5
    adv = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    loss, clip_fraction = ppo_policy_loss(new, old, adv, mask, clip=0.2)
    # token 0: max(-1.5, -1.2) = -1.2 (clipped); token 1: max(0.5, 0.8) = 0.8 (clipped)
    assert loss.item() == pytest.approx((-1.2 + 0.8) / 2)
    assert clip_fraction.item() == pytest.approx(1.0)
    values, old_values, returns = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.0]]), torch.tensor([[2.0, 0.1]])
    value_loss = ppo_value_loss(values, old_values, returns, mask, clip=0.2)
    # token 0: max((1-2)^2, (0.7-2)^2) = 1.69; token 1: max(0.01, 0.01) = 0.01
    assert value_loss.item() == pytest.approx(0.5 * (1.69 + 0.01) / 2)


def test_kl_penalty_adds_score_on_last_token():
    logps, refs = torch.tensor([[-1.0, -2.0, 0.0]]), torch.tensor([[-1.5, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    rewards, kl = kl_penalized_rewards(torch.tensor([3.0]), logps, refs, mask, kl_coef=0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, -1.0, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 0.1 + 3.0, 0.0]]))


def test_group_advantages_hand_computed_and_zero_variance():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    adv = group_advantages(rewards, group_size=4, scale="group")
    std = torch.tensor([1.0, 0.0, 0.0, 1.0]).std().item()  # unbiased, as in DeepSeekMath's code
    assert torch.allclose(adv[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]) / (std + 1e-4), atol=1e-6)
    assert torch.equal(adv[4:], torch.zeros(4))
    assert torch.allclose(group_advantages(rewards, 4, scale="none")[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]))
    batch = group_advantages(rewards, 4, scale="batch")
    assert torch.allclose(batch[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]) / (rewards.std() + 1e-4))


def test_grpo_loss_aggregations_and_clipping():
    logps = torch.log(torch.tensor([[0.6, 0.6, 0.5], [0.5, 0.5, 0.5]]))
    old = torch.log(torch.full((2, 3), 0.5))  # ratios 1.2, 1.2, 1 / 1, 1, 1
    adv = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    per_token = torch.tensor([[-1.1, -1.1, -1.0], [1.0, 0.0, 0.0]])  # ratio 1.2 clipped to 1.1
    dapo, clip_fraction = grpo_loss(logps, old, adv, mask, epsilon=0.1, loss_type="dapo")
    assert dapo.item() == pytest.approx(per_token.sum().item() / 4)
    assert clip_fraction.item() == pytest.approx(2 / 4)
    grpo, _ = grpo_loss(logps, old, adv, mask, epsilon=0.1, loss_type="grpo")
    assert grpo.item() == pytest.approx((-3.2 / 3 + 1.0) / 2)
    dr, _ = grpo_loss(logps, old, adv, mask, epsilon=0.1, loss_type="dr_grpo", max_tokens=3)
    assert dr.item() == pytest.approx(per_token.sum().item() / 6)
    wide, _ = grpo_loss(logps, old, adv, mask, epsilon=0.1, epsilon_high=0.3, loss_type="dapo")
    assert wide.item() == pytest.approx((-1.2 - 1.2 - 1.0 + 1.0) / 4)


def test_ipo_averages_each_log_ratio_per_response_token():
    # chosen: log-ratio 2 over 4 tokens -> 0.5; rejected: -3 over 2 tokens -> -1.5; h = 2
    policy_chosen, reference_chosen = torch.tensor([-6.0]), torch.tensor([-8.0])
    policy_rejected, reference_rejected = torch.tensor([-9.0]), torch.tensor([-6.0])
    lengths = (torch.tensor([4]), torch.tensor([2]))
    args = (policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    loss, chosen, rejected = dpo_loss(*args, beta=0.5, loss_type="ipo", lengths=lengths)
    assert loss.item() == pytest.approx((2 - 1 / (2 * 0.5)) ** 2)  # (h - 1/(2 beta))^2 = 1
    assert chosen.item() == pytest.approx(0.25) and rejected.item() == pytest.approx(-0.75)
    # the same per-token ratios at twice the length: the same loss (summed ratios would give (4 - 1)^2)
    doubled = dpo_loss(*(2 * a for a in args), beta=0.5, loss_type="ipo", lengths=tuple(2 * n for n in lengths))
    assert doubled[0].item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="token counts"):
        dpo_loss(*args, beta=0.5, loss_type="ipo")


def test_dapo_over_unequal_micro_batches_equals_one_batch_holding_both():
    # micro-batch a: 1 row of 3 tokens, b: 2 rows of 1 token; per-token loss = -A * ratio (ratio 1)
    logps_a, adv_a, mask_a = torch.zeros(1, 3, requires_grad=True), torch.tensor([1.0]), torch.ones(1, 3)
    logps_b, adv_b = torch.zeros(2, 3, requires_grad=True), torch.tensor([-1.0, -1.0])
    mask_b = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    step_tokens = mask_a.sum() + mask_b.sum()  # 5
    accumulated = 0.0
    for logps, adv, mask in ((logps_a, adv_a, mask_a), (logps_b, adv_b, mask_b)):
        loss, _ = grpo_loss(logps, logps.detach(), adv, mask, 0.2, step_tokens=step_tokens, grad_accum=2)
        (loss / 2).backward()  # the loop's accumulation
        accumulated += loss.item() / 2
    assert accumulated == pytest.approx((-3 + 2) / 5)  # the step's token mean; per micro-batch: (-1 + 1) / 2
    both = torch.zeros(3, 3, requires_grad=True)
    loss, _ = grpo_loss(both, both.detach(), torch.cat([adv_a, adv_b]), torch.cat([mask_a, mask_b]), 0.2)
    loss.backward()
    assert loss.item() == pytest.approx(accumulated)
    assert torch.allclose(torch.cat([logps_a.grad, logps_b.grad]), both.grad)
    assert torch.allclose(both.grad, torch.tensor([[-0.2, -0.2, -0.2], [0.2, 0, 0], [0.2, 0, 0]]))


def test_grpo_and_dr_grpo_ignore_the_step_token_count():
    logps, mask = torch.zeros(2, 2), torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([1.0, -1.0])
    for loss_type, expected in (("grpo", 0.0), ("dr_grpo", (-2 + 1) / 4)):
        args = (logps, logps, adv, mask, 0.2)
        plain, _ = grpo_loss(*args, loss_type=loss_type, max_tokens=2)
        told, _ = grpo_loss(*args, loss_type=loss_type, max_tokens=2, step_tokens=9, grad_accum=2)
        assert plain.item() == pytest.approx(expected) and told.item() == pytest.approx(expected)


def test_k3_is_zero_at_equality_and_positive_otherwise():
    p = torch.tensor([-1.0, -2.0])
    assert torch.equal(k3_kl(p, p), torch.zeros(2))
    assert (k3_kl(p, p + torch.tensor([0.3, -0.3])) > 0).all()


def test_grpo_beta_adds_k3_term():
    logps = torch.log(torch.tensor([[0.5]]))
    ref = torch.log(torch.tensor([[0.25]]))
    loss, _ = grpo_loss(logps, logps, torch.tensor([0.0]), torch.ones(1, 1), 0.2, beta=0.5, ref_logprobs=ref)
    assert loss.item() == pytest.approx(0.5 * (0.5 - math.log(0.5) - 1), abs=1e-6)


def test_masked_whiten():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    w = masked_whiten(x, torch.tensor([[1.0, 1.0, 1.0, 0.0]]))
    assert torch.allclose(w[0, :3], torch.tensor([-1.2247, 0.0, 1.2247]), atol=1e-3)
