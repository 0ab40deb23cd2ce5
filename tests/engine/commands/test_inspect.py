"""`llmlab inspect MODEL VIEW`: each view prints its table or, with --json, the engine's report; ablation
reads a text file or the model's own run, and keeps a zero-ablated model that loads and measures the same."""

import json

import pytest

from engine.cli import main
from engine.inspection.ablation import Component, ablated, held_out_loss
from engine.inspection.heldout import file_batches
from engine.inspection.loading import load_inspectable
from engine.inspection.tokens import surprise
from tests.engine.inspection.models import model_run
from tests.tiny_project import make_project, write_corpus


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny ALiBi / MQA model saved as the final checkpoint of a project's run."""
    project = make_project(tmp_path_factory.mktemp("inspect") / "p")
    return model_run(project, positional_encoding="alibi", attention="mqa")


def inspect(capsys, *argv):
    code = main(["inspect", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_tokens(model_dir, capsys):
    code, out, _ = inspect(capsys, model_dir, "tokens", "--prompt", "the cat", "--top-k", 2, "--json")
    report = json.loads(out)
    expected = surprise(*load_inspectable(model_dir), "the cat", top_k=2)
    assert code == 0 and report["view"] == "tokens"
    assert report["loss"] == pytest.approx(expected["loss"]) and report["bpb"] == pytest.approx(expected["bpb"])
    assert [len(row["top"]) for row in report["tokens"]] == [2] * 7
    code, out, _ = inspect(capsys, model_dir, "tokens", "--prompt", "the cat")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["pos", "token", "prob", "bits"] and lines[2].split()[1] == "h"
    assert lines[-1].startswith("7 tokens, 7 bytes:") and f"{expected['bpb']:.3f} bits/byte" in lines[-1]


def test_attention(model_dir, capsys):
    code, out, _ = inspect(capsys, model_dir, "attention", "--prompt", "abc", "--layer", 1, "--head", 3, "--json")
    report = json.loads(out)
    assert code == 0 and (report["layer"], report["head"]) == (1, 3)
    assert len(report["weights"]) == 4 and len(report["heads"]) == 8
    assert {h["kv_head"] for h in report["heads"]} == {0}  # mqa: every query head reads the one kv head
    code, out, _ = inspect(capsys, model_dir, "attention", "--prompt", "abc")
    lines = out.splitlines()
    assert lines[0].startswith("layer 0 head 0") and lines[1].endswith("│█")  # the first query sees itself
    assert [len(line.split("│")[1]) for line in lines[1:5]] == [1, 2, 3, 4]  # causal: a key more each row
    assert lines[6].split() == ["layer", "head", "kv", "entropy", "prev", "first", "induct"]
    assert len(lines) == 1 + 4 + 2 + 8 + 1


def test_lens(model_dir, capsys):
    code, out, _ = inspect(capsys, model_dir, "lens", "--prompt", "ab", "--json")
    report = json.loads(out)
    assert code == 0 and len(report["layers"]) == 2 and len(report["layers"][0]["top"]) == 3
    code, out, _ = inspect(capsys, model_dir, "lens", "--prompt", "ab")
    assert out.splitlines()[0].split() == ["pos", "token", "L0", "L1", "next"]


def test_ablate_a_text_file_and_save(model_dir, tmp_path, capsys):
    data = tmp_path / "held.txt"
    write_corpus(data, paragraphs=20)
    argv = ["--data", data, "--batches", 2, "--seq-len", 16, "--batch-size", 2, "--json"]
    code, out, _ = inspect(capsys, model_dir, "ablate", *argv)
    table = json.loads(out)
    assert code == 0 and table["tokens"] == 64 and len(table["rows"]) == 12
    cut = tmp_path / "cut"
    code, out, _ = inspect(capsys, model_dir, "ablate", *argv, "--ablate", "L0.H1", "L1.mlp", "--save", cut)
    report = json.loads(out)
    model, tokenizer = load_inspectable(model_dir)
    batches = file_batches(tokenizer, data, 16, 2, 2)
    with ablated(model, [Component("head", 0, 1), Component("mlp", 1)]):
        expected = held_out_loss(model, batches)
    assert report["rows"][0]["component"] == "L0.H1+L1.mlp" and report["rows"][0]["loss"] == pytest.approx(expected)
    assert report["baseline"] == table["baseline"]
    code, out, _ = inspect(capsys, cut, "ablate", *argv)
    assert json.loads(out)["baseline"] == pytest.approx(expected, abs=1e-6)  # the saved model is the ablated one
    code, out, _ = inspect(capsys, model_dir, "ablate", *argv[:-1])
    assert out.splitlines()[0].startswith(f"baseline held-out loss {table['baseline']:.4f} over 64 tokens")


def test_ablate_the_runs_eval_split(model_dir, capsys):
    code, out, _ = inspect(capsys, model_dir, "ablate", "--batches", 1, "--mode", "mean", "--json")
    report = json.loads(out)
    assert code == 0 and report["mode"] == "mean" and report["tokens"] == 4 * 32  # the project's batch and seq_len


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ablate", "--mode", "half", "--data", "x"], "--mode: 'half' is not one of zero, mean"),
        (["ablate", "--data", "x"], "--data: no such file: x"),
        (["ablate", "--save", "out"], "--save: keeps a zero ablation of the components named with --ablate"),
        (["ablate", "--ablate", "L0.H9"], "--ablate: 'L0.H9': the model has heads 0-3"),
        (["ablate", "--batches", "0"], "--batches: must be at least 1, got 0"),
        (["attention", "--prompt", "a", "--head", "4"], "--head: 4 is not in 0-3 (the model has 4)"),
        (["tokens", "--prompt", ""], "--prompt: it encodes to no tokens; give some text"),
        (["lens", "--prompt", "x" * 512], "--prompt: 513 tokens (EOS included), but the model's context is 512"),
    ],
)
def test_bad_options_are_named(model_dir, capsys, argv, message):
    code, _, err = inspect(capsys, model_dir, *argv)
    assert code == 2 and err.startswith(message)


def test_a_folder_that_is_no_model(tmp_path, capsys):
    code, _, err = inspect(capsys, tmp_path, "lens", "--prompt", "a")
    assert code == 2 and "is not a model directory" in err
