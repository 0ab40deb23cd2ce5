"""`llmlab bench components`: one run per choice of each chosen part, a table per part."""

from __future__ import annotations

import argparse
import json

from engine.bench import components
from engine.project.schema import NORMALIZATIONS, OPTIMIZERS


def _args(tmp_path, *extra):
    text = tmp_path / "tiny.txt"
    text.write_text("\n\n".join(f"FIRST CITIZEN:\nSpeak, speak. We are resolved {i}." for i in range(300)))
    parser = argparse.ArgumentParser()
    components.register(parser.add_subparsers())
    return parser.parse_args(
        ["components", str(text), "--steps", "2", "--eval-batches", "1", "--device", "cpu", *extra]
    )


def test_every_choice_of_the_chosen_parts_gets_a_row(tmp_path, capsys):
    args = _args(tmp_path, "--parts", "normalization", "--json")
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["parts"]) == ["normalization"] and result["steps"] == 2
    rows = result["parts"]["normalization"]
    assert [r["choice"] for r in rows] == list(NORMALIZATIONS)
    assert min(r["ratio"] for r in rows) == 1.0 and all(r["val_loss"] > 0 and r["seconds"] > 0 for r in rows)
    assert "device" in result["machine"]


def test_the_table_names_each_part_and_the_machine(tmp_path, capsys):
    args = _args(tmp_path, "--parts", "normalization")
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "normalization" and out[1].split() == ["choice", "val", "loss", "seconds", "/", "best"]
    assert [line.split()[0] for line in out[2:4]] == list(NORMALIZATIONS)
    assert "threads of" in out[-2] and "of its part's best" in out[-1]


def test_every_part_and_optimizer_is_covered():
    assert list(components.PARTS) == ["positional_encoding", "normalization", "attention", "activation", "optimizer"]
    assert components.PARTS["optimizer"] == ("pretrain.optimizer.name", OPTIMIZERS)
