"""`llmlab run`: progress lines, a clean finish, the message for a stage that is not available."""

from __future__ import annotations

from engine import cli, objectives
from tests.tiny_project import make_project


def test_run_prints_progress_and_the_finish(tmp_path, capsys):
    project = make_project(tmp_path / "p", steps=4, eval_every=2)
    assert cli.main(["run", str(project), "--stage", "pretrain", "--set", "pretrain.lr=0.01", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    started = next(i for i, line in enumerate(out) if line.startswith("pretrain: "))
    assert "on cpu (fp32)" in out[started]
    assert out[0].startswith("worker started (pid ")  # the preparation, one line a phase
    assert "loading the pretrain datasets" in out[:started]
    assert "tokenizing corpus.txt: 270/270 documents (100%)" in out[:started]
    assert out[started + 1] == "training step 1, the first of this run"
    assert any(line.startswith("step 4/4  loss ") for line in out)
    assert any(line.startswith("eval @ 2: loss ") for line in out)
    assert out[-1].startswith("completed after 4 steps, 512 tokens")


def test_a_stage_without_an_objective_is_not_available_yet(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(objectives, "OBJECTIVES", {"pretrain": objectives.OBJECTIVES["pretrain"]})
    project = make_project(tmp_path / "p")
    assert cli.main(["run", str(project), "--stage", "sft"]) == 2
    assert capsys.readouterr().err.strip() == "stage: 'sft' is not available yet (available: pretrain)"
