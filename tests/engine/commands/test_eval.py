"""`llmlab eval` offline: a multiple-choice task written here (a YAML file and its jsonl data, read
from the YAML's folder) scored on a tiny model through lm-eval. The scores land in
MODEL/eval/results.json; lm-eval's log-likelihood of every choice equals our model's own log-prob
of it, and its accuracy equals the accuracy of our own choosing. Nothing reaches the network."""

from __future__ import annotations

import json
import socket
import sys

import pytest
import torch

from engine.cli import main
from engine.evaluation import evaluate
from engine.factory import model_config
from engine.model import LLMLabForCausalLM
from engine.project import ModelConfig
from engine.tokenizer import byte_tokenizer

pytest.importorskip("lm_eval", reason='lm-eval is the [eval] extra: pip install -e ".[eval]"')

TASK_YAML = """\
task: tiny_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: rows.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{question}}"
doc_to_choice: "{{choices}}"
doc_to_target: "{{answer}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
ROWS = [
    {"question": "the cat sat on the", "choices": ["mat", "dog", "red", "sky"], "answer": 0},
    {"question": "a dog ran to the", "choices": ["house", "blue"], "answer": 0},
    {"question": "the big red", "choices": ["door", "sat", "on"], "answer": 0},
    {"question": "two plus two is", "choices": ["three", "four", "five"], "answer": 1},
    {"question": "the sun is", "choices": ["cold", "hot"], "answer": 1},
    {"question": "fish swim in the", "choices": ["sea", "sand", "sky", "tree", "car"], "answer": 0},
    {"question": "birds can", "choices": ["fly", "read"], "answer": 0},
    {"question": "snow is", "choices": ["black", "green", "white"], "answer": 2},
]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Hub and datasets offline, datasets' cache here; every attempt to open a network connection kept."""
    import datasets
    import huggingface_hub

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    attempts, connect = [], socket.socket.connect

    def refuse(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"a test tried the network: {address}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture
def tiny(tmp_path):
    """A saved 2-layer model with the byte tokenizer, and a task folder holding tiny_choice."""
    tokenizer = byte_tokenizer()
    torch.manual_seed(0)
    shape = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48, max_seq_len=64, init_std=0.3)
    special = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    model = LLMLabForCausalLM(model_config(shape, len(tokenizer), **special)).eval()
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tiny_choice.yaml").write_text(TASK_YAML)
    (tasks / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return model, tokenizer, model_dir, tasks


def own_loglikelihood(model, tokenizer, context: str, continuation: str) -> float:
    """log p(continuation | context) summed over the continuation's tokens, by our model itself."""
    before = tokenizer(context, add_special_tokens=False)["input_ids"]
    after = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logprobs = model(torch.tensor([before + after])).logits[0].log_softmax(-1)
    return sum(logprobs[len(before) - 1 + i, token].item() for i, token in enumerate(after))


def test_eval_scores_a_local_task_with_our_models_own_logprobs(tiny, offline, tmp_path, capsys, monkeypatch):
    model, tokenizer, model_dir, tasks = tiny
    monkeypatch.chdir(tmp_path / "model")  # the task's data is found from its YAML's folder, not from here
    command = ["eval", str(model_dir), "--tasks", "tiny_choice", "--include-path", str(tasks), "--device", "cpu"]
    assert main([*command, "--log-samples"]) == 0
    table = [[cell.strip() for cell in line.split("|")[1:-1]] for line in capsys.readouterr().out.splitlines()[:3]]
    assert table[0] == ["task", "version", "shots", "samples", "metric", "value", "stderr"]
    assert table[2][:5] == ["tiny_choice", "Yaml", "0", str(len(ROWS)), "acc"]

    stored = json.loads((model_dir / "eval" / "results.json").read_text())
    entry = stored["tasks"]["tiny_choice"]
    assert entry["samples"] == len(ROWS) and entry["num_fewshot"] == 0 and entry["limit"] is None
    assert entry["batch_size"] == 8 and entry["device"] == "cpu"

    samples = [json.loads(line) for line in (model_dir / "eval" / "samples-tiny_choice.jsonl").read_text().splitlines()]
    assert sorted(s["doc_id"] for s in samples) == list(range(len(ROWS)))
    right = 0
    for sample in samples:
        row = ROWS[sample["doc_id"]]
        ours = [own_loglikelihood(model, tokenizer, row["question"], f" {choice}") for choice in row["choices"]]
        theirs = [resp[0][0] for resp in sample["resps"]]
        assert theirs == pytest.approx(ours, abs=1e-4)
        right += max(range(len(ours)), key=ours.__getitem__) == row["answer"]
    assert entry["metrics"]["acc"] == pytest.approx(right / len(ROWS))
    assert table[2][5] == f"{entry['metrics']['acc']:.4f}"
    assert offline == []


def test_limit_scores_only_the_first_documents_keeps_other_tasks_and_reports_phases(tiny, offline):
    _, _, model_dir, tasks = tiny
    (model_dir / "eval").mkdir()
    earlier = {"model": str(model_dir), "tasks": {"other": {"metrics": {"acc": 0.25}}}}
    (model_dir / "eval" / "results.json").write_text(json.dumps(earlier))
    events = []
    report = evaluate(model_dir, "tiny_choice", limit=3, batch_size=2, include_path=str(tasks), emit=events.append)
    assert [e["name"] for e in events if "done" not in e] == ["model", "tasks", "requests"]
    requests = 4 + 2 + 3  # the choices of the first three documents
    assert [(e["done"], e["total"]) for e in events if "done" in e] == [(0, requests), (requests, requests)]
    entry = report["tasks"]["tiny_choice"]
    assert entry["samples"] == 3 and entry["limit"] == 3 and entry["batch_size"] == 2
    stored = json.loads((model_dir / "eval" / "results.json").read_text())
    assert set(stored["tasks"]) == {"other", "tiny_choice"}
    assert not (model_dir / "eval" / "samples-tiny_choice.jsonl").exists()  # only with --log-samples
    assert offline == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tasks", " , "], "--tasks: name at least one task"),
        (["--tasks", "tiny_choice", "--limit", "0"], "--limit: must be at least 1 document per task, got 0"),
        (["--tasks", "tiny_choice", "--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
        (["--tasks", "tiny_choice", "--include-path", "/no/such/folder"], "--include-path: /no/such/folder is not"),
        (["--tasks", "tiny_choice", "--device", "tpu"], "device: 'tpu' is not one of cpu, cuda"),
    ],
)
def test_bad_arguments_are_refused_by_name(tiny, extra, message, capsys):
    assert main(["eval", str(tiny[2]), *extra]) == 2
    assert message in capsys.readouterr().err


def test_without_lm_eval_the_install_line_is_named(tiny, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # as if the [eval] extra were not installed
    assert main(["eval", str(tiny[2]), "--tasks", "tiny_choice"]) == 2
    assert capsys.readouterr().err.strip() == 'llmlab eval needs lm-evaluation-harness: pip install -e ".[eval]"'
