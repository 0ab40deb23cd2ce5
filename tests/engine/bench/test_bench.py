"""The speed benchmarks at tiny sizes through the CLI: fair comparisons, their output shape; no timings."""

import json

import pytest
import torch

from engine.bench import common, train
from engine.cli import main
from engine.objectives.pretrain import next_token_loss


def run_json(capsys, *argv) -> dict:
    assert main(["bench", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_train_sides_start_equal():
    """Same shape, weights and batch: ours and the Llama reference give the same loss and gradients."""
    config = train.llmlab_config(train.SIZES["tiny"])
    sides = {side: train.Trainee(side, config, train.SIZES["tiny"], torch.device("cpu")) for side in train.SIDES}
    sides["reference"].model.load_state_dict(sides["ours"].model.state_dict())
    assert sum(p.numel() for p in sides["ours"].model.parameters()) == sum(
        p.numel() for p in sides["reference"].model.parameters()
    )
    losses = {}
    for side, trainee in sides.items():
        losses[side] = next_token_loss(trainee.model, **trainee.batch)
        losses[side].backward()
    assert torch.allclose(losses["ours"], losses["reference"], atol=1e-5)
    ours, reference = (dict(sides[s].model.named_parameters()) for s in train.SIDES)
    for name, p in ours.items():
        assert torch.allclose(p.grad, reference[name].grad, atol=1e-5), name


def test_train_json(capsys):
    result = run_json(capsys, "train", "--size", "tiny", "--rounds", "1", "--no-memory", "--device", "cpu")
    assert result["bench"] == "train" and result["precision"] == "fp32"
    assert result["shape"] == {
        "d_model": 64,
        "n_layers": 2,
        "n_heads": 4,
        "n_kv_heads": 2,
        "d_ff": 128,
        "vocab_size": 256,
        "seq_len": 32,
        "batch_size": 2,
    }
    for side in train.SIDES:
        assert result[side]["tokens_per_s"] > 0 and len(result[side]["round_seconds"]) == 1
        assert result[side]["mfu"] is None  # no peak FLOPs on a CPU without LLMLAB_PEAK_FLOPS
    assert result["ratio"] == pytest.approx(result["ours"]["tokens_per_s"] / result["reference"]["tokens_per_s"])
    assert set(result["machine"]) >= {"device", "threads", "load_average", "date"}


def test_train_table_ends_with_the_ratio(capsys, monkeypatch):
    monkeypatch.setenv("LLMLAB_PEAK_FLOPS", "1e12")  # the override gives an MFU on any device
    assert main(["bench", "train", "--size", "tiny", "--rounds", "1", "--no-memory", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].split() == ["tokens/s", "peak", "memory", "MFU"]
    assert [line.split()[0] for line in lines[2:4]] == ["ours", "reference"]
    assert lines[2].endswith("%")
    assert lines[-1].startswith("ratio ours/reference: tokens/s ")


def test_peak_memory_counts_the_training_state():
    """The measure in a fresh process: RSS growth covers weights, gradients and AdamW's two moments."""
    model = train.build_model("ours", train.llmlab_config(train.SIZES["tiny"]))
    state_bytes = 4 * 4 * sum(p.numel() for p in model.parameters())
    peak = common.run_child("engine.bench.train:peak_memory", side="ours", size="tiny", device="cpu", compile=False)
    assert peak["peak_bytes"] >= state_bytes


def test_generate_json(capsys):
    result = run_json(capsys, "generate", "--size", "tiny", "--new-tokens", "8", "--rounds", "1", "--device", "cpu")
    assert result["bench"] == "generate" and result["new_tokens"] == 8
    assert set(result["batches"]) == {"1", "8"}
    for entry in result["batches"].values():
        assert entry["same_tokens"] is True  # same weights through the Llama export, greedy: same tokens
        assert entry["ratio"] == pytest.approx(entry["ours"]["tokens_per_s"] / entry["reference"]["tokens_per_s"])


def test_table_aligns_columns():
    assert common.table(["", "n"], [["a", 1], ["bbb", 22]]).splitlines() == ["      n", "a     1", "bbb  22"]
