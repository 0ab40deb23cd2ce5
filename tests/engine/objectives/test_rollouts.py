"""Rollouts are scored without dropout: with LoRA dropout 0.5, the first epoch's ratio is exactly 1."""

import pytest
import torch

from engine.objectives.grpo import GRPOObjective
from engine.objectives.ppo import PPOObjective
from engine.objectives.rollouts import score_tokens

PROMPTS = [{"prompt": "say 7", "answer": "7"} for _ in range(20)]
SETTINGS = dict(
    batch_size=4,
    epochs=1,
    max_new_tokens=3,
    temperature=1.0,
    kl_coef=0.1,
    reward_rules=["exact_match"],
    lora={"enabled": True, "preset": "all", "dropout": 0.5},
)
OBJECTIVES = {
    "ppo": (PPOObjective, dict(mini_batch_size=4)),
    "grpo": (GRPOObjective, dict(group_size=4, mini_batch_size=16)),
}


@pytest.mark.parametrize("stage", list(OBJECTIVES))
def test_the_first_epochs_ratio_is_exactly_one_with_dropout(make_context, stage):
    cls, fields = OBJECTIVES[stage]
    ctx = make_context(stage, PROMPTS, **SETTINGS, **fields)
    objective = cls(ctx)
    with torch.no_grad():  # adapters as after some training: B = 0 would hide the dropout
        for name, param in objective.policy.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)
    objective.module.train()  # as the loop leaves it
    batch = objective.next_batch()  # the whole rollout, shuffled: one mini-batch, one epoch
    rollout, mask = batch["rollout"], batch["rollout"].response_mask.bool()
    with torch.no_grad():
        twice = [objective.policy(input_ids=rollout.input_ids).logits for _ in range(2)]
        assert not torch.equal(*twice)  # dropout is live in train mode
        logps, _, hidden = score_tokens(objective.policy, rollout, ctx.config.temperature, with_hidden=True)
    assert objective.module.training and objective.policy.training
    ratio = torch.exp(logps - batch["old_logps"])[mask]
    assert mask.any() and torch.equal(ratio, torch.ones_like(ratio))
    if stage == "ppo":
        assert torch.equal(objective.module.values(hidden)[mask], batch["old_values"][mask])
    metrics = objective.loss(batch)[1]
    assert metrics["clip_fraction"] == 0


def test_no_dropout_silences_attention_dropout_too_and_keeps_checkpointing():
    from engine.factory import model_config
    from engine.memory import SavedForBackward
    from engine.model import LLMLabForCausalLM
    from engine.objectives import enable_activation_checkpointing
    from engine.objectives.rollouts import no_dropout
    from engine.project import ModelConfig

    torch.manual_seed(0)
    shape = dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=64, max_seq_len=64, dropout=0.5)
    model = LLMLabForCausalLM(model_config(ModelConfig(**shape), 64)).train()
    ids = torch.randint(0, 64, (2, 16))

    def saved_and_logits():
        with SavedForBackward(model.parameters()) as saved:
            logits = model(input_ids=ids, use_cache=False).logits
        return saved.bytes, logits

    with no_dropout(model):
        kept, first = saved_and_logits()
        assert torch.equal(first, saved_and_logits()[1])  # no dropout, the attention's included
    enable_activation_checkpointing(model)
    with no_dropout(model):
        checkpointed, again = saved_and_logits()
    assert torch.allclose(again, first) and checkpointed < 0.7 * kept
    assert all(module.training for module in model.modules())  # every mode restored
    assert not torch.equal(saved_and_logits()[1], saved_and_logits()[1])  # dropout live again
