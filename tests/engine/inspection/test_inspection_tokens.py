"""Per-token surprise: the per-token losses average to the engine's evaluation loss of the same batches,
bits per byte is the evaluation's, and the top-k alternatives are the model's likeliest tokens."""

import math

import pytest
import torch

from engine.inspection.tokens import scored_tokens, surprise, token_losses, top_alternatives
from engine.objectives import build_objective
from engine.objectives.pretrain import next_token_loss
from engine.project import load_project
from tests.engine.pretrain_context import pretrain_context
from tests.tiny_project import make_project


@pytest.fixture(scope="module")
def objective(tmp_path_factory):
    project = load_project(make_project(tmp_path_factory.mktemp("tokens") / "p"))
    ctx = pretrain_context(project, seed=0)
    ctx.model.eval()
    return build_objective(ctx)


@torch.no_grad()
def test_per_token_losses_average_to_the_evaluation(objective):
    model, batches = objective.module, objective.data.eval
    measures = objective.evaluate()
    losses = torch.cat([token_losses(model(input_ids=b.input_ids).logits, b.targets).flatten() for b in batches])
    assert losses.numel() == sum(b.num_tokens for b in batches)
    assert losses.double().mean().item() == pytest.approx(measures["loss"], rel=1e-6)
    assert losses.double().sum().item() / (math.log(2) * sum(b.num_bytes for b in batches)) == pytest.approx(
        measures["bpb"], rel=1e-6
    )


def test_surprise_of_a_text(objective):
    model, tokenizer = objective.module, objective.ctx.tokenizer
    text = "the cat sat é"
    report = surprise(model, tokenizer, text, top_k=3, worst=2)
    ids = torch.tensor([[tokenizer.eos_token_id, *text.encode()]])
    with torch.no_grad():
        expected = next_token_loss(model, ids[:, :-1], ids[:, 1:]).item()
    rows = report["tokens"]
    assert len(rows) == len(text.encode())  # bytes: every one predicted, the first after EOS
    assert report["loss"] == pytest.approx(expected, rel=1e-6)
    assert report["bits_per_token"] == pytest.approx(expected / math.log(2), rel=1e-6)
    assert report["bytes"] == len(text.encode())
    assert report["bpb"] == pytest.approx(sum(r["loss"] for r in rows) / math.log(2) / len(text.encode()))
    assert [r["token"] for r in rows[:3]] == ["t", "h", "e"]
    losses = [r["loss"] for r in rows]
    assert report["worst"] == sorted(range(len(rows)), key=lambda t: -losses[t])[:2]
    for row in rows:
        probs = [alt["prob"] for alt in row["top"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True)
        assert row["prob"] <= probs[0] + 1e-6 and row["bits"] == pytest.approx(row["loss"] / math.log(2))


def test_top_alternatives_are_the_likeliest():
    logits = torch.tensor([[0.0, 2.0, 1.0, -1.0]])
    probs, ids = top_alternatives(logits, 2)
    assert ids.tolist() == [[1, 2]]
    torch.testing.assert_close(probs, logits.softmax(-1)[:, [1, 2]])
    assert top_alternatives(logits, 10)[1].shape == (1, 4)


@torch.no_grad()
def test_scored_tokens_are_the_models_probabilities(objective):
    """What Chat colours a reply by: each token's probability where the model produced it."""
    model, tokenizer = objective.module, objective.ctx.tokenizer
    ids = [tokenizer.eos_token_id, *b"a reply"]
    probs = model(torch.tensor([ids])).logits[0].softmax(-1)
    rows = scored_tokens(model, tokenizer, ids, top_k=2)
    assert [row["id"] for row in rows] == ids[1:]
    for t, row in enumerate(rows):
        assert row["prob"] == pytest.approx(probs[t, ids[t + 1]].item(), rel=1e-5)
        assert [alt["id"] for alt in row["top"]] == probs[t].topk(2).indices.tolist()
