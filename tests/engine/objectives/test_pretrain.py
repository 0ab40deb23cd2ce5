"""The pretraining objective: next-token loss, held-out measures, data position, shares."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from engine.objectives import build_objective
from engine.project import project_from_dict
from tests.engine.pretrain_context import pretrain_context


def write_corpus(path, letters: str, paragraphs: int = 200) -> str:
    rng = random.Random(path.name)
    path.write_text(
        "\n\n".join("".join(rng.choice(letters) for _ in range(rng.randint(10, 60))) for _ in range(paragraphs))
    )
    return path.name


@pytest.fixture
def objective(tmp_path):
    datasets = [
        {"path": write_corpus(tmp_path / "a.txt", "abc "), "weight": 2.0, "eval_fraction": 0.1},
        {"path": write_corpus(tmp_path / "b.txt", "xyz "), "weight": 1.0, "eval_fraction": 0.1},
    ]
    project = project_from_dict(
        {
            "seed": 0,
            "tokenizer": {"source": "bytes"},
            "model": {"d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_ff": 64, "max_seq_len": 256},
            "pretrain": {
                "batch_size": 3,
                "seq_len": 16,
                "eval_batches": 2,
                "sample_prompt": "ab",
                "datasets": datasets,
            },
        },
        tmp_path,
    )
    ctx = pretrain_context(project, seed=0)
    return build_objective(ctx)


def test_loss_is_the_cross_entropy_of_the_next_token(objective):
    batch = objective.next_batch()
    assert batch["input_ids"].shape == (3, 16) and objective.tokens(batch) == 48
    assert torch.equal(batch["input_ids"][0, 1:], batch["targets"][0, :-1])  # targets: shifted by one
    loss, metrics = objective.loss(batch)
    logits = objective.module(input_ids=batch["input_ids"]).logits
    expected = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["targets"].reshape(-1))
    torch.testing.assert_close(loss, expected)
    assert metrics == {}


def test_evaluate_gives_loss_perplexity_and_bits_per_byte(objective):
    with torch.no_grad():
        measures = objective.evaluate()
        nll = sum(
            F.cross_entropy(
                objective.module(input_ids=b.input_ids).logits.flatten(0, 1), b.targets.flatten(), reduction="sum"
            ).item()
            for b in objective.data.eval
        )
    tokens = sum(b.targets.numel() for b in objective.data.eval)
    num_bytes = sum(b.num_bytes for b in objective.data.eval)
    assert len(objective.data.eval) == 2 and num_bytes < tokens  # EOS tokens stand for no bytes
    assert measures["loss"] == pytest.approx(nll / tokens, rel=1e-6)
    assert measures["ppl"] == pytest.approx(math.exp(nll / tokens), rel=1e-6)
    assert measures["bpb"] == pytest.approx(nll / math.log(2) / num_bytes, rel=1e-6)


def test_state_dict_brings_back_the_data_position(objective):
    objective.next_batch()
    state = objective.state_dict()
    expected = [objective.next_batch()["input_ids"] for _ in range(3)]
    objective.next_batch()
    objective.load_state_dict(state)
    for want in expected:
        assert torch.equal(objective.next_batch()["input_ids"], want)


def test_source_shares_follow_the_weights(objective):
    for _ in range(60):
        objective.next_batch()
    shares = objective.source_shares()
    assert set(shares) == {"a.txt", "b.txt"}
    assert shares["a.txt"]["weight"] == pytest.approx(2 / 3) and shares["b.txt"]["weight"] == pytest.approx(1 / 3)
    assert shares["a.txt"]["share"] + shares["b.txt"]["share"] == pytest.approx(1.0)
    assert shares["a.txt"]["share"] == pytest.approx(2 / 3, abs=0.1)


def test_sample_continues_the_prompt(objective):
    torch.manual_seed(0)
    with torch.no_grad():
        [sample] = objective.sample()
    assert sample["prompt"] == "ab" and isinstance(sample["text"], str) and sample["text"]
