"""`llmlab compare` from a shell: the table of final measures (bits per byte beside the losses) and
the differing settings, as text and as JSON; no run named is refused."""

from __future__ import annotations

import json

from engine.cli import main
from tests.run_folders import write_run, write_scores


def test_compare_prints_finals_and_differences(tmp_path, capsys):
    first = write_run(tmp_path / "runs/pretrain-20260101-120000", 1e-3, "rope", [3.0, 2.0], 1.1)
    second = write_run(tmp_path / "runs/pretrain-20260101-120001", 3e-3, "rope", [3.0, 2.4], 1.3)
    assert main(["compare", str(first), str(second)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"[1] {first} (completed)"
    assert lines[3].split() == ["final", "[1]", "[2]"]
    assert lines[5].split() == ["eval_loss", "2", "2.4"]
    assert lines[6].split() == ["bpb", "1.1", "1.3"]
    assert lines[-1].split() == ["pretrain.lr", "0.001", "0.003"]
    write_scores(second, demo_facts=0.625)
    assert main(["compare", str(first), str(second)]) == 0
    assert ["demo_facts", "acc", "—", "0.625"] in [line.split() for line in capsys.readouterr().out.splitlines()]
    assert main(["compare", str(first), str(second), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["differences"] == {"pretrain.lr": [0.001, 0.003]}


def test_compare_needs_a_run(capsys):
    assert main(["compare"]) == 2
    assert "RUN: name at least one run folder, or --sweep SWEEP" in capsys.readouterr().err
