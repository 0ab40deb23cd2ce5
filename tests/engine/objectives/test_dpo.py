"""DPO starts at ln 2 and learns a held-out preference."""

import math
import random

import pytest

from engine.objectives.dpo import DPOObjective
from tests.engine.objectives.helpers import train


def preference_rows(n: int, seed: int = 0) -> list[dict]:
    """Chosen answers are low digits, rejected ones high digits: a preference that generalizes."""
    rng = random.Random(seed)
    return [
        {"prompt": f"pick {rng.randrange(10)}", "chosen": str(rng.randrange(5)), "rejected": str(rng.randrange(5, 10))}
        for _ in range(n)
    ]


def test_dpo_loss_is_ln2_at_the_start_and_heldout_accuracy_rises(make_context):
    ctx = make_context(
        "dpo",
        preference_rows(60),
        steps=30,
        batch_size=8,
        lr=3e-3,
        warmup_steps=0,
        beta=0.5,
        optimizer={"name": "adamw", "weight_decay": 0.0},
        scheduler={"name": "none"},
    )
    objective = DPOObjective(ctx)
    before = objective.evaluate()
    assert before["loss"] == pytest.approx(math.log(2), abs=1e-5)
    metrics = train(ctx, objective)
    assert metrics[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    after = objective.evaluate()
    assert after["accuracy"] >= 0.9 and after["loss"] < before["loss"]
    assert {"rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margin"} <= set(metrics[0])
